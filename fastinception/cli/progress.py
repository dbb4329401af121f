"""Progress bars from tqdm where it is installed (the ``[train]`` and ``[bench]`` extras), else none."""
from __future__ import annotations

import contextlib
import importlib.util


def available() -> bool:
    return importlib.util.find_spec("tqdm") is not None


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass


@contextlib.contextmanager
def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "img", mininterval: float = 0.1):
    """A tqdm bar on stderr counting ``unit``s to ``total``, redrawn at most every ``mininterval`` seconds (0: at
    every update, for slow steps); without tqdm (or when disabled) an object that draws nothing."""
    if not enabled or not available():
        yield _NoBar()
        return
    from tqdm import tqdm  # optional (the [bench] and [train] extras): imported only when present

    with tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, mininterval=mininterval) as bar:
        yield bar
