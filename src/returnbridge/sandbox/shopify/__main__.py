"""``python -m returnbridge.sandbox.shopify [--port N] [--order NAME=TOTAL ...]``: run the
Shopify sandbox until interrupted, printing the ``[shopify]`` settings that point at it."""

from __future__ import annotations

import argparse
import json
import time

from returnbridge.sandbox.shopify.api import ShopifySandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--order", action="append", default=[],
                        help="an order paid in full, e.g. 1001=89.98")
    args = parser.parse_args()
    sandbox = ShopifySandbox().start(args.port or None)
    for spec in args.order:
        name, _, total = spec.partition("=")
        sandbox.add_order(name, total or "100.00")
    print(json.dumps({"shopify": sandbox.settings()}, indent=2), flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        sandbox.stop()


if __name__ == "__main__":
    main()
