"""Command line of fastinception: python -m fastinception [COMMAND] (no command runs bench)."""
from __future__ import annotations

import argparse
import sys

# None of these imports triton: Triton reads TRITON_INTERPRET once, when first imported, so the interpreter is
# chosen below, after parsing, and only for the commands that run kernels.
from .bench import check as check_command
from .bench import command as bench_command
from .fid import command as fid_command
from .inspect import command as inspect_command
from .kernels.common import use_interpreter_without_cuda
from .train import command as train_command

# Each command: name -> (module with add_arguments(parser) and run(args) -> exit code, one-line help, whether it runs
# the Triton kernels, and so needs Triton's CPU interpreter where there is no CUDA).
COMMANDS = {
    "check": (check_command, "compare FastInception with the reference block on this machine", True),
    "bench": (bench_command, "time FastInception against eager PyTorch and torch.compile; tables, JSON and charts",
              True),
    "train": (train_command, "train GoogLeNet on real data (scikit-learn digits, or Fashion-MNIST with --data)", True),
    "fid": (fid_command, "the FID of two image folders or .npz statistics, as pytorch-fid computes it, on the fused "
            "Inception-v3 feature network (pytorch-fid's weights file needed)", False),
    "inspect": (inspect_command, "compile every Triton kernel for a GPU target offline and report registers, spills, "
                "shared memory, occupancy and the instructions used (static facts, no GPU needed)", False),
}
DEFAULT_COMMAND = "bench"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m fastinception", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text, _) in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = [DEFAULT_COMMAND, *argv]
    args = parser.parse_args(argv)
    module, _, runs_kernels = COMMANDS[args.command]
    if runs_kernels:
        use_interpreter_without_cuda()
    return module.run(args)


if __name__ == "__main__":
    sys.exit(main())
