"""Command line of fastinception: ``python -m fastinception [COMMAND]`` (no command runs ``check``)."""
from __future__ import annotations

import argparse
import sys

from . import check

# Each command: name -> (module with add_arguments(parser) and run(args) -> exit code, one-line help).
COMMANDS = {
    "check": (check, "compare FastInception with the reference block on this machine"),
}
DEFAULT_COMMAND = "check"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m fastinception", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = [DEFAULT_COMMAND, *argv]
    args = parser.parse_args(argv)
    return COMMANDS[args.command][0].run(args)


if __name__ == "__main__":
    sys.exit(main())
