"""``python -m fastinception inspect``: what each Triton kernel compiles to for a GPU target, without the GPU.

The kernels' launches are captured by running the real triton ops on CPU tensors with the launch point recording
instead of launching (``capture``), each autotune config is compiled offline for the target (``compile``), and
the binary is read for registers, spills, shared memory, tensor-core and load instructions (``binary``) and an
occupancy bound (``occupancy``). ``report`` writes the rows; ``command`` is the command line.

Only ``command`` is imported by ``fastinception.__main__``, and it imports triton inside ``run``: Triton reads
``TRITON_INTERPRET`` when it is first imported, and the other commands choose the interpreter after parsing.
"""
