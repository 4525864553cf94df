"""A classifier run stopped after an epoch continues with --resume (audit: a 30-80 min run lost to Ctrl-C started
again at epoch 1): the resumed run ends with the epochs and the weights of an uninterrupted one; a checkpoint of other
settings or data, or none, is refused by name."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from training.classifier.checkpoint import checkpoint_path
from training.classifier.run import run_classifier, staged_outputs
from training.classifier.train import ClassifierConfig
from training.errors import ResumeError

from .tiny_classifier_runs import interrupt_after_epoch, tiny_classifier_data

# Every random stream and stateful part of the recipe in use: mixup and the sampling (NumPy), dropout (torch), the
# moving average, the warm-up + cosine schedule, a switch of resolution between epoch 2 and 3, selection after epoch 1.
CONFIG = dict(epochs=4, low_res_epochs=2, low_res=32, batch_size=4, warmup_epochs=1, augment=False, bf16=False,
              progress=False, mixup=0.4, dropout=0.2, ema=0.9, select_after=0.25, seed=3)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "classifier_resnet18.pt", weights_only=True)


def test_a_run_stopped_after_epoch_2_and_resumed_ends_as_an_uninterrupted_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    config = ClassifierConfig(**CONFIG)
    whole = tmp_path / "whole"
    with staged_outputs(whole, "classifier") as staging:
        run_classifier(tiny_classifier_data(), whole, "classifier", config, staging)
    assert not checkpoint_path(whole, "classifier").exists()  # a finished run leaves no checkpoint

    out = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, 2)
        with caplog.at_level(logging.WARNING, logger="training.classifier.run"), pytest.raises(KeyboardInterrupt):
            with staged_outputs(out, "classifier") as staging:
                run_classifier(tiny_classifier_data(), out, "classifier", config, staging)
    saved = torch.load(checkpoint_path(out, "classifier"), weights_only=True)
    assert saved["epochs_done"] == 2 and len(saved["history"]["loss"]) == 2
    assert not (out / "classifier_metrics.json").exists()
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("interrupted")]
    assert f"rerun with --resume to continue from epoch 3 (its checkpoint is {checkpoint_path(out, 'classifier')})" in line
    note = json.loads((out / "classifier_interrupted.json").read_text())
    assert "rerun with --resume to continue from epoch 3" in note["note"]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="training.classifier.train"):
        with staged_outputs(out, "classifier") as staging:
            _, report = run_classifier(tiny_classifier_data(), out, "classifier", config, staging, resume=True)
    assert "resuming from checkpoint" in caplog.text and "2 of 4 epochs done" in caplog.text
    epochs = [r.getMessage().split()[1] for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert epochs == ["3/4", "4/4"]  # only the epochs the stopped run had not done
    expected = json.loads((whole / "classifier_metrics.json").read_text())
    assert report["history"] == expected["history"]  # four epochs, each the same figures
    assert report["best_epoch"] == expected["best_epoch"]
    reference, resumed = _weights(whole), _weights(out)
    assert reference.keys() == resumed.keys()
    different = [k for k in reference if not torch.equal(reference[k], resumed[k])]
    assert different == []  # bit for bit (CPU, float32, same threads)
    left = sorted(p.name for p in out.iterdir())
    assert "classifier_resume.pt" not in left and "classifier_interrupted.json" not in left
    assert "classifier_metrics.json" in left


def test_resume_refuses_a_checkpoint_of_other_settings_or_data_naming_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "cls"
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            run_classifier(tiny_classifier_data(), out, "classifier", ClassifierConfig(**CONFIG))
    checkpoint = checkpoint_path(out, "classifier")
    before = checkpoint.read_bytes()
    other = ClassifierConfig(**{**CONFIG, "learning_rate": 1e-3, "seed": 4})
    with pytest.raises(ResumeError) as refused:
        run_classifier(tiny_classifier_data(), out, "classifier", other, resume=True)
    message = str(refused.value)
    assert message.startswith(f"--resume: checkpoint {checkpoint} (fingerprint ")
    assert "is of another run than this one (fingerprint " in message
    assert "learning_rate: 0.002 in the checkpoint, 0.001 now; seed: 3 in the checkpoint, 4 now" in message
    assert "leave out --resume to start again from epoch 1" in message
    with pytest.raises(ResumeError, match="the training and validation images differ"):
        run_classifier(tiny_classifier_data(seed=1), out, "classifier", ClassifierConfig(**CONFIG), resume=True)
    one_changed = tiny_classifier_data()
    one_changed.sets["train"].crops[3, 0, 0] ^= 1  # one pixel of the fourth training image (val is the same array)
    with pytest.raises(ResumeError) as refused:
        run_classifier(one_changed, out, "classifier", ClassifierConfig(**CONFIG), resume=True)
    assert "now: train: 1 changed (tiny/img_3); val: 1 changed (tiny/img_3))" in str(refused.value)  # named, not a digest
    progress_only = ClassifierConfig(**{**CONFIG, "progress": True})  # how a run shows itself is no other run
    from training.classifier.checkpoint import check_resumable
    from training.resume import Checkpointing

    check_resumable(Checkpointing(checkpoint, resume=True), progress_only)
    assert checkpoint.read_bytes() == before  # a refused resume leaves the checkpoint for the right flags


def test_resume_without_a_checkpoint_is_refused_before_the_data_is_read(tmp_path: Path) -> None:
    from tests.training.conftest import run_python

    out = tmp_path / "cls"
    with pytest.raises(ResumeError, match=rf"--resume: checkpoint {out / 'classifier_resume.pt'} does not exist; "
                                          "expected the checkpoint an unfinished run .*pass the --out \\(and --name\\) "
                                          "of that run, or leave out --resume to start at epoch 1"):
        run_classifier(tiny_classifier_data(), out, "classifier", ClassifierConfig(**CONFIG), resume=True)
    proc = run_python("-m", "dermassist.cli", "train", "classifier", "--data", str(tmp_path / "no_data_here"), "--out",
                      str(out), "--resume", "--epochs", "2", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"--resume: checkpoint {out / 'classifier_resume.pt'} does not exist" in proc.stderr  # not the absent --data
    assert not out.exists()
