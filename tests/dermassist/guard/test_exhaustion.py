"""A guard out of file descriptors (failure audit 1): no healthy stub is called dead, the not-ready reason names the
shortage, tritonserver's log tail never raises, and asyncio's refused accepts are told once a minute, not a hundred
times a second."""
from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from dermassist.base.server import TritonServer
from dermassist.base.server_config import ServerConfig
from dermassist.guard import guard as guard_module
from dermassist.guard import stubs as stubs_module
from dermassist.guard.exhaustion import ACCEPT_REPORT_S, AcceptErrors, out_of_files
from dermassist.guard.stubs import Stub, broken_stubs

ROOT = Path(__file__).resolve().parents[3]
_EMFILE = OSError(errno.EMFILE, "Too many open files")


def _no_descriptors(*args: object, **kwargs: object) -> object:
    raise _EMFILE


def test_a_stub_whose_proc_files_cannot_be_read_is_not_called_exited(monkeypatch: pytest.MonkeyPatch) -> None:
    me = Stub(os.getpid(), "lesion_crop", "lesion_crop_0_0")
    gone = Stub(2**22 + 7, "triage", "triage_0_0")  # over pid_max: no such process
    assert broken_stubs([me, gone]) == [(gone, "exited")]
    monkeypatch.setattr(stubs_module, "open", _no_descriptors, raising=False)
    with pytest.raises(OSError, match="Too many open files"):
        broken_stubs([me])

    def hidden(*args: object, **kwargs: object) -> object:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(stubs_module, "open", hidden, raising=False)
    assert broken_stubs([me]) == [(me, "exited")]  # a process not this user's to see is none of its stubs


def test_the_watchdog_out_of_descriptors_heals_nothing_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    from .test_start_checks import _guard

    guard = _guard(tmp_path)
    guard.server = SimpleNamespace(running=True, pid=os.getpid())  # type: ignore[assignment]
    guard.stubs = [Stub(os.getpid(), "lesion_crop", "lesion_crop_0_0")]
    monkeypatch.setattr(guard_module, "broken_stubs", _no_descriptors)
    with caplog.at_level(logging.WARNING, logger="dermassist.guard.guard"):
        assert guard._scan() is None and guard._scan() is None  # no fault: nothing is killed or reloaded
    assert guard._blind is not None and guard._blind.startswith("the guard is out of file descriptors (Too many open")
    assert "Raise the open-file limit" in guard._blind
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1  # told once, not every scan
    monkeypatch.setattr(guard_module, "broken_stubs", lambda stubs: [])
    assert guard._scan() is None and guard._blind is None  # descriptors free again
    other = OSError(errno.EACCES, "Permission denied")
    assert out_of_files(other) is None
    monkeypatch.setattr(guard_module, "broken_stubs", lambda stubs: (_ for _ in ()).throw(other))
    assert guard._scan() is None and guard._blind is None  # another error: the canary alone judges the stubs
    guard.audit.close()


def test_tritonservers_log_tail_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of descriptors, the recovery stopped at this look and began again every second."""
    server = TritonServer(ServerConfig(repository=tmp_path))
    server.log_path = tmp_path / "tritonserver.log"
    server.log_path.write_text("I1207 loading: prepare:1\nE1207 something failed\n")
    assert server.log_tail(1) == "E1207 something failed"
    monkeypatch.setattr(Path, "read_text", _no_descriptors)
    assert server.log_tail() == f"(tritonserver's log {server.log_path} cannot be read: Too many open files)"


class _Loop:
    def __init__(self) -> None:
        self.passed_on: list[dict[str, object]] = []

    def default_exception_handler(self, context: dict[str, object]) -> None:
        self.passed_on.append(context)


def test_refused_accepts_are_told_once_a_minute_with_their_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    counted: list[int] = []
    handler = AcceptErrors(lambda: counted.append(1), clock=lambda: now[0])
    loop = _Loop()
    refused = {"message": "socket.accept() out of system resource", "exception": _EMFILE}
    with caplog.at_level(logging.ERROR, logger="dermassist.guard.exhaustion"):
        for _ in range(100):
            handler(loop, refused)  # type: ignore[arg-type]
            now[0] += 0.01  # a hundred in a second
        now[0] += ACCEPT_REPORT_S
        handler(loop, refused)  # type: ignore[arg-type]
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 2 and len(counted) == 101
    assert told[0].startswith("out of file descriptors: a connection to a listening socket could not be accepted")
    assert told[1].startswith(f"still out of file descriptors (100 accepts refused in the last {ACCEPT_REPORT_S:g} s)")
    other = {"message": "Task exception was never retrieved", "exception": ValueError("x")}
    handler(loop, other)  # type: ignore[arg-type]
    assert loop.passed_on == [other] and len(counted) == 101  # anything else: asyncio's own handler


_CHILD = """
import asyncio, logging, os, resource, socket, sys
from dermassist.guard.exhaustion import AcceptErrors
logging.basicConfig(level=logging.ERROR, stream=sys.stdout, format="%(name)s %(message)s")
refused = []
async def main():
    loop = asyncio.get_running_loop()
    if sys.argv[1] == "handled":
        loop.set_exception_handler(AcceptErrors(lambda: refused.append(1)))
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clients = [socket.socket() for _ in range(8)]
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")), resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    for client in clients:
        client.setblocking(False)
        try:
            client.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
    await asyncio.sleep(2.5)
    print("refused", len(refused))
asyncio.run(main())
"""


@pytest.mark.parametrize("mode", ["asyncio's own", "handled"])
def test_a_real_event_loop_out_of_descriptors(mode: str) -> None:
    """asyncio's own handler logs an ERROR with a traceback for every try of every queued connection; the guard's
    tells the first once."""
    done = subprocess.run([sys.executable, "-c", _CHILD, mode], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    from_asyncio = [line for line in lines if line.startswith("asyncio socket.accept() out of system resource")]
    ours = [line for line in lines if line.startswith("dermassist.guard.exhaustion out of file descriptors")]
    if mode == "handled":
        assert from_asyncio == [] and len(ours) == 1 and "Too many open files" in ours[0]
        assert int(lines[-1].split()[1]) > 1  # every refusal counted (tried again each second)
    else:
        assert len(from_asyncio) > 20 and ours == []


def test_the_running_guard_handles_its_loops_refused_accepts_and_counts_them_at_metrics(tmp_path: Path) -> None:
    import urllib.request

    from .stand_in import StandInServer, background_guard
    from .test_guard_metrics import parse

    background = background_guard(tmp_path, StandInServer(tmp_path))
    with background:
        loop = background._loop
        assert loop is not None and loop.get_exception_handler() is background.guard.accept_errors
        refused = {"message": "socket.accept() out of system resource", "exception": _EMFILE}
        for _ in range(3):
            loop.call_soon_threadsafe(loop.call_exception_handler, refused)
        with urllib.request.urlopen(f"http://{background.http_address}/metrics", timeout=10) as response:
            samples = parse(response.read().decode())
    assert samples[("dermassist_accepts_refused_total", ())] == 3
