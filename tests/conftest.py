"""Session-wide fixtures: real sample data, a staged repository with tiny models, one real Triton."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# The client SDK is its own package (client/): import this checkout's, even where the venv's editable install points
# at another checkout (a clone that shares a venv would otherwise test the other checkout's client).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))

from dermassist.base.frameworks import without_triton_compiler
from dermassist.base.paths import HAM_SAMPLE_IMAGES as HAM_IMAGES
from dermassist.base.paths import PROJECT_ROOT, SHARED_DATA

# The same for the processes tests start (exports, the CLI, tritonserver's Python stubs): this checkout first.
_CHECKOUT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(_CHECKOUT), str(_CHECKOUT / "client"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])

# Tests import TensorFlow and torch in one process: torch must never load its triton compiler package.
without_triton_compiler()

ISIC2017_IMAGES = SHARED_DATA / "isic2017_seg_256" / "ISIC-2017_Training_Data"

# Property tests draw the same examples on every run and write no example database into the checkout, in CI and on
# a laptop alike (Hypothesis derandomises only where CI is set); HYPOTHESIS_PROFILE=explore draws new ones.
hypothesis_settings.register_profile("repeatable", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False, database=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test fails the run: `make test` installs every extra and tool the suite needs (and CI runs it), so a
    skip is something broken passing as green (a test deselected with -k or -m is not skipped)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == 0:
        reporter.write_line(f"{len(skipped)} test(s) skipped, which this suite counts as failed: "
                            f"{', '.join(r.nodeid for r in skipped[:5])}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real dermoscopy samples beside the project (CI always has them)."""
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(f"real sample data expected at {SHARED_DATA}; README.md, section Data, lists the sets")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ham_jpeg(shared_data: Path) -> bytes:
    """One original HAM10000 JPEG (600x450)."""
    return (HAM_IMAGES / "ISIC_0024311.jpg").read_bytes()


@pytest.fixture(scope="session")
def isic2017_jpeg(shared_data: Path) -> bytes:
    """One ISIC 2017 image (resized to 256x256 in the sample set)."""
    return sorted(ISIC2017_IMAGES.glob("ISIC_*.jpg"))[0].read_bytes()


def export_tiny_models(repository: Path) -> Path:
    """Stage the source repository and export the tiny models into it, one process per framework."""
    from dermassist.base.repository import stage_repository

    stage_repository(repository)
    for kind in ("segmenter", "classifier"):
        subprocess.run(
            [sys.executable, "-m", "tests.support.tiny_models", kind, str(repository)],
            cwd=PROJECT_ROOT, check=True, capture_output=True,
        )
    return repository


@pytest.fixture(scope="session")
def tiny_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A servable model repository holding the tiny test models (built once per session)."""
    return export_tiny_models(tmp_path_factory.mktemp("model_repository"))


@pytest.fixture(scope="session")
def triton_server(tiny_repository: Path):
    """ONE real embedded Triton server for the whole test session, on free ports."""
    from dermassist.base.server import embedded_server

    with embedded_server(tiny_repository) as server:
        yield server


@pytest.fixture(scope="session")
def release_server(tmp_path_factory: pytest.TempPathFactory):
    """ONE real embedded Triton serving the shipped release (exported into a staged repository) for the session."""
    from dermassist.base.repository import stage_repository
    from dermassist.base.server import embedded_server
    from training.pipeline import export_release
    from training.release import RELEASE_DIR

    repository = stage_repository(tmp_path_factory.mktemp("release_repository"))
    export_release(RELEASE_DIR, repository)
    with embedded_server(repository) as server:
        yield server
