"""The build state a release build resumes by: written whole or not at all, and a corrupt one named, not dropped."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import training.pipeline as pipeline
from tests.conftest import PROJECT_ROOT
from training.errors import TrainingError
from training.release import CLASSIFIER_WEIGHTS, SEGMENTER_WEIGHTS, update_release

RECIPE = pipeline.Recipe(seg_data="seg", seg_extra=(), cls_data=("cls",), seg_args=(), cls_args=())


def _config(tmp_path: Path, force: bool = False) -> pipeline.BuildConfig:
    for folder in ("seg", "cls"):
        (tmp_path / "data" / folder).mkdir(parents=True, exist_ok=True)
    return pipeline.BuildConfig(data=tmp_path / "data", out=tmp_path / "out", runs=tmp_path / "runs", recipe=RECIPE,
                                force=force)


def _stub_stages(monkeypatch: pytest.MonkeyPatch, config: pipeline.BuildConfig) -> list[str]:
    """Stages that write what the real ones leave (weights under the release's names, metrics, masks) at once."""
    ran: list[str] = []

    def run_stage(module: str, args: list[str], log: Path) -> float:
        ran.append(module)
        out, runs = Path(config.out), Path(config.runs)
        if module == "training.segmenter.stage":
            (runs / "segmenter").mkdir(parents=True, exist_ok=True)
            (runs / "predicted_masks").mkdir(exist_ok=True)
            (runs / "segmenter" / "segmenter_metrics.json").write_text("{}")
            update_release(out, {"segmenter": {"threshold": 0.5}})
            (out / SEGMENTER_WEIGHTS).write_bytes(b"weights")
        else:
            (runs / "classifier").mkdir(parents=True, exist_ok=True)
            (runs / "classifier" / "classifier_metrics.json").write_text("{}")
            update_release(out, {"classifier": {}, "triage": {}, "quality": {}})
            (out / CLASSIFIER_WEIGHTS).write_bytes(b"weights")
        return 1.0

    monkeypatch.setattr(pipeline, "run_stage", run_stage)
    return ran


def test_a_build_resumes_from_its_state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path)
    ran = _stub_stages(monkeypatch, config)
    pipeline.build_release(config)
    assert ran == ["training.segmenter.stage", "training.classifier.stage"]
    state = json.loads((config.runs / pipeline.STATE_FILE).read_text())
    assert set(state) == {"segmenter", "classifier"}
    assert not list(Path(config.runs).glob("*.tmp"))
    ran.clear()
    pipeline.build_release(config)
    assert ran == []  # both stages current: reused


def test_a_resumed_build_checks_the_weights_under_the_releases_own_names(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline spelt the weights' names itself: renamed in training.release, a stage was reused without them."""
    monkeypatch.setattr(pipeline, "SEGMENTER_WEIGHTS", "renamed_segmenter.npz")
    config = _config(tmp_path)
    ran = _stub_stages(monkeypatch, config)
    pipeline.build_release(config)
    ran.clear()
    pipeline.build_release(config)
    assert ran == ["training.segmenter.stage"]  # its weights are not under the (renamed) release name: run again


@pytest.mark.parametrize("text", ["{\"segmenter\": {\"fingerp", "[1, 2]", "{\"segmenter\": 3}"],
                         ids=["cut", "a list", "a stage not an object"])
def test_a_corrupt_state_file_is_named_not_silently_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture, text: str) -> None:
    """A corrupt build_state.json read as empty: every stage trained again (hours) without a word."""
    config = _config(tmp_path)
    ran = _stub_stages(monkeypatch, config)
    pipeline.build_release(config)
    ran.clear()
    state = Path(config.runs) / pipeline.STATE_FILE
    state.write_text(text)
    with pytest.raises(TrainingError, match=rf"build state {state} cannot be read .*every stage trains again: delete "
                                            "it, or pass --force"):
        pipeline.build_release(config)
    assert ran == [] and state.read_text() == text  # nothing trained, the file left for the operator

    forced = _config(tmp_path, force=True)
    ran = _stub_stages(monkeypatch, forced)
    with caplog.at_level(logging.WARNING, logger="training.pipeline"):
        pipeline.build_release(forced)
    assert f"build state {state} cannot be read" in caplog.text and "--force trains every stage anyway" in caplog.text
    assert ran == ["training.segmenter.stage", "training.classifier.stage"]
    assert set(json.loads(state.read_text())) == {"segmenter", "classifier"}


def test_a_state_write_cut_short_leaves_the_previous_state_whole(tmp_path: Path) -> None:
    """The state was written in place: a full disk (here a file-size limit) left half a JSON file."""
    state = tmp_path / pipeline.STATE_FILE
    old = {"segmenter": {"fingerprint": "a", "seconds": 1.0}}
    state.write_text(json.dumps(old))
    script = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from training.pipeline import _save_state\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))\n"
        "big = {f'stage{i}': {'fingerprint': 'f' * 16, 'seconds': 1.0} for i in range(50)}\n"
        "try:\n"
        "    _save_state(Path(sys.argv[1]), big)\n"
        "except OSError:\n"
        "    sys.exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(state)], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert json.loads(state.read_text()) == old
    assert [p.name for p in tmp_path.iterdir()] == [pipeline.STATE_FILE]  # no temporary file left beside it


def test_a_stage_stopped_after_an_epoch_resumes_from_its_checkpoint_when_its_fingerprint_is_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build's stage stopped after epoch 40 of 150 started again at epoch 1 on the rerun."""
    from training.errors import StageError
    from training.resume import SEGMENTER_CHECKPOINT

    config = _config(tmp_path)
    checkpoint = Path(config.runs) / "segmenter" / SEGMENTER_CHECKPOINT
    calls: list[list[str]] = []

    def stopped(module: str, args: list[str], log: Path) -> float:
        calls.append(args)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_bytes(b"epoch 40")  # what a stage stopped after an epoch leaves
        raise StageError("stage training.segmenter.stage exited with 130")

    monkeypatch.setattr(pipeline, "run_stage", stopped)
    with pytest.raises(StageError):
        pipeline.build_release(config)
    state = json.loads((config.runs / pipeline.STATE_FILE).read_text())
    assert set(state["segmenter"]) == {"started"}  # started, not done
    with pytest.raises(StageError):
        pipeline.build_release(config)
    assert "--resume" not in calls[0] and calls[1][-1] == "--resume"

    ran = _stub_stages(monkeypatch, config)
    pipeline.build_release(config)
    assert ran == ["training.segmenter.stage", "training.classifier.stage"]
    state = json.loads((config.runs / pipeline.STATE_FILE).read_text())
    assert set(state["segmenter"]) == {"fingerprint", "seconds"}

    calls.clear()
    monkeypatch.setattr(pipeline, "run_stage", stopped)
    other = pipeline.BuildConfig(data=config.data, out=config.out, runs=config.runs, recipe=RECIPE,
                                 extra_args={"segmenter": ("--epochs", "3")})
    with pytest.raises(StageError):
        pipeline.build_release(other)
    with pytest.raises(StageError):
        pipeline.build_release(pipeline.BuildConfig(data=config.data, out=config.out, runs=config.runs, recipe=RECIPE))
    assert "--resume" not in calls[1]  # the checkpoint left by a stage of other flags is not continued
    with pytest.raises(StageError):
        pipeline.build_release(_config(tmp_path, force=True))
    assert "--resume" not in calls[2]  # --force trains every stage from epoch 1


BUILD = """
import logging, signal, sys
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal's foreground, whatever was inherited
from training.pipeline import run_stage
logging.basicConfig(level=logging.INFO)
run_stage("tests.support.sleepy_stage", sys.argv[2:], Path(sys.argv[1]))
"""


def test_a_ctrl_c_sent_to_the_build_alone_stops_its_stage_which_saves_before_the_build_ends(tmp_path: Path) -> None:
    """SIGINT to the build's process only (kill -INT, a job runner's interrupt) had left the stage training on,
    unlogged, to write into the release later (training input audit, finding 7): the stage is told, saves, and its
    last lines are logged before the build ends."""
    import os
    import signal

    log = tmp_path / "stage.log"
    build = subprocess.Popen([sys.executable, "-c", BUILD, str(log)], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        said = []
        for line in build.stderr or ():  # the stage's lines reach the build's stderr as they come
            said.append(line)
            if line.startswith("epoch 1"):
                break
        stage_pid = int("".join(said).split("stage pid ")[1].split()[0])
        build.send_signal(signal.SIGINT)
        _, stderr = build.communicate(timeout=30)
        assert "KeyboardInterrupt" in stderr and "stopping stage tests.support.sleepy_stage" in stderr
        assert f"saved after signal {signal.SIGTERM.value}" in log.read_text()
        with pytest.raises(ProcessLookupError):
            os.kill(stage_pid, 0)  # gone, not training on (an orphan would be alive for its minute)
    finally:
        build.kill()
        build.wait()


def test_a_second_ctrl_c_while_the_stage_saves_kills_it_rather_than_leave_it_running(tmp_path: Path) -> None:
    """A second Ctrl-C while the build waited for its stage's save had ended the build and left the stage running on
    its own, its log cut off (review 16, finding 3): the stage is killed, and the build ends."""
    import os
    import signal
    import time

    build = subprocess.Popen([sys.executable, "-c", BUILD, str(tmp_path / "stage.log"), "slow"], cwd=PROJECT_ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        said = []
        for line in build.stderr or ():
            said.append(line)
            if line.startswith("epoch 1"):
                break
        stage_pid = int("".join(said).split("stage pid ")[1].split()[0])
        build.send_signal(signal.SIGINT)
        for line in build.stderr or ():
            if line.startswith("saving"):  # told after the grace, and saving (30 s)
                break
        build.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, stderr = build.communicate(timeout=20)
        assert time.monotonic() - started < 10
        assert "killed before it finished saving (a second Ctrl-C)" in stderr and "Traceback" in stderr
        assert "ValueError" not in stderr
        with pytest.raises(ProcessLookupError):
            os.kill(stage_pid, 0)
    finally:
        build.kill()
        build.wait()
