"""The ``bench`` and ``check`` commands: FastInception against eager PyTorch and torch.compile, every contender
checked against float64 before it is timed. A leaf: nothing in the library imports it."""
