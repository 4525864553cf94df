"""A training stage run as its own process (``stage_main``): a clear error is one line and exit 2; an interrupt (Ctrl-C,
or a SIGTERM a stage turned into one) is one line naming it, with the shell's exit code, never a traceback."""
from __future__ import annotations

import argparse
import logging
import signal

import pytest

from training.child import stage_main
from training.classifier.train import Terminated, stop_on_sigterm
from training.errors import TrainingConfigError


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
