"""The Makefile's ``test`` target on a machine without the real samples: told at once, nothing installed first."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from dermassist.base.paths import PROJECT_ROOT


def test_make_test_without_the_data_says_where_it_goes_before_installing_anything(tmp_path: Path) -> None:
    assert shutil.which("make"), "GNU make is missing (the project's set-up runs through it): apt-get install make"
    checkout = tmp_path / "checkout"  # no ../shared beside it
    checkout.mkdir()
    shutil.copy(PROJECT_ROOT / "Makefile", checkout / "Makefile")
    (checkout / "pyproject.toml").write_text("")
    (checkout / "client").mkdir()
    (checkout / "client" / "pyproject.toml").write_text("")
    done = subprocess.run(["make", "test", "PYTHON=/bin/false"], capture_output=True, text=True, cwd=checkout, timeout=60)
    assert done.returncode == 2
    assert "expected at ../shared/data beside this checkout" in done.stderr and "section Data" in done.stderr
    assert sorted(p.name for p in checkout.iterdir()) == ["Makefile", "client", "pyproject.toml"]  # no .venv, no tools/
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "## Data" in readme and all(f"`{name}/`" in readme for name in sorted(
        p.name for p in (PROJECT_ROOT.parent / "shared" / "data").iterdir() if p.is_dir()))
