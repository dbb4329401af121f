"""A one-line text progress bar redrawn with carriage returns (no dependency)."""
from __future__ import annotations

import sys


class ProgressBar:
    """``[#####.....] done/total text`` on one line of ``stream``; ``close()`` ends the line."""

    def __init__(self, total: int, label: str, stream=None, width: int = 30):
        self.total, self.label, self.width = max(total, 1), label, width
        self.stream = sys.stderr if stream is None else stream

    def update(self, done: int, text: str = "") -> None:
        filled = round(self.width * min(done, self.total) / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} {text}")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
