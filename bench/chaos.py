"""The chaos campaign (issue #16, ``make chaos``): N returns from Loop and ZigZag through
``returnbridge serve`` and two ``returnbridge worker`` processes on PostgreSQL, with duplicate,
reordered and dropped webhooks, SIGKILLs of any process, and sandboxes answering 5xx, 429 and
timing out. Prints the table; exits 1 when anything was lost, duplicated or failed, or a
sandbox saw calls over its limit. The engine is ``returnbridge.sandbox.chaos`` (the reduced
run in the test suite is tests/chaos/test_chaos_reduced.py).

    uv run --frozen python bench/chaos.py [--returns N] [--kills K] [--postgres URL]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from returnbridge.sandbox.chaos import DEFAULT_ADMIN_URL, ChaosOptions, run_campaign


def main() -> None:
    defaults = ChaosOptions()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--returns", type=int, default=defaults.returns)
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument("--duplicate-rate", type=float, default=defaults.duplicate_rate)
    parser.add_argument("--drop-rate", type=float, default=defaults.drop_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--drain-timeout", type=float, default=defaults.drain_timeout,
                        help="seconds to wait after the last delivery (default %(default)s)")
    parser.add_argument("--postgres", default=DEFAULT_ADMIN_URL, metavar="URL",
                        help="server database to create the scratch database from "
                        "(default %(default)s)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the configuration and process logs here")
    args = parser.parse_args()
    from returnbridge import logs

    logs.configure("ERROR", "console")
    result = run_campaign(ChaosOptions(
        returns=args.returns, kills=args.kills, workers=args.workers,
        fault_rate=args.fault_rate, duplicate_rate=args.duplicate_rate,
        drop_rate=args.drop_rate, seed=args.seed, drain_timeout=args.drain_timeout,
        admin_url=args.postgres, work_dir=args.work_dir))
    for line in result.lines():
        print(line)
    raise SystemExit(1 if result.problems else 0)


if __name__ == "__main__":
    main()
