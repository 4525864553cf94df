"""``dermassist evaluate``'s exit status in its --help, and the ``make evaluate`` target."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import PROJECT_ROOT


def test_the_help_documents_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    from dermassist.cli import main

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    assert "exit status:\n  0    the report was written and every labelled image selected is in its figures" in text
    assert "  3    the report was written, but labelled images are not in its figures" in text
    assert "  2    an error" in text and "  130  interrupted" in text


def _make(*args: str) -> list[str]:
    """The commands ``make -n`` would run for the evaluate target."""
    done = subprocess.run(["make", "-n", "evaluate", *args], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if "dermassist " in line]


def test_make_evaluate_quotes_the_folder_passes_flags_and_exports_only_for_the_embedded_server() -> None:
    assert shutil.which("make"), "GNU make is missing (the project's set-up runs through it): apt-get install make"
    embedded = _make("DATA=/data/site a")
    assert embedded[-1].rstrip() == '.venv/bin/dermassist evaluate --data "/data/site a"'
    assert "dermassist models" in embedded[0]  # the repository it serves is exported first (seconds when current)
    assert "DERMASSIST_EVALUATE_URL" in embedded[0]  # unless the environment names a running DermAssist
    remote = _make("DATA=/data/site a", "EVALUATE_ARGS=--url host:8001 --name site1")
    assert remote == ['.venv/bin/dermassist evaluate --data "/data/site a" --url host:8001 --name site1']
    assert not any("dermassist models" in line for line in _make("DATA=x", "EVALUATE_ARGS=--repository /r"))
