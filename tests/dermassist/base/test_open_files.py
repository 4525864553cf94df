"""The open-file limit a start raises or refuses (dermassist.base.open_files): each case in a child process, as a
lowered hard limit cannot be raised again."""
from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from dermassist.base.open_files import MIN_OPEN_FILES, WANTED_OPEN_FILES

ROOT = Path(__file__).resolve().parents[3]


def _in_child(code: str, soft: int, hard: int) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          preexec_fn=limit)


_RAISE = "from dermassist.base.open_files import raise_open_files; print(raise_open_files())"


@pytest.mark.parametrize(("soft", "hard", "expected"), [
    (256, 4096, 4096),  # up to the hard limit
    (MIN_OPEN_FILES, MIN_OPEN_FILES, MIN_OPEN_FILES),  # the least accepted
])
def test_the_soft_limit_is_raised_toward_the_hard_one(soft: int, hard: int, expected: int) -> None:
    done = _in_child(_RAISE + "; import resource; print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])", soft, hard)
    assert done.returncode == 0, done.stderr
    assert [int(line) for line in done.stdout.split()] == [expected, expected]  # returned, and set


@pytest.mark.parametrize(("soft", "hard", "expected"), [
    (512, 1 << 20, WANTED_OPEN_FILES),  # up to what is wanted, not a container's whole million
    (512, resource.RLIM_INFINITY, WANTED_OPEN_FILES),
    (100_000, 1 << 20, 100_000),  # already over it: left alone
])
def test_the_raise_stops_at_what_is_wanted(monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, expected: int) -> None:
    """Hard limits over this machine's own, read and set through stand-ins."""
    from dermassist.base import open_files

    set_to: list[tuple[int, int]] = []
    monkeypatch.setattr(open_files.resource, "getrlimit", lambda which: (soft, hard))
    monkeypatch.setattr(open_files.resource, "setrlimit", lambda which, limits: set_to.append(limits))
    assert open_files.raise_open_files() == expected
    assert set_to == ([] if expected == soft else [(expected, hard)])


def test_a_hard_limit_too_low_for_tritonserver_is_refused_naming_it_and_the_fix() -> None:
    """With 64, tritonserver died at its first connections and the guard restarted it for ever (failure audit 2)."""
    done = _in_child(_RAISE, 64, 64)
    assert done.returncode != 0 and "ConfigError" in done.stderr
    assert (f"this process may open at most 64 files (RLIMIT_NOFILE; hard limit 64); tritonserver and the guard need "
            f"at least {MIN_OPEN_FILES}") in done.stderr
    assert "`ulimit -n 65536`" in done.stderr and "LimitNOFILE=65536" in done.stderr


def test_a_start_under_too_low_a_limit_stops_before_tritonserver_runs(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path\n"
            "from dermassist.base.errors import ConfigError\n"
            "from dermassist.base import server\n"
            "server.locate_triton = lambda *a: sys.exit('tritonserver was looked for')\n"
            f"try:\n    server.TritonServer(server.ServerConfig(repository=Path({str(tmp_path)!r}))).start()\n"
            "except ConfigError as e:\n    print(e)\n")
    done = _in_child(code, 100, 100)
    assert done.returncode == 0, done.stderr
    assert "may open at most 100 files" in done.stdout
