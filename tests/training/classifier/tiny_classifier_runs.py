"""Shared by the tests of stopped and resumed classifier runs: tiny data, and a Ctrl-C as an epoch ends."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest


def tiny_classifier_data(seed: int = 0) -> Any:
    """Eight random 224 px crops, one per class, as every split of a ClassifierData (imported here, not at the top:
    torch is loaded only by the tests that train)."""
    from training.classifier.data import CropSet
    from training.classifier.run import ClassifierData

    rng = np.random.default_rng(seed)
    crops = CropSet(rng.integers(0, 256, (8, 224, 224, 3), dtype=np.uint8), np.arange(8, dtype=np.int64), with_mask=8,
                    sources=("tiny",) * 8, image_ids=tuple(f"img_{i}" for i in range(8)))
    return ClassifierData((), {"train": (), "val": (), "test": ()}, {"train": crops, "val": crops, "test": crops})


def interrupt_after_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Ctrl-C as epoch ``epoch`` of run_classifier's training ends (after that epoch's checkpoint is saved)."""
    import training.classifier.run as run
    from training.classifier.train import train_classifier

    def stop(done: int, model: Any, val_logits: Any) -> None:
        if done == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(run, "train_classifier", lambda *a, **k: train_classifier(*a, **k, on_epoch=stop))
