"""How a block is computed: the fused plan in PyTorch ops, and the Triton kernels as custom ops under one
autograd Function (with the branch streams)."""
