"""The lock file: every package the project's install resolves to, at the version the test suite ran with.

``pyproject.toml`` pins the project's direct dependencies; what they pull in (about 150 packages: grpc's,
TensorFlow's, torch's, Gradio's) was left to the resolver on the day, so two installs a month apart could differ.
``constraints.txt`` names each at its version; ``make install`` installs with it (``pip install -c``), and a test
checks that it holds exactly the packages this environment's install needs, at the versions installed.
``python -m dermassist.lockfile`` prints it from the environment it runs in (``make lock`` writes it after an
install without it: the way to move a pin)."""
from __future__ import annotations

import argparse
import contextlib
import logging
import platform
import re
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from .base.errors import DermAssistError
from .base.paths import PROJECT_ROOT

log = logging.getLogger(__name__)

#: The distributions ``make install`` installs, with their extras: the roots of what the lock holds.
ROOTS = (("dermassist", ("dev",)), ("dermassist-client", ("demo", "dicom", "fhir")))
#: Locked too, though nothing requires them: the installer, and the backend that builds the two projects (pip builds
#: them in an environment of its own, which ``--build-constraint`` holds to the lock).
TOOLS = ("pip", "setuptools")
LOCK_FILE = PROJECT_ROOT / "constraints.txt"
#: Where the lock was made: markers (CUDA libraries for torch on Linux, say) make another platform need other packages.
PLATFORM = f"{sys.platform} {platform.machine()} Python {sys.version_info.major}.{sys.version_info.minor}"
HEADER = ("# Every package `make install` resolves to, at the version the tests ran with (`pip install -c`).\n"
          "# Written by `make lock` (python -m dermassist.lockfile); tests/dermassist/test_lockfile.py keeps it true.\n"
          f"# platform: {PLATFORM}\n")


class LockError(DermAssistError):
    """The environment cannot say what the project's install needs (a root or a required package is missing)."""


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _wanted(requirement: Requirement, extras: Iterable[str]) -> bool:
    """Whether a requirement applies here with ``extras`` asked for (its marker, evaluated for this interpreter)."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in (*extras, ""))


def resolved(roots: Iterable[tuple[str, Iterable[str]]] = ROOTS) -> dict[str, str]:
    """Canonical name -> installed version of every distribution the roots need here, the roots left out."""
    found: dict[str, str] = {}
    pending = [(name, tuple(extras)) for name, extras in roots]
    root_names = {canonical(name) for name, _ in pending}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while pending:
        name, extras = pending.pop()
        key = (canonical(name), tuple(sorted(extras)))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as e:
            raise LockError(f"{name} is needed by the install but not installed in {sys.prefix}; expected an "
                            "environment made by `make install`: run it, then try again") from e
        if canonical(name) not in root_names:
            found[canonical(name)] = dist.version
        for text in dist.requires or ():
            requirement = Requirement(text)
            if _wanted(requirement, extras):
                pending.append((requirement.name, tuple(requirement.extras)))
    for tool in TOOLS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.setdefault(canonical(tool), metadata.version(tool))
    return found


def lock_text(versions: dict[str, str]) -> str:
    """The lock file's text: its header, then ``name==version`` per line, sorted by name."""
    return HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(versions.items()))


def lock_platform(path: Path = LOCK_FILE) -> str | None:
    """The platform a lock file was made on (its ``# platform:`` line), None where it names none."""
    for line in path.read_text().splitlines():
        if line.startswith("# platform: "):
            return line.removeprefix("# platform: ").strip()
    return None


def read_lock(path: Path = LOCK_FILE) -> dict[str, str]:
    """Canonical name -> version of each ``name==version`` line of a lock file (comments and blank lines skipped)."""
    versions = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name or not version:
            raise LockError(f"{path}:{number}: expected NAME==VERSION, got {line!r}")
        versions[canonical(name)] = version
    return versions


def main(argv: list[str] | None = None) -> int:
    """Print the lock file of this environment (``--write``: into constraints.txt)."""
    parser = argparse.ArgumentParser(prog="python -m dermassist.lockfile", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {LOCK_FILE.name} instead of printing it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    text = lock_text(resolved())
    if args.write:
        LOCK_FILE.write_text(text)
        log.info("wrote %s (%d packages, %s)", LOCK_FILE, text.count("\n") - HEADER.count("\n"), PLATFORM)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
