"""``pip install ./client`` into a brand-new virtual environment, of this Python and of the oldest the client declares
(3.9): the SDK works there without heavy deps."""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import HAM_IMAGES, PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FORBIDDEN = ("tensorflow", "torch", "torchvision", "cv2", "preprocess", "dermassist", "gradio", "keras", "matplotlib")
PROBE = f"""
import json, sys
import dermassist_client
import dermassist_client.cli, dermassist_client.overlay, dermassist_client.verdict, dermassist_client.dicom.tls
from dermassist_client.samples import ATTRIBUTION_FILE, samples
loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r}))
print(json.dumps({{"forbidden_loaded": loaded, "file": dermassist_client.__file__, "samples": len(samples()),
                  "attribution": ATTRIBUTION_FILE.is_file()}}))
"""


OLDEST_PYTHON = "3.9"  # client/pyproject.toml's requires-python


def oldest_python() -> str:
    """An interpreter of OLDEST_PYTHON on this machine (pyenv's, or one on PATH)."""
    candidates = [shutil.which(f"python{OLDEST_PYTHON}"),
                  *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{OLDEST_PYTHON}.*/bin/python{OLDEST_PYTHON}"))),
                  f"/usr/bin/python{OLDEST_PYTHON}"]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    pytest.fail(f"no Python {OLDEST_PYTHON} here to check the client on the oldest Python it declares: install one "
                f"(pyenv install {OLDEST_PYTHON}, or the distribution's python{OLDEST_PYTHON})")


@pytest.mark.parametrize("oldest", [False, True], ids=["this_python", f"python{OLDEST_PYTHON}"])
def test_client_installs_into_a_fresh_venv_and_stays_thin(tmp_path, triton_server, oldest):
    """On Python 3.9 the SDK had failed at import (typing.TypeGuard is 3.10's; review 23, H2)."""
    source = tmp_path / "client-src"
    shutil.copytree(PROJECT_ROOT / "client", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    env_dir = tmp_path / "venv"
    made = subprocess.run([oldest_python() if oldest else sys.executable, "-m", "venv", str(env_dir)],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    python = env_dir / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(source)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]

    # A PYTHONPATH pointing at a checkout (how a worktree runs its tests) would shadow the installed package.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                           env=env)
    assert probe.returncode == 0, probe.stderr
    report = json.loads(probe.stdout)
    assert report["forbidden_loaded"] == []
    assert report["file"].startswith(str(env_dir)) and report["samples"] == 4 and report["attribution"]

    cant = subprocess.run([str(python), "-c", "import gradio"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert cant.returncode != 0 and "No module named 'gradio'" in cant.stderr

    done = subprocess.run(
        [str(env_dir / "bin" / "dermassist-client"), "analyze", str(HAM_IMAGES / "ISIC_0024311.jpg"),
         "--url", triton_server.config.grpc_address, "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model_name"] == "dermassist"
    assert sys.prefix != str(env_dir)
    if oldest:
        version = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, cwd=tmp_path, env=env)
        assert version.stdout.strip() == OLDEST_PYTHON
