"""A segmenter run stopped after an epoch continues with --resume (its weights, optimizer step and moments, best
epoch and history), a checkpoint of other settings, or none, is refused by name; and the segmenter's --out is staged:
a stopped or failed run leaves the earlier run's files whole, a finished one replaces them together (audit: a stopped
run left --out with a mix of two runs' files)."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from training.errors import ResumeError

EARLIER = {"segmenter_split.json": '{"run": 1}', "segmenter_metrics.json": '{"run": 1}', "segmenter.keras": "run 1",
           "segmenter_curves.png": "run 1", "predicted_masks/ISIC_old.png": "run 1"}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 small synthetic images in the ISIC 2018 Task 1 layout (16 train, 4 validation, 4 test)."""
    from training.synth.generator import SynthConfig, generate

    root = tmp_path_factory.mktemp("tiny_seg")
    generate(root, SynthConfig(count=24, seed=7, width=300, height=225), progress=False)
    return root / "isic2018"


def _args(data: Path, out: Path, *extra: str) -> argparse.Namespace:
    from training.segmenter.stage import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--data", str(data), "--out", str(out), "--width", "0.0625", "--epochs", "3",
                              "--batch-size", "4", "--max-train-images", "8", "--warmup-epochs", "0", "--seed", "2",
                              "--predict-masks", str(data), *extra])


def _earlier_run(out: Path) -> None:
    for name, text in EARLIER.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)


def _assert_earlier_run_whole(out: Path) -> None:
    for name, text in EARLIER.items():
        assert (out / name).read_text() == text, name
    assert sorted(p.name for p in (out / "predicted_masks").iterdir()) == ["ISIC_old.png"]
    assert not (out / ".segmenter.staging").exists()


def _hook(monkeypatch: pytest.MonkeyPatch, on_epoch) -> None:
    """Pass ``on_epoch`` to the stage's training."""
    import training.segmenter.stage as stage
    from training.segmenter.train import train_segmenter

    monkeypatch.setattr(stage, "train_segmenter", lambda *a, **k: train_segmenter(*a, **k, on_epoch=on_epoch))


def test_a_stopped_segmenter_run_keeps_the_earlier_out_whole_and_resumes_to_replace_it_together(
        tiny_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from training.segmenter.stage import run
    from training.segmenter.train import CHECKPOINT

    out = tmp_path / "seg"
    _earlier_run(out)
    steps: dict[int, int] = {}

    def stop_after_2(done: int, model) -> None:
        steps[done] = int(model.optimizer.iterations.numpy())
        if done == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        _hook(patch, stop_after_2)
        with caplog.at_level(logging.WARNING, logger="training.segmenter.train"), pytest.raises(KeyboardInterrupt):
            run(_args(tiny_set, out))
    _assert_earlier_run_whole(out)  # nothing of the stopped run among the earlier run's files
    with np.load(out / CHECKPOINT) as saved:
        meta = json.loads(str(saved["meta"]))
    assert meta["epochs_done"] == 2 and len(meta["history"]["loss"]) == 2 and 1 <= meta["best_epoch"] <= 2
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("interrupted")]
    assert line.endswith(f"rerun with --resume to continue from epoch 3 (its checkpoint is {out / CHECKPOINT})")
    note = json.loads((out / "segmenter_interrupted.json").read_text())
    assert "rerun with --resume to continue from epoch 3" in note["note"]

    caplog.clear()
    with monkeypatch.context() as patch:
        _hook(patch, lambda done, model: steps.__setitem__(done, int(model.optimizer.iterations.numpy())))
        with caplog.at_level(logging.INFO, logger="training.segmenter.train"):
            report = run(_args(tiny_set, out, "--resume"))
    assert "resuming from checkpoint" in caplog.text and "2 of 3 epochs done" in caplog.text
    assert f"predicting the masks of {tiny_set}: 24 of 24 images (done)" in caplog.text  # a line each tenth, the last
    assert steps == {1: 2, 2: 4, 3: 6}  # the optimizer's step (and so its schedule) went on where it stopped
    assert report["resumed_after_epoch"] == 2
    assert len(report["history"]["loss"]) == 3 and len(report["history"]["val_served_jaccard"]) == 3
    assert report["history"]["val_served_jaccard"][:2] == meta["history"]["val_served_jaccard"]
    finished = json.loads((out / "segmenter_metrics.json").read_text())
    assert finished["resumed_after_epoch"] == 2 and finished["threshold"] == report["threshold"]
    assert json.loads((out / "segmenter_split.json").read_text())["train"]
    assert (out / "segmenter.keras").stat().st_size > 1000
    masks = sorted(p.name for p in (out / "predicted_masks").iterdir())
    assert len(masks) == 25 and "ISIC_old.png" not in masks  # the folder replaced whole, not merged
    record = json.loads((out / "predicted_masks" / "masks.json").read_text())  # 24 masks and their segmenter's record
    assert record["threshold"] == report["threshold"] and record["segmenter"] == str(out / "segmenter.keras")
    assert "mixed_with" not in record
    assert report["predicted_masks"] == {"folder": str(out / "predicted_masks"), "count": 24}
    # the log names the folder the masks are in once the run is done, not the staging folder (site audit 13)
    assert f"wrote 24 predicted masks for {tiny_set} to {out / 'predicted_masks'}" in caplog.text
    assert ".segmenter.staging" not in caplog.text
    left = {p.name for p in out.iterdir()}
    assert left == {"segmenter_metrics.json", "segmenter_split.json", "segmenter_curves.png", "segmenter.keras",
                    "predicted_masks"}  # no checkpoint, no interrupted run's files, no staging folder


def test_a_segmenter_run_that_fails_after_training_leaves_out_as_it_was(
        tiny_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import training.segmenter.train as train
    from training.errors import TrainingError
    from training.segmenter.stage import run

    out = tmp_path / "seg"
    _earlier_run(out)

    def fail(*args, **kwargs) -> int:
        raise TrainingError("the disk is full")

    monkeypatch.setattr(train, "write_predicted_masks", fail)
    with pytest.raises(TrainingError, match="the disk is full"):
        run(_args(tiny_set, out, "--epochs", "1"))
    _assert_earlier_run_whole(out)
    with np.load(out / train.CHECKPOINT) as saved:  # its training is done: --resume goes straight to what follows
        assert json.loads(str(saved["meta"]))["epochs_done"] == 1
    fresh = tmp_path / "fresh"
    with pytest.raises(TrainingError, match="the disk is full"):
        run(_args(tiny_set, fresh, "--epochs", "1"))
    assert sorted(p.name for p in fresh.iterdir()) == [train.CHECKPOINT]  # no output of a run that did not finish


def test_resume_refuses_another_runs_checkpoint_and_a_missing_one_before_reading_data(
        tiny_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.segmenter.stage import run
    from training.segmenter.train import CHECKPOINT

    out = tmp_path / "seg"
    missing = tmp_path / "nothing_here"
    with pytest.raises(ResumeError, match=rf"--resume: checkpoint {out / CHECKPOINT} does not exist; expected the "
                                          "checkpoint an unfinished run"):
        run(_args(missing, out, "--resume"))  # before the absent --data is read
    assert not out.exists()

    def stop(done: int, model) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        _hook(patch, stop)
        with pytest.raises(KeyboardInterrupt):
            run(_args(tiny_set, out))
    before = (out / CHECKPOINT).read_bytes()
    with pytest.raises(ResumeError) as refused:
        run(_args(missing, out, "--resume", "--width", "0.125", "--epochs", "4"))
    message = str(refused.value)
    assert message.startswith(f"--resume: checkpoint {out / CHECKPOINT} (fingerprint ")
    assert "is of another run than this one (fingerprint " in message
    assert "epochs: 3 in the checkpoint, 4 now; unet.width: 0.0625 in the checkpoint, 0.125 now" in message
    assert (out / CHECKPOINT).read_bytes() == before

    # the same flags on a copy of the data whose one training mask differs: the refusal names that image
    meta = json.loads(str(np.load(out / CHECKPOINT)["meta"]))
    recorded = meta["fingerprint"]["images"]
    assert sorted(recorded) == ["train", "val"] and len(recorded["train"]) == 8 and len(recorded["val"]) == 4
    name = sorted(recorded["train"])[0]
    assert name.startswith("isic2018/ISIC_")
    import shutil

    import cv2

    copy = tmp_path / "copy" / "isic2018"
    shutil.copytree(tiny_set, copy)
    (mask,) = copy.rglob(f"{name.split('/')[1]}_segmentation.png")
    pixels = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
    pixels[:8, :8] = 255 - pixels[:8, :8]
    cv2.imwrite(str(mask), pixels)
    with pytest.raises(ResumeError) as refused:
        run(_args(copy, out, "--resume"))
    assert f"now: train: 1 changed ({name}))" in str(refused.value)


def test_sigterm_stops_a_segmenter_run_as_ctrl_c_does_and_puts_the_handler_back(
        tiny_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A scheduler's or container's stop saves the best epoch reached (it killed a segmenter run outright)."""
    import os
    import signal
    import time

    from training.segmenter.stage import run
    from training.segmenter.train import CHECKPOINT, INTERRUPTED_MODEL, INTERRUPTED_NOTE
    from training.signals import Terminated

    def terminate_after_2(done: int, model) -> None:
        if done == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):  # the handler runs between two bytecodes of the main thread
                time.sleep(0.01)
            pytest.fail("SIGTERM did not stop the training")

    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "seg"
    with monkeypatch.context() as patch:
        _hook(patch, terminate_after_2)
        with caplog.at_level(logging.WARNING, logger="training.segmenter.train"), pytest.raises(Terminated):
            run(_args(tiny_set, out))
    assert signal.getsignal(signal.SIGTERM) is before
    assert "stopped by signal SIGTERM: stopping the training as for Ctrl-C" in caplog.text
    note = json.loads((out / INTERRUPTED_NOTE).read_text())
    assert note["interrupted_after_epoch"] == 2 and note["note"].startswith("interrupted (Ctrl-C or SIGTERM)")
    assert (out / INTERRUPTED_MODEL).is_file()
    with np.load(out / CHECKPOINT) as saved:
        assert json.loads(str(saved["meta"]))["epochs_done"] == 2
