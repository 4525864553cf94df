"""Training-curve and confusion-matrix PNGs (matplotlib, Agg backend)."""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .metrics import Flags, Scores

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Figure, path: Path) -> Path:
    """Lay out, write as PNG (creating the folder) and close a figure."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(history: Mapping[str, Sequence[float]], path: Path, title: str) -> Path:
    """One panel per metric family (loss, then the rest), train and val series together, against whole epochs."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    families = sorted({k.removeprefix("val_") for k in history})
    families.sort(key=lambda k: (k != "loss", k))
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.4), squeeze=False)
    for ax, name in zip(axes[0], families):
        for key, style in ((name, "-"), (f"val_{name}", "--")):
            if key in history and len(history[key]):
                ax.plot(range(1, len(history[key]) + 1), history[key], style, marker="o", ms=3, label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.2, 1.4... ticks
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(plt, fig, path)


# The confusion matrix's colour bar: what the colour of a cell measures.
SHARE_OF_ROW = "share of the true class's images (each row sums to 1)"


def plot_confusion(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix with counts in each cell, its colour bar named."""
    plt = _pyplot()
    cm = np.asarray(matrix, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.2, 5.4))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046).set_label(SHARE_OF_ROW, fontsize=8)
    ax.set_title(textwrap.fill(title, 60), fontsize=10)
    return _save(plt, fig, path)


def plot_reliability(curves: Mapping[str, Mapping[str, Sequence[float]]], path: Path, title: str) -> Path:
    """Reliability diagram: accuracy against mean confidence per bin, one line per named curve (e.g. before and
    after calibration, or the served probabilities alone), each point labelled with its number of images."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
    for (label, series), style in zip(curves.items(), ("o-", "s--", "^-.")):
        count = np.asarray(series["count"])
        keep = count > 0
        x, y = np.asarray(series["confidence"])[keep], np.asarray(series["accuracy"])[keep]
        ax.plot(x, y, style, ms=4, label=label)
        if len(curves) == 1:
            for xi, yi, n in zip(x, y, count[keep]):
                ax.annotate(str(int(n)), (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=6)
    ax.set_xlabel("mean top-class confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(textwrap.fill(title, 48), fontsize=9)
    return _save(plt, fig, path)


def plot_roc(positive: Flags, scores: Scores, path: Path, title: str) -> Path:
    """ROC curve of a score for a positive class, with its AUC in the legend."""
    from .metrics import roc_auc

    plt = _pyplot()
    pos, sc = np.asarray(positive, bool), np.asarray(scores, np.float64)
    order = np.argsort(-sc, kind="mergesort")
    tpr = np.concatenate([[0.0], np.cumsum(pos[order]) / max(1, pos.sum())])
    fpr = np.concatenate([[0.0], np.cumsum(~pos[order]) / max(1, (~pos).sum())])
    auc = roc_auc(pos, sc)
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.plot(fpr, tpr, "-", label=f"AUC {auc:.3f}" if auc is not None else "AUC n/a")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    return _save(plt, fig, path)


def plot_bars(values: Mapping[str, float | None], path: Path, title: str, ylabel: str) -> Path:
    """One bar per key (None drawn as a gap), values on top, y from 0 to 1."""
    plt = _pyplot()
    keys = list(values)
    heights = [0.0 if (v := values[k]) is None else float(v) for k in keys]
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    bars = ax.bar(keys, heights, color="#4C72B0")
    for bar, key in zip(bars, keys):
        label = "n/a" if values[key] is None else f"{values[key]:.2f}"
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.02, label, ha="center", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title)
    return _save(plt, fig, path)


def plot_histograms(series: Mapping[str, Sequence[float]], path: Path, title: str, xlabel: str,
                    line: float | None = None) -> Path:
    """Overlaid histograms of several score series (e.g. in- and out-of-distribution), with an optional limit line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    values = [np.asarray(v, np.float64) for v in series.values() if len(v)]
    top = max(float(np.quantile(np.concatenate(values), 0.99)), line or 0.0) * 1.1 if values else 1.0
    bins = np.linspace(0.0, top, 40)
    for name, v in series.items():
        if len(v):
            ax.hist(np.clip(v, 0, top), bins=bins, alpha=0.55, label=f"{name} ({len(v)})")
    if line is not None:
        ax.axvline(line, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(plt, fig, path)
