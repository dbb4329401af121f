"""PNG charts of the commands' results, drawn with matplotlib when it is installed (the ``[bench]`` and ``[train]``
extras). Without it the commands still write their JSON and markdown and say that charts were left out."""
from __future__ import annotations

import importlib.util
import math

INSTALL_HINT = "pip install 'fastinception[bench]'"


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _figure():
    # Optional (the [bench] and [train] extras), so imported only when a chart is drawn. The object-oriented API:
    # no pyplot global state and no GUI backend, so this works on a headless machine.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.8), layout="constrained")
    return fig, fig.add_subplot()


def _check_lengths(series: dict, count: int, what: str) -> None:
    for name, values in series.items():
        if len(values) != count:
            raise ValueError(f"series {name!r} has {len(values)} values for {count} {what}")


def bar_chart(path, title: str, labels: list[str], series: dict[str, list[float]], ylabel: str,
              hline: float | None = None) -> None:
    """Grouped bars: one group per label, one bar per series (a NaN value draws no bar), a dashed line at ``hline``."""
    _check_lengths(series, len(labels), "labels")
    fig, ax = _figure()
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        bars = [(g - 0.4 + (i + 0.5) * width, v) for g, v in enumerate(values) if math.isfinite(v)]
        ax.bar([x for x, _ in bars], [v for _, v in bars], width * 0.9, label=name)
    if hline is not None:
        ax.axhline(hline, color="black", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.savefig(path, dpi=100)


def line_chart(path, title: str, xs: list[float], series: dict[str, list[float]], xlabel: str, ylabel: str) -> None:
    """One line with point markers per series over the shared ``xs``; NaN points leave gaps."""
    _check_lengths(series, len(xs), "x values")
    fig, ax = _figure()
    for name, values in series.items():
        ax.plot(xs, values, marker="o", markersize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100)
