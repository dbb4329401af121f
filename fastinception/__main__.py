"""Command line: ``python -m fastinception [check]``."""
from __future__ import annotations

import argparse
import sys

from . import check


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastinception", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    check.add_arguments(sub.add_parser("check", help="compare FastInception with the reference block (default)"))
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["check", *(argv or [])])
    return check.run(args)


if __name__ == "__main__":
    sys.exit(main())
