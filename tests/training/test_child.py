"""A training stage run as its own process (``stage_main``): a clear error is one line and exit 2; an interrupt (Ctrl-C,
or a SIGTERM a stage turned into one) is one line naming it, with the shell's exit code, never a traceback."""
from __future__ import annotations

import argparse
import logging
import signal

import pytest

from training.child import stage_main
from training.errors import TrainingConfigError
from training.signals import Terminated, stop_on_sigterm


def _main(error: BaseException) -> int:
    def run(args: argparse.Namespace) -> None:
        raise error

    return stage_main("training.example.stage", None, lambda parser: None, run, [])


def test_a_stage_says_an_interrupt_in_one_line_with_the_shells_exit_code(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert _main(Terminated("stopped by signal SIGTERM")) == 143
        assert _main(KeyboardInterrupt()) == 130
        assert _main(TrainingConfigError("--epochs must be >= 1")) == 2
    assert [r.getMessage() for r in caplog.records] == [
        "interrupted (stopped by signal SIGTERM): training.example.stage stopped before it finished",
        "interrupted (Ctrl-C): training.example.stage stopped before it finished", "--epochs must be >= 1"]


def test_the_sigterm_handler_puts_back_the_default_when_the_earlier_one_was_not_pythons(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """signal.signal answers None for a handler not installed from Python: restoring it raised TypeError."""
    real, before = signal.signal, signal.getsignal(signal.SIGTERM)
    calls: list[object] = []

    def recording(signum: int, handler: object) -> object:
        calls.append(handler)
        previous = real(signum, handler)
        return None if len(calls) == 1 else previous

    monkeypatch.setattr(signal, "signal", recording)
    restore = stop_on_sigterm()
    restore()
    real(signal.SIGTERM, signal.SIG_DFL if before is None else before)
    assert calls[-1] is signal.SIG_DFL


def test_a_sigterm_to_the_build_reaches_its_stage_which_stops_and_says_so(tmp_path) -> None:
    """`kill` of `dermassist release` killed the build alone and left its stage training on (docs audit 15)."""
    import os
    import threading

    from training.errors import StageError
    from training.pipeline import run_stage

    before, ready, done = signal.getsignal(signal.SIGTERM), tmp_path / "ready", threading.Event()

    def kill_the_build_once_the_stage_listens() -> None:
        while not ready.exists() and not done.wait(0.05):
            pass
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=kill_the_build_once_the_stage_listens, daemon=True)
    killer.start()
    try:
        with pytest.raises(StageError, match=r"stage tests.training.stage_stand_in exited with 143 \(its last line: "
                                             r"interrupted \(stopped by signal SIGTERM\): saved the best epoch\)"):
            run_stage("tests.training.stage_stand_in", [str(ready)], tmp_path / "stage.log")
    finally:
        done.set()
        killer.join(timeout=10)
    assert signal.getsignal(signal.SIGTERM) == before  # the build's own handling is back
    assert "finished without a signal" not in (tmp_path / "stage.log").read_text()


def test_a_second_sigterm_while_a_stopped_run_saves_is_ignored_and_the_handler_put_back() -> None:
    """A scheduler, or a build passing its own on, may send SIGTERM twice: the second stopped the save half-way."""
    import os
    import time

    from training.signals import sigterm_ignored

    before = signal.getsignal(signal.SIGTERM)
    restore = stop_on_sigterm()
    try:
        with sigterm_ignored():
            os.kill(os.getpid(), signal.SIGTERM)  # would raise Terminated if it were handled
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        with pytest.raises(Terminated):  # the run's handler is back once the save is done
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):
                time.sleep(0.01)
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_sigterm_while_an_interrupt_is_handled_is_ignored_and_raises_outside() -> None:
    """A build passes its Ctrl-C on as a SIGTERM 2 s later; where the stage's own Ctrl-C was still being handled, the
    SIGTERM's Terminated had cut its save short (review 16, finding 7)."""
    import os

    restore = stop_on_sigterm()
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(10_000))  # the handler runs between bytecodes
            handled = True
        assert handled
        with pytest.raises(Terminated, match="stopped by signal SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(10_000))
    finally:
        restore()
