"""The suite's own rule: a skipped test fails the run (tests/conftest.py), so a missing extra or a broken import
cannot pass as green."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT


def test_a_skipped_test_fails_the_run_and_is_named(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text("import pytest\n\n\ndef test_skipped():\n    pytest.skip('no gradio')\n\n\n"
                     "def test_passes():\n    assert True\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                          "--rootdir", str(tmp_path), "-c", "/dev/null", str(probe)],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 test(s) skipped, which this suite counts as failed: test_probe.py::test_skipped" in run.stdout
    probe.write_text("def test_passes():\n    assert True\n")
    clean = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                            "--rootdir", str(tmp_path), "-c", "/dev/null", str(probe)],
                           cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stdout + clean.stderr
