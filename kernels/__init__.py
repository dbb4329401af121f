"""Triton kernels of fastinception (installed as ``fastinception.kernels``)."""
