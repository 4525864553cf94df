"""Fixtures shared by the training tests: the real samples folder and a small synthetic set."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real dermoscopy samples (../shared/data)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real samples not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory) -> Path:
    """A small synthetic set (160 images, seed 7) shared by the tests of one session."""
    from training.synth.generator import SynthConfig, generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SynthConfig(count=160, seed=7), progress=False)
    return root


def run_python(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the project root in a fresh process (TF and torch stay apart)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
