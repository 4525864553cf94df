"""Training curves are drawn against whole epochs (site audit 13: a 2-epoch run's curves had ticks 1.2, 1.4, ...)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.mark.parametrize("epochs", [2, 3, 7])
def test_training_curves_have_whole_epoch_ticks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, epochs: int) -> None:
    import training.plots as plots

    ticks: list[list[float]] = []
    real_save = plots._save

    def keep_ticks(plt: Any, fig: Any, path: Path) -> Path:
        ticks.extend([float(t) for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
                     for ax in fig.axes)
        return real_save(plt, fig, path)

    monkeypatch.setattr(plots, "_save", keep_ticks)
    history = {"loss": [1.0 - 0.1 * i for i in range(epochs)], "val_loss": [1.1 - 0.1 * i for i in range(epochs)],
               "val_balanced_accuracy": [0.1 * i for i in range(epochs)]}
    path = plots.plot_curves(history, tmp_path / "run_curves.png", "run")
    assert path.stat().st_size > 1000
    assert len(ticks) == 2  # loss, balanced_accuracy
    for panel in ticks:
        assert panel and all(t == int(t) for t in panel), panel
