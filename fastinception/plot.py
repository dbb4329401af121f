"""PNG charts with no plotting library: numpy rasterises, zlib + struct encode, a 5x7 bitmap font labels.

The GPU machines this project measures on may have no matplotlib, and the package depends on torch, triton and
numpy only. Two charts:

- ``bar_chart(path, title, labels, series, ylabel, hline=None)``: grouped bars, one group per label, one bar
  per series (e.g. speed-up per block per contender, with ``hline=1.0``).
- ``line_chart(path, title, xs, series, xlabel, ylabel)``: one line per series over shared x values.

Non-finite values (NaN, inf, None) are left out: a missing bar, a gap in a line. The font has capitals,
digits and common punctuation; lower-case text is drawn in capitals.
"""
from __future__ import annotations

import math
import struct
import zlib

import numpy as np

WIDTH, HEIGHT = 1280, 720
# Text sizes, in multiples of the 5x7 glyph: labels, ticks and legend; the title.
_SMALL, _BIG = 2, 3
_BG = (255, 255, 255)
_INK = (30, 30, 30)
_GRID = (225, 225, 225)
_PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
    (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
    (188, 189, 34), (23, 190, 207),
]

# 5x7 glyphs, '#' = ink, one string per row.
_GLYPH_ROWS = {
    " ": ".....|.....|.....|.....|.....|.....|.....",
    "0": ".###.|#...#|#..##|#.#.#|##..#|#...#|.###.",
    "1": "..#..|.##..|..#..|..#..|..#..|..#..|.###.",
    "2": ".###.|#...#|....#|...#.|..#..|.#...|#####",
    "3": "####.|....#|....#|.###.|....#|....#|####.",
    "4": "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.",
    "5": "#####|#....|####.|....#|....#|#...#|.###.",
    "6": "..##.|.#...|#....|####.|#...#|#...#|.###.",
    "7": "#####|....#|...#.|..#..|.#...|.#...|.#...",
    "8": ".###.|#...#|#...#|.###.|#...#|#...#|.###.",
    "9": ".###.|#...#|#...#|.####|....#|...#.|.##..",
    "A": ".###.|#...#|#...#|#####|#...#|#...#|#...#",
    "B": "####.|#...#|#...#|####.|#...#|#...#|####.",
    "C": ".###.|#...#|#....|#....|#....|#...#|.###.",
    "D": "###..|#..#.|#...#|#...#|#...#|#..#.|###..",
    "E": "#####|#....|#....|####.|#....|#....|#####",
    "F": "#####|#....|#....|####.|#....|#....|#....",
    "G": ".###.|#...#|#....|#.###|#...#|#...#|.####",
    "H": "#...#|#...#|#...#|#####|#...#|#...#|#...#",
    "I": ".###.|..#..|..#..|..#..|..#..|..#..|.###.",
    "J": "..###|...#.|...#.|...#.|...#.|#..#.|.##..",
    "K": "#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#",
    "L": "#....|#....|#....|#....|#....|#....|#####",
    "M": "#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#",
    "N": "#...#|#...#|##..#|#.#.#|#..##|#...#|#...#",
    "O": ".###.|#...#|#...#|#...#|#...#|#...#|.###.",
    "P": "####.|#...#|#...#|####.|#....|#....|#....",
    "Q": ".###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#",
    "R": "####.|#...#|#...#|####.|#.#..|#..#.|#...#",
    "S": ".####|#....|#....|.###.|....#|....#|####.",
    "T": "#####|..#..|..#..|..#..|..#..|..#..|..#..",
    "U": "#...#|#...#|#...#|#...#|#...#|#...#|.###.",
    "V": "#...#|#...#|#...#|#...#|#...#|.#.#.|..#..",
    "W": "#...#|#...#|#...#|#.#.#|#.#.#|#.#.#|.#.#.",
    "X": "#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#",
    "Y": "#...#|#...#|.#.#.|..#..|..#..|..#..|..#..",
    "Z": "#####|....#|...#.|..#..|.#...|#....|#####",
    ".": ".....|.....|.....|.....|.....|.##..|.##..",
    ",": ".....|.....|.....|.....|.##..|..#..|.#...",
    ":": ".....|.##..|.##..|.....|.##..|.##..|.....",
    ";": ".....|.##..|.##..|.....|.##..|..#..|.#...",
    "-": ".....|.....|.....|#####|.....|.....|.....",
    "+": ".....|..#..|..#..|#####|..#..|..#..|.....",
    "_": ".....|.....|.....|.....|.....|.....|#####",
    "/": ".....|....#|...#.|..#..|.#...|#....|.....",
    "(": "...#.|..#..|.#...|.#...|.#...|..#..|...#.",
    ")": ".#...|..#..|...#.|...#.|...#.|..#..|.#...",
    "[": ".###.|.#...|.#...|.#...|.#...|.#...|.###.",
    "]": ".###.|...#.|...#.|...#.|...#.|...#.|.###.",
    "%": "##...|##..#|...#.|..#..|.#...|#..##|...##",
    "=": ".....|.....|#####|.....|#####|.....|.....",
    "<": "...#.|..#..|.#...|#....|.#...|..#..|...#.",
    ">": ".#...|..#..|...#.|....#|...#.|..#..|.#...",
    "'": "..#..|..#..|.#...|.....|.....|.....|.....",
    "!": "..#..|..#..|..#..|..#..|..#..|.....|..#..",
    "?": ".###.|#...#|....#|...#.|..#..|.....|..#..",
    "#": ".#.#.|.#.#.|#####|.#.#.|#####|.#.#.|.#.#.",
    "*": ".....|..#..|#.#.#|.###.|#.#.#|..#..|.....",
    "@": ".###.|#...#|#.###|#.#.#|#.###|#....|.###.",
}
_GLYPH_W, _GLYPH_H = 5, 7
_GLYPHS = {
    ch: np.array([[c == "#" for c in row] for row in rows.split("|")], dtype=bool)
    for ch, rows in _GLYPH_ROWS.items()
}


def _text_mask(text: str, scale: int = 1) -> np.ndarray:
    """Boolean bitmap of ``text`` (one pixel of space between glyphs), enlarged ``scale`` times."""
    text = text.upper()
    if not text:
        return np.zeros((_GLYPH_H * scale, 0), dtype=bool)
    unknown = _GLYPHS["?"]
    cols = []
    for i, ch in enumerate(text):
        if i:
            cols.append(np.zeros((_GLYPH_H, 1), dtype=bool))
        cols.append(_GLYPHS.get(ch, unknown))
    mask = np.concatenate(cols, axis=1)
    return np.kron(mask, np.ones((scale, scale), dtype=bool)).astype(bool)


def text_width(text: str, scale: int = _SMALL) -> int:
    return _text_mask(text, scale).shape[1]


class _Canvas:
    def __init__(self, width: int, height: int):
        self.pixels = np.empty((height, width, 3), dtype=np.uint8)
        self.pixels[:] = _BG

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    def rect(self, x0: float, y0: float, x1: float, y1: float, color) -> None:
        """Fill the rectangle spanning the two corners (any order), clipped to the canvas."""
        xa, xb = sorted((int(round(x0)), int(round(x1))))
        ya, yb = sorted((int(round(y0)), int(round(y1))))
        xa, ya = max(xa, 0), max(ya, 0)
        xb, yb = min(xb, self.width), min(yb, self.height)
        if xa < xb and ya < yb:
            self.pixels[ya:yb, xa:xb] = color

    def line(self, x0: float, y0: float, x1: float, y1: float, color, thickness: int = 2) -> None:
        """A straight segment, stamped as small squares along its length."""
        steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        half = thickness / 2
        for t in np.linspace(0.0, 1.0, steps + 1):
            x, y = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
            self.rect(x - half, y - half, x + half, y + half, color)

    def text(self, x: float, y: float, text: str, color=_INK, scale: int = _SMALL, anchor: str = "left",
             vertical: bool = False) -> None:
        """Draw ``text`` with its top edge at ``y``; ``anchor`` left/center/right places it around ``x``.

        ``vertical`` turns it 90 degrees counter-clockwise (reads bottom to top), centred on (x, y).
        """
        mask = _text_mask(text, scale)
        if vertical:
            mask = np.rot90(mask)
            x -= mask.shape[1] / 2
            y -= mask.shape[0] / 2
        elif anchor == "center":
            x -= mask.shape[1] / 2
        elif anchor == "right":
            x -= mask.shape[1]
        x, y = int(round(x)), int(round(y))
        h, w = mask.shape
        xa, ya = max(x, 0), max(y, 0)
        xb, yb = min(x + w, self.width), min(y + h, self.height)
        if xa < xb and ya < yb:
            region = self.pixels[ya:yb, xa:xb]
            region[mask[ya - y : yb - y, xa - x : xb - x]] = color


def encode_png(pixels: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of an (H, W, 3) uint8 array: signature, IHDR, one IDAT, IEND."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width, channels = pixels.shape
    if channels != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {pixels.shape}")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    # Filter type 0 (none) before each row.
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), pixels.reshape(height, width * 3)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks = []
    t = first
    while t < hi + step * 0.999:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _tick_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.0e}"
    return f"{v:.4g}"


class _Axes:
    """Plot area inside margins, mapping data coordinates to pixels."""

    def __init__(self, canvas: _Canvas, title: str, ylabel: str, xlabel: str, y_ticks: list[float]):
        self.canvas = canvas
        self.y_lo, self.y_hi = y_ticks[0], y_ticks[-1]
        label_w = max(text_width(_tick_label(t)) for t in y_ticks)
        self.left = 40 + label_w + 14
        self.right = canvas.width - 30
        self.top = 100
        self.bottom = canvas.height - (90 if xlabel else 60)
        canvas.text(canvas.width / 2, 16, title, scale=_BIG, anchor="center")
        canvas.text(20, (self.top + self.bottom) / 2, ylabel, vertical=True)
        if xlabel:
            canvas.text((self.left + self.right) / 2, canvas.height - 34, xlabel, anchor="center")
        for t in y_ticks:
            y = self.y(t)
            canvas.rect(self.left, y, self.right, y + 1, _GRID)
            canvas.text(self.left - 10, y - _GLYPH_H * _SMALL / 2, _tick_label(t), anchor="right")
        canvas.rect(self.left, self.top, self.left + 1, self.bottom + 1, _INK)
        canvas.rect(self.left, self.bottom, self.right, self.bottom + 1, _INK)

    def y(self, v: float) -> float:
        return self.bottom - (v - self.y_lo) / (self.y_hi - self.y_lo) * (self.bottom - self.top)

    def legend(self, names: list[str]) -> None:
        """Series names with colour swatches, in a row above the plot area (wrapping if needed)."""
        x, y = self.left, 52
        row_h = _GLYPH_H * _SMALL + 6
        for i, name in enumerate(names):
            w = 24 + text_width(name) + 28
            if x + w > self.right and x > self.left:
                x, y = self.left, y + row_h
            self.canvas.rect(x, y, x + 16, y + _GLYPH_H * _SMALL, _PALETTE[i % len(_PALETTE)])
            self.canvas.text(x + 22, y, name)
            x += w


def _y_range(values: list[float], extra: list[float]) -> list[float]:
    finite = [v for v in values + extra if _finite(v)]
    lo = min([0.0] + finite)
    hi = max(finite) if finite else 1.0
    return nice_ticks(lo, hi * 1.05 if hi > 0 else hi)


def bar_chart(path, title: str, labels: list[str], series: dict[str, list[float]], ylabel: str,
              hline: float | None = None) -> None:
    """Grouped bars: one group per label, one bar per series, a dashed reference line at ``hline``."""
    for name, values in series.items():
        if len(values) != len(labels):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(labels)} labels")
    canvas = _Canvas(WIDTH, HEIGHT)
    all_values = [v for values in series.values() for v in values]
    ax = _Axes(canvas, title, ylabel, "", _y_range(all_values, [hline] if hline is not None else []))
    group_w = (ax.right - ax.left) / max(len(labels), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    zero = ax.y(max(ax.y_lo, 0.0))
    for g, label in enumerate(labels):
        x0 = ax.left + g * group_w + group_w * 0.1
        for s, values in enumerate(series.values()):
            v = values[g]
            if _finite(v):
                canvas.rect(x0 + s * bar_w + 1, ax.y(v), x0 + (s + 1) * bar_w - 1, zero, _PALETTE[s % len(_PALETTE)])
        canvas.text(ax.left + (g + 0.5) * group_w, ax.bottom + 12, label, anchor="center")
    if hline is not None and ax.y_lo <= hline <= ax.y_hi:
        y = ax.y(hline)
        for x in range(int(ax.left), int(ax.right), 12):
            canvas.rect(x, y - 1, min(x + 8, ax.right), y + 2, _INK)
    ax.legend(list(series))
    _write(path, canvas)


def line_chart(path, title: str, xs: list[float], series: dict[str, list[float]], xlabel: str,
               ylabel: str) -> None:
    """One line (with point markers) per series over the shared ``xs``; non-finite points leave gaps."""
    for name, values in series.items():
        if len(values) != len(xs):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(xs)} x values")
    canvas = _Canvas(WIDTH, HEIGHT)
    finite_y = [v for values in series.values() for v in values if _finite(v)]
    y_ticks = nice_ticks(min(finite_y), max(finite_y)) if finite_y else [0.0, 1.0]
    ax = _Axes(canvas, title, ylabel, xlabel, y_ticks)
    finite_x = [x for x in xs if _finite(x)]
    x_ticks = nice_ticks(min(finite_x), max(finite_x)) if finite_x else [0.0, 1.0]
    x_lo, x_hi = x_ticks[0], x_ticks[-1]

    def px(v: float) -> float:
        return ax.left + (v - x_lo) / (x_hi - x_lo) * (ax.right - ax.left)

    for t in x_ticks:
        canvas.rect(px(t), ax.bottom, px(t) + 1, ax.bottom + 6, _INK)
        canvas.text(px(t), ax.bottom + 12, _tick_label(t), anchor="center")
    for s, values in enumerate(series.values()):
        color = _PALETTE[s % len(_PALETTE)]
        prev = None
        for x, y in zip(xs, values):
            if not (_finite(x) and _finite(y)):
                prev = None
                continue
            point = (px(x), ax.y(y))
            if prev is not None:
                canvas.line(*prev, *point, color, thickness=3)
            if len(xs) <= 60:
                canvas.rect(point[0] - 3, point[1] - 3, point[0] + 4, point[1] + 4, color)
            prev = point
    ax.legend(list(series))
    _write(path, canvas)


def _write(path, canvas: _Canvas) -> None:
    with open(path, "wb") as f:
        f.write(encode_png(canvas.pixels))
