"""The lock file (constraints.txt): what ``make install`` installs with, checked against this environment and the pins
of the two pyproject.toml files."""
from __future__ import annotations

import re
import tomllib

import pytest

from dermassist.base.paths import PROJECT_ROOT
from dermassist.lockfile import (
    HEADER,
    LOCK_FILE,
    PLATFORM,
    LockError,
    canonical,
    lock_platform,
    lock_text,
    read_lock,
    resolved,
)


def test_the_lock_holds_what_this_environment_installed_for_the_project():
    """A pin moved in pyproject.toml without `make lock`, or an environment that drifted (a package upgraded by hand),
    fails here, naming the packages. On the platform the lock was made on, the lock is this environment's, exactly;
    on another (markers choose other packages: no CUDA libraries for torch on macOS), every package installed for the
    project is at its locked version."""
    locked, installed = read_lock(), resolved()
    names = locked.keys() | installed.keys() if lock_platform() == PLATFORM else installed.keys()
    differ = {name: (locked.get(name), installed.get(name)) for name in names if locked.get(name) != installed.get(name)}
    assert not differ, f"constraints.txt (locked, installed): {differ}; run `make lock` after moving a pin"
    if lock_platform() == PLATFORM:
        assert LOCK_FILE.read_text() == lock_text(installed)
    assert {"pip", "setuptools"} <= locked.keys()  # the installer and the build backend are held too


def test_every_pin_of_the_pyproject_files_is_the_locked_version():
    locked = read_lock()
    for path in (PROJECT_ROOT / "pyproject.toml", PROJECT_ROOT / "client" / "pyproject.toml"):
        project = tomllib.loads(path.read_text())["project"]
        requirements = [*project["dependencies"], *(r for group in project.get("optional-dependencies", {}).values()
                                                    for r in group)]
        for requirement in requirements:
            pinned = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^;\s]+)", requirement.split(";")[0].strip())
            if pinned:
                assert locked.get(canonical(pinned[1])) == pinned[3], (path.name, requirement)


def test_make_install_installs_with_the_lock():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    install = next(line for line in makefile.splitlines() if "pip install" in line and "-e '.[dev]'" in line)
    assert "-c constraints.txt" in install and "--build-constraint constraints.txt" in install
    assert any("-c constraints.txt --upgrade pip" in line for line in makefile.splitlines())
    assert re.search(r"^\$\(STAMP\):.*\bconstraints\.txt\b", makefile, re.M), "a new lock must re-run the install"


def test_extras_and_markers_decide_what_a_package_needs():
    """tritonclient needs grpcio only with its grpc extra; a root is not in its own lock; names are canonical."""
    plain, with_grpc = resolved([("tritonclient", ())]), resolved([("tritonclient", ("grpc",))])
    assert "grpcio" not in plain and "grpcio" in with_grpc and "protobuf" in with_grpc
    assert set(plain) < set(with_grpc) and "tritonclient" not in with_grpc
    assert {"cryptography", "idna"} <= set(resolved([("trustme", ())]))
    assert "python-rapidjson" in plain  # spelled python_rapidjson in some metadata
    assert canonical("Typing_Extensions") == canonical("typing.extensions") == "typing-extensions"


def test_a_missing_package_and_a_malformed_line_are_refused_with_the_fix(tmp_path):
    with pytest.raises(LockError, match="no-such-distribution-here is needed .* run it"):
        resolved([("no-such-distribution-here", ())])
    bad = tmp_path / "constraints.txt"
    bad.write_text(HEADER + "numpy==1.26.4\nnumpy>=2\n")
    with pytest.raises(LockError, match=rf":{HEADER.count(chr(10)) + 2}: expected NAME==VERSION, got 'numpy>=2'"):
        read_lock(bad)
    bad.write_text("# a comment\n\nPillow==12.3.0  # trailing\n")
    assert read_lock(bad) == {"pillow": "12.3.0"} and lock_platform(bad) is None
    assert lock_platform() == PLATFORM  # the lock was made here (the CI machine's platform)
