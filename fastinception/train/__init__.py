"""The ``train`` command: d2l's GoogLeNet trained on real data. A leaf: nothing in the library imports it."""
