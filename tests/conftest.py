from fastinception.kernels.common import use_interpreter_without_cuda

# Before anything imports triton: importing fastinception does not.
use_interpreter_without_cuda()
