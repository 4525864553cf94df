"""The reliability diagram of ``dermassist evaluate``, which a site-validation reader needs more from than training's.

It keeps every bin's count inside its frame and draws the ECE floor: the band the diagonal +- the ECE a perfectly
calibrated model stays under in 95% of draws on as many images. The other plots of a report come from
``training.plots``.
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: How far from the frame (in points) a bin's count is written, and where a point counts as at the frame's edge.
COUNT_OFFSET = 4
NEAR_EDGE = 0.9


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reliability_figure(series: Mapping[str, Sequence[float]], title: str, floor: Mapping[str, float] | None,
                       images: int) -> Any:
    """The reliability diagram of the served probabilities (``series``: count, confidence and accuracy per bin) as a
    matplotlib Figure: each bin's count is written beside its point, inside the frame (below a point near the top,
    left of one near the right edge); with ``floor`` (the report's ``ece_if_calibrated``), the band of the diagonal
    +- its 95th percentile: a curve inside it on the whole is within what ``images`` images alone produce."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 5.6))
    if floor:
        xs = np.array([0.0, 1.0])
        ax.fill_between(xs, xs - floor["p95"], xs + floor["p95"], color="grey", alpha=0.18, lw=0,
                        label=f"diagonal \u00b1 {floor['p95']:.3f}: ECE floor (95th percentile of a perfectly "
                              f"calibrated model's ECE on {images} images)")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    count = np.asarray(series["count"])
    keep = count > 0
    x, y = np.asarray(series["confidence"])[keep], np.asarray(series["accuracy"])[keep]
    ax.plot(x, y, "o-", ms=4, label="served probabilities (number: images in the bin)")
    for xi, yi, n in zip(x, y, count[keep]):
        right, top = xi > NEAR_EDGE, yi > NEAR_EDGE
        ax.annotate(str(int(n)), (xi, yi), textcoords="offset points", fontsize=6,
                    xytext=(-COUNT_OFFSET if right else COUNT_OFFSET, -COUNT_OFFSET if top else COUNT_OFFSET),
                    ha="right" if right else "left", va="top" if top else "bottom")
    ax.set_xlabel("mean top-class confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)  # a point at accuracy 1.0 stays whole inside the frame
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1, frameon=False)
    ax.set_title(textwrap.fill(title, 52), fontsize=9)
    return fig


def save_figure(fig: Any, path: Path) -> Path:
    """Write a figure as PNG (the folder created; legends below the frame kept) and close it."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
