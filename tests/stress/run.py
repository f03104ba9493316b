"""``make test-stress``: run the stress checks against real ``ftserve`` processes and print one table.

    .venv/ft/bin/python tests/stress/run.py [--quick] [--only NAME[,NAME]] [--gil | --python PATH]

Exits 1 if any row fails. What each check does and its bound: docs/stress.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make ``tests.stress`` importable
    sys.path.insert(0, str(ROOT))

from tests.stress.checks import CHECKS, DETAILS, QUICK, Plan, Row  # noqa: E402
from tests.stress.server import raise_nofile, target  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the short version (< 60 s) for CI: smaller counts, fewer checks")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help=f"run only these checks (repeatable or comma-separated): {', '.join(CHECKS)}")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--gil", action="store_true", help="serve with .venv/gil/bin/python (a GIL build: processes mode)")
    group.add_argument("--python", default=sys.executable, help="serve with this interpreter [default: this one]")
    args = parser.parse_args(argv)

    names = [name for spec in args.only for name in spec.split(",") if name] or list(QUICK if args.quick else CHECKS)
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        parser.error(f"unknown check(s) {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
    python = str(ROOT / ".venv/gil/bin/python") if args.gil else args.python
    if not Path(python).exists():
        parser.error(f"no interpreter at {python} (make venvs builds .venv/ft and .venv/gil)")
    raise_nofile()
    plan = Plan(quick=args.quick, target=target(python))
    print(f"stress checks on {python} ({'free-threaded' if plan.target.free_threaded else 'GIL'}), "
          f"{'quick' if args.quick else 'full'}: {', '.join(names)}", flush=True)

    rows: list[Row] = []
    started = time.monotonic()
    for name in names:
        began = time.monotonic()
        try:
            new = CHECKS[name](plan)
        except Exception as exc:  # a check that breaks is a failure of that check, not of the run
            new = [Row(name, "-", f"error: {exc!r}"[:120], "-", False)]
        rows += new
        print(f"  {name}: {time.monotonic() - began:.0f} s, {sum(not r.passed for r in new)} failed", flush=True)

    print_table(rows)
    for line in DETAILS:
        print("  " + line)
    failed = sum(not row.passed for row in rows)
    print(f"{len(rows) - failed} passed, {failed} failed in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


def print_table(rows: list[Row]) -> None:
    table = [("check", "mode", "figure", "bound", "result")]
    table += [(r.check, r.mode, r.figure, r.bound, "PASS" if r.passed else "FAIL") for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(5)]
    print()
    for i, line in enumerate(table):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * width for width in widths))
    print()


if __name__ == "__main__":
    sys.exit(main())
