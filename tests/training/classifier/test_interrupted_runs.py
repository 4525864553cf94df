"""Ctrl-C during a training run (audit finding 2): the best epoch reached is saved under an unfinished run's names,
said in one line, and the interrupt goes on (exit 130); an earlier run in --out stays whole (finding 3)."""
from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from training.child import child_env

from .tiny_classifier_runs import interrupt_after_epoch, tiny_classifier_data

CONFIG = dict(epochs=4, low_res_epochs=4, low_res=32, batch_size=4, warmup_epochs=0, augment=False, bf16=False,
              progress=False)


def test_an_interrupted_classifier_run_saves_its_best_epoch_as_unfinished_and_leaves_the_earlier_run_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import torch

    from training.classifier.run import run_classifier, staged_outputs
    from training.classifier.train import ClassifierConfig, build_resnet18

    out = tmp_path / "cls"
    out.mkdir()
    earlier = {"classifier_split.json": '{"run": 1}', "classifier_metrics.json": '{"run": 1}',
               "classifier_resnet18.pt": "run 1"}
    for name, text in earlier.items():
        (out / name).write_text(text)
    interrupt_after_epoch(monkeypatch, 3)
    config = ClassifierConfig(**CONFIG, select_after=0.0)
    with caplog.at_level(logging.WARNING, logger="training.classifier.run"), pytest.raises(KeyboardInterrupt):
        with staged_outputs(out, "classifier") as staging:
            run_classifier(tiny_classifier_data(), out, "classifier", config, staging)
    for name, text in earlier.items():  # run 1 untouched: its splits were not replaced before run 2 had weights
        assert (out / name).read_text() == text
    assert not (out / ".classifier.staging").exists()
    note = json.loads((out / "classifier_interrupted.json").read_text())
    assert note["finished"] is False and note["interrupted_after_epoch"] == 3 and note["epochs"] == 4
    assert 1 <= note["saved_epoch"] <= 3 and note["saved_is_best"] is True
    model = build_resnet18(None)
    model.load_state_dict(torch.load(out / "classifier_interrupted_resnet18.pt", weights_only=True))  # loads whole
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("interrupted")]
    assert line.startswith("interrupted after epoch 3 of 4: the run did NOT finish; the best epoch so far (epoch "
                           f"{note['saved_epoch']}, val balanced acc ")
    assert f"saved in {out / 'classifier_interrupted_resnet18.pt'}" in line
    assert line.endswith(f"rerun with --resume to continue from epoch 4 (its checkpoint is {out / 'classifier_resume.pt'})")


def test_before_any_selectable_epoch_the_latest_is_saved_and_before_any_epoch_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from training.classifier.run import run_classifier
    from training.classifier.train import ClassifierConfig

    interrupt_after_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        run_classifier(tiny_classifier_data(), tmp_path / "a", "classifier", ClassifierConfig(**CONFIG, select_after=0.9))
    note = json.loads((tmp_path / "a" / "classifier_interrupted.json").read_text())
    assert note["saved_epoch"] == 1 and note["saved_is_best"] is False and "latest epoch" in note["note"]
    assert not (tmp_path / "a" / "classifier_split.json").exists()

    import training.classifier.train as train

    def stop_at_once(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "forward_train", stop_at_once)
    with caplog.at_level(logging.WARNING, logger="training.classifier.run"), pytest.raises(KeyboardInterrupt):
        run_classifier(tiny_classifier_data(), tmp_path / "b", "classifier", ClassifierConfig(**CONFIG))
    assert not (tmp_path / "b").exists()
    assert "interrupted in epoch 1 of 4, before any epoch ended: the run did not finish and nothing was saved" \
        in caplog.text


def test_staged_outputs_replace_the_earlier_run_together_only_when_the_run_ends(tmp_path: Path) -> None:
    from training.classifier.run import staged_outputs

    out = tmp_path / "cls"
    out.mkdir()
    (out / "classifier_split.json").write_text("run 1")
    (out / "classifier_interrupted.json").write_text("an interrupted run 2")
    with pytest.raises(RuntimeError), staged_outputs(out, "classifier") as staging:
        (staging / "classifier_split.json").write_text("run 3")
        raise RuntimeError("the run failed")
    assert sorted(p.name for p in out.iterdir()) == ["classifier_interrupted.json", "classifier_split.json"]
    assert (out / "classifier_split.json").read_text() == "run 1"
    with staged_outputs(out, "classifier") as staging:
        (staging / "classifier_split.json").write_text("run 4")
        (staging / "classifier_metrics.json").write_text("run 4")
    assert sorted(p.name for p in out.iterdir()) == ["classifier_metrics.json", "classifier_split.json"]
    assert (out / "classifier_split.json").read_text() == "run 4"
    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt), staged_outputs(fresh, "classifier"):
        raise KeyboardInterrupt
    assert not fresh.exists()  # a run stopped with nothing to keep leaves no empty --out


@pytest.mark.slow
def test_ctrl_c_during_train_segmenter_saves_the_best_epoch_and_exits_130(synthetic_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg"
    (tmp_path / "seg").mkdir()
    (out / "segmenter_split.json").write_text('{"run": 1}')
    cmd = [sys.executable, "-m", "dermassist.cli", "train", "segmenter", "--data", str(synthetic_set / "isic2018"),
           "--out", str(out), "--width", "0.0625", "--epochs", "30", "--batch-size", "8", "--max-train-images", "16",
           "--warmup-epochs", "0"]
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    deadline = time.monotonic() + 300
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "epoch 2/30" in line and "val served Jaccard" in line:
            proc.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline, "".join(lines[-20:])
    rest, _ = proc.communicate(timeout=120)
    log = "".join(lines) + rest
    assert proc.returncode == 130, log[-3000:]
    note = json.loads((out / "segmenter_interrupted.json").read_text())
    assert note["finished"] is False and note["interrupted_after_epoch"] >= 2 and note["epochs"] == 30
    assert (out / "segmenter_interrupted.keras").is_file()
    assert not (out / "segmenter.keras").exists() and not (out / "segmenter_metrics.json").exists()
    assert (out / "segmenter_split.json").read_text() == '{"run": 1}'  # the earlier run's, not replaced before weights
    assert (f"the run did NOT finish; the best epoch so far (epoch {note['saved_epoch']}, val served Jaccard "
            in log), log[-3000:]
    assert f"is saved in {out / 'segmenter_interrupted.keras'}" in log
    assert f"rerun with --resume to continue from epoch {note['interrupted_after_epoch'] + 1} (its checkpoint is " \
           f"{out / 'segmenter_resume.npz'})" in log
    assert (out / "segmenter_resume.npz").is_file() and not (out / ".segmenter.staging").exists()
