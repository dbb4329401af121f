"""Command line of fastinception: python -m fastinception [COMMAND] (no command runs bench)."""
from __future__ import annotations

import argparse
import sys

from .kernels.common import use_interpreter_without_cuda

# Without CUDA the Triton kernels can only run under the interpreter, which must be chosen before triton is
# first imported (importing fastinception does not import triton).
use_interpreter_without_cuda()

from .bench import check as check_command  # noqa: E402
from .bench import command as bench_command  # noqa: E402
from .train import command as train_command  # noqa: E402

# Each command: name -> (module with add_arguments(parser) and run(args) -> exit code, one-line help).
COMMANDS = {
    "check": (check_command, "compare FastInception with the reference block on this machine"),
    "bench": (bench_command, "time FastInception against eager PyTorch and torch.compile; tables, JSON and charts"),
    "train": (train_command, "train GoogLeNet on real data (scikit-learn digits, or Fashion-MNIST with --data)"),
}
DEFAULT_COMMAND = "bench"


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
