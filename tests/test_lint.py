"""The linters pass on the whole tree: ruff (style, imports, likely bugs, docstrings; settings in
pyproject.toml) and mypy (types of the packages, and of each served step's ``model.py`` adapter, fully annotated).
``make lint`` runs just these."""
from __future__ import annotations

import subprocess
import sys

import pytest

from preprocess.contract import STEP_MODELS
from tests.conftest import PROJECT_ROOT

# Every step's adapter is a module named ``model``: mypy takes one of them per run.
ADAPTERS = sorted(str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "model_repository").glob("*/1/model.py"))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)


def test_ruff_finds_nothing() -> None:
    done = _run("ruff", "check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_mypy_finds_nothing_in_the_packages() -> None:
    done = _run("mypy")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "no issues found" in done.stdout


def test_every_served_step_has_an_adapter_to_check() -> None:
    assert ADAPTERS == sorted(f"model_repository/{step}/1/model.py" for step in STEP_MODELS)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_mypy_finds_nothing_in_an_adapter(adapter: str) -> None:
    """Triton's ``pb_utils`` is Any here (its classes live in the backend's C++ module); everything the adapter
    hands to ``preprocess`` and ``dermassist.base`` is checked against their types, every function annotated."""
    done = _run("mypy", "--disallow-untyped-defs", adapter)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "no issues found in 1 source file" in done.stdout
