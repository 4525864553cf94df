"""A classifier run stopped while its checkpoint is written, or by SIGTERM (site audit findings 7 and 13): what the
interrupted run says it saved is what the checkpoint file holds, and SIGTERM saves and says it as Ctrl-C does."""
from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .tiny_classifier_runs import tiny_classifier_data

CONFIG = dict(epochs=4, low_res_epochs=4, low_res=32, batch_size=4, warmup_epochs=0, augment=False, bf16=False,
              progress=False, select_after=0.0)


def test_ctrl_c_while_epoch_3s_checkpoint_is_written_reports_the_epoch_the_checkpoint_holds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import torch

    import training.classifier.checkpoint as checkpoint
    from training.classifier.checkpoint import checkpoint_path
    from training.classifier.run import run_classifier
    from training.classifier.train import ClassifierConfig

    real_save = checkpoint.save_checkpoint
    histories: list[int] = []

    def save_then_stop_at_3(path: Path, state: dict[str, Any]) -> Path:
        histories.append(len(state["history"]["loss"]))
        if state["epochs_done"] == 3:  # epoch 3 is in the history; the atomic write leaves epoch 2's file
            raise KeyboardInterrupt
        return real_save(path, state)

    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_stop_at_3)
    out = tmp_path / "cls"
    config = ClassifierConfig(**CONFIG)
    with caplog.at_level(logging.INFO), pytest.raises(KeyboardInterrupt):
        run_classifier(tiny_classifier_data(), out, "classifier", config)
    assert histories == [1, 2, 3]
    saved = torch.load(checkpoint_path(out, "classifier"), weights_only=True)
    assert saved["epochs_done"] == 2
    note = json.loads((out / "classifier_interrupted.json").read_text())
    assert note["interrupted_after_epoch"] == 2 and note["saved_epoch"] <= 2
    assert "from epoch 3" in note["note"]
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("interrupted")]
    assert line.startswith("interrupted after epoch 2 of 4: ")
    assert "rerun with --resume to continue from epoch 3 (" in line
    assert not any(r.getMessage().startswith("epoch 3/4") for r in caplog.records)

    monkeypatch.setattr(checkpoint, "save_checkpoint", real_save)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_classifier(tiny_classifier_data(), out, "classifier", config, resume=True)
    assert "2 of 4 epochs done" in caplog.text
    assert any(r.getMessage().startswith("epoch 3/4") for r in caplog.records)


def test_sigterm_while_training_saves_what_was_reached_says_so_and_puts_the_handler_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import training.classifier.run as run
    from training.classifier.run import run_classifier
    from training.classifier.train import ClassifierConfig, train_classifier
    from training.signals import Terminated

    def terminate_after(done: int, model: Any, val_logits: Any) -> None:
        if done == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):  # the handler runs between two bytecodes of the main thread
                time.sleep(0.01)
            pytest.fail("SIGTERM did not stop the training")

    monkeypatch.setattr(run, "train_classifier", lambda *a, **k: train_classifier(*a, **k, on_epoch=terminate_after))
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "cls"
    with caplog.at_level(logging.INFO), pytest.raises(Terminated):
        run_classifier(tiny_classifier_data(), out, "classifier", ClassifierConfig(**CONFIG))
    assert signal.getsignal(signal.SIGTERM) is before
    assert "stopped by signal SIGTERM: stopping the training as for Ctrl-C" in caplog.text
    note = json.loads((out / "classifier_interrupted.json").read_text())
    assert note["interrupted_after_epoch"] == 2
    assert (out / "classifier_interrupted_resnet18.pt").is_file() and (out / "classifier_resume.pt").is_file()
    assert "rerun with --resume to continue from epoch 3" in caplog.text
