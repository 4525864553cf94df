"""The two plots of ``dermassist evaluate`` that a site-validation reader needs more from than training's plots give.

The confusion matrix names its colour bar (the share of each row: of one true class's images, the share given each
class), and the reliability diagram keeps every bin's count inside its frame and draws the ECE floor: the band the
diagonal +- the ECE a perfectly calibrated model stays under in 95% of draws on as many images. ``training.plots``
(shared with training) is left as it is; the other plots of a report come from there.
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: The colour bar's label: what the colour of a cell measures.
SHARE_OF_ROW = "share of the true class's images (each row sums to 1)"
#: How far from the frame (in points) a bin's count is written, and where a point counts as at the frame's edge.
COUNT_OFFSET = 4
NEAR_EDGE = 0.9


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_figure(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> Any:
    """The row-normalised confusion matrix (counts in the cells) as a matplotlib Figure, its colour bar labelled."""
    plt = _pyplot()
    cm = np.asarray(matrix, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.6, 5.4))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046).set_label(SHARE_OF_ROW, fontsize=8)
    ax.set_title(textwrap.fill(title, 60), fontsize=10)
    return fig


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
