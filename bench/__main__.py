"""``python -m bench [NAME ...]``: run the benchmarks (all of them by default)."""

from __future__ import annotations

import argparse
import importlib
import sys

SUITES = (
    "ingest",
    "query",
    "cold",
    "frontdoor",
    "alerts",
    "body",
    "pool",
    "page",
    "slow",
    "write",
    "hot",
    "refresh",
    "refreshcost",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument(
        "suites",
        nargs="*",
        default=list(SUITES),
        help=f"which benchmarks, of {', '.join(SUITES)} (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller data sets, to check the benchmark itself runs"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    for name in args.suites:
        module = importlib.import_module(f"bench.{name}")
        module.main(quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
