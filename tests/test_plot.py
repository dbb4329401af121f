"""The PNG writer: valid files of the stated size, exact pixel round trip, readable input errors."""
import math
import struct
import zlib

import numpy as np
import pytest

from fastinception import plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    """(width, height, pixels) of an 8-bit RGB PNG with unfiltered rows, checking every chunk's CRC."""
    data = open(path, "rb").read()
    assert data[:8] == PNG_SIGNATURE
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind}"
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _ in chunks][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, color, _, _, _ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, color) == (8, 2)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, 1 + width * 3)
    assert (rows[:, 0] == 0).all()
    return width, height, rows[:, 1:].reshape(height, width, 3)


def test_encode_png_round_trips_pixels(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    path = tmp_path / "p.png"
    path.write_bytes(plot.encode_png(pixels))
    width, height, back = read_png(path)
    assert (width, height) == (5, 7)
    assert np.array_equal(back, pixels)


def _colours(pixels):
    return {tuple(p) for p in pixels.reshape(-1, 3)}


def test_bar_chart_is_a_png_with_bars_in_each_series_colour(tmp_path):
    path = tmp_path / "bars.png"
    plot.bar_chart(path, "Speed-up, fwd fp16 batch 128", ["3a", "4e", "5b"],
                   {"vs eager": [1.5, 2.0, math.nan], "vs torch.compile": [1.1, 0.9, 1.2]}, "speed-up (x)", hline=1.0)
    width, height, pixels = read_png(path)
    assert (width, height) == (plot.WIDTH, plot.HEIGHT)
    colours = _colours(pixels)
    assert plot._PALETTE[0] in colours and plot._PALETTE[1] in colours
    assert plot._INK in colours  # axes, labels and the reference line


def test_line_chart_draws_lines_with_gaps(tmp_path):
    path = tmp_path / "lines.png"
    xs = [float(i) for i in range(20)]
    plot.line_chart(path, "loss", xs, {"train": [1 / (1 + x) for x in xs],
                                        "val": [math.nan if i % 5 == 0 else 0.5 for i in range(20)]}, "step", "loss")
    width, height, pixels = read_png(path)
    assert (width, height) == (plot.WIDTH, plot.HEIGHT)
    assert {plot._PALETTE[0], plot._PALETTE[1]} <= _colours(pixels)


def test_series_length_must_match(tmp_path):
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        plot.bar_chart(tmp_path / "x.png", "t", ["a", "b", "c"], {"s": [1.0, 2.0]}, "y")
    with pytest.raises(ValueError, match="1 values for 2 x values"):
        plot.line_chart(tmp_path / "y.png", "t", [0.0, 1.0], {"s": [1.0]}, "x", "y")


def test_text_is_drawn_from_the_bitmap_font():
    mask = plot._text_mask("Ab1", scale=1)
    assert mask.shape == (7, 3 * 5 + 2)
    assert np.array_equal(mask[:, :5], plot._GLYPHS["A"])  # lower case is drawn in capitals
    assert np.array_equal(plot._text_mask("b"), plot._text_mask("B"))


@pytest.mark.parametrize("lo, hi", [(0, 1), (0, 2.7), (0.3, 0.31), (-5, 130), (0, 1e6)])
def test_nice_ticks_cover_the_range_with_round_steps(lo, hi):
    ticks = plot.nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 5))
    assert 2 <= len(ticks) <= 12
