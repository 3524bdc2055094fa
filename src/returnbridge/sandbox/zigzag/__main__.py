"""``python -m returnbridge.sandbox.zigzag [--port N] [--sku SKU ...]``: run the ZigZag API
sandbox until interrupted, printing the ``[zigzag]`` settings that point at it."""

from __future__ import annotations

import argparse
import json
import time

from returnbridge.sandbox.zigzag.api import ZigZagApiSandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sku", action="append", default=[], help="a SKU ZigZag knows")
    parser.add_argument("--dc", action="append", default=[], help="a warehouse DC code")
    args = parser.parse_args()
    sandbox = ZigZagApiSandbox(known_skus=set(args.sku),
                               dc_codes=set(args.dc) or {"GB0064"}).start(args.port or None)
    print(json.dumps({"zigzag": sandbox.settings()}, indent=2), flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        sandbox.stop()


if __name__ == "__main__":
    main()
