"""The open-file and file-size limits a start raises or refuses (dermassist.base.limits): each case in a child process, as a
lowered hard limit cannot be raised again."""
from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from dermassist.base.limits import MIN_FILE_BYTES, MIN_OPEN_FILES, WANTED_OPEN_FILES

ROOT = Path(__file__).resolve().parents[3]


def _in_child(code: str, soft: int, hard: int) -> subprocess.CompletedProcess[str]:
    """``code`` in a child Python whose first act is to lower its open-file limits to ``soft``, ``hard``. Set there,
    not in a ``preexec_fn``: that makes the test process fork (not vfork), and the fork handlers of a gRPC loaded by
    earlier tests aborted the child once in a run ("epoll_wait error: Bad file descriptor", exit -6)."""
    limit = f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard})); "
    return subprocess.run([sys.executable, "-c", limit + code], cwd=ROOT, capture_output=True, text=True, timeout=120)


_RAISE = "from dermassist.base.limits import raise_open_files; print(raise_open_files())"


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
    from dermassist.base import limits as open_files

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


def _file_size_child(soft: int, hard: int) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    code = "from dermassist.base.limits import raise_file_size; print(raise_file_size())"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          preexec_fn=limit)


def test_the_file_size_limit_is_raised_to_the_hard_one_or_refused_by_name() -> None:
    """Under 2 MB tritonserver started and then failed every inference, growing its shared memory ("File too large"),
    and the guard waited for ever; under 30 kB the start ended in a traceback (failure audit 8)."""
    unlimited = resource.RLIM_INFINITY
    done = _file_size_child(1 << 20, unlimited)
    assert done.returncode == 0 and done.stdout.strip() == "None", done.stderr  # raised to unlimited
    done = _file_size_child(MIN_FILE_BYTES, MIN_FILE_BYTES)
    assert done.returncode == 0 and int(done.stdout) == MIN_FILE_BYTES, done.stderr
    done = _file_size_child(2_000_000, 2_000_000)
    assert done.returncode != 0 and "ConfigError" in done.stderr
    assert ("this process may write files of at most 2,000,000 bytes (RLIMIT_FSIZE, `ulimit -f`); tritonserver's "
            f"shared-memory regions (files under /dev/shm) need at least {MIN_FILE_BYTES:,}") in done.stderr
    assert "`ulimit -f unlimited`" in done.stderr
