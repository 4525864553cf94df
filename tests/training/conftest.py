"""Fixtures shared by the training tests: a small synthetic set (the real samples come from tests/conftest.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from training.child import child_env


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory) -> Path:
    """A small synthetic set (160 images, seed 7) shared by the tests of one session."""
    from training.synth.generator import SynthConfig, generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SynthConfig(count=160, seed=7), progress=False)
    return root


def run_python(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the project root in a fresh process (TF and torch stay apart)."""
    return subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=child_env(), capture_output=True, text=True,
                          timeout=timeout)
