"""A guard out of file descriptors (failure audit 1): no healthy stub is called dead, the not-ready reason names the
shortage, tritonserver's log tail never raises, and asyncio's refused accepts are told once a minute, not a hundred
times a second."""
from __future__ import annotations

import errno
import logging
import os
import re
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
        for _ in range(int(ACCEPT_REPORT_S)):
            now[0] += 1.0  # then one a second
            handler(loop, refused)  # type: ignore[arg-type]
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 2 and len(counted) == 100 + ACCEPT_REPORT_S
    assert told[0].startswith("out of file descriptors: a connection to a listening socket could not be accepted")
    assert "descriptors are free. Raise the open-file limit" in told[0]
    assert re.match(rf"still out of file descriptors \({99 + int(ACCEPT_REPORT_S)} accepts refused in the 6[01] s since "
                    r"the last report\)", told[1])  # the 60th second's, or the 61st's (floating-point steps)
    other = {"message": "Task exception was never retrieved", "exception": ValueError("x")}
    handler(loop, other)  # type: ignore[arg-type]
    assert loop.passed_on == [other] and len(counted) == 100 + ACCEPT_REPORT_S  # anything else: asyncio's own handler


def test_a_new_spell_of_refused_accepts_is_told_at_once_and_a_lack_of_memory_as_such(
        caplog: pytest.LogCaptureFixture) -> None:
    """The count had spanned spells hours apart, and every refusal was called a lack of descriptors, though asyncio
    refuses the same way out of socket memory (ENOBUFS, ENOMEM) (review 13, finding 8)."""
    now = [1000.0]
    handler = AcceptErrors(lambda: None, clock=lambda: now[0])
    loop = _Loop()
    with caplog.at_level(logging.ERROR, logger="dermassist.guard.exhaustion"):
        handler(loop, {"message": "socket.accept() out of system resource", "exception": _EMFILE})  # type: ignore[arg-type]
        now[0] += 3 * 3600.0
        handler(loop, {"message": "socket.accept() out of system resource",  # type: ignore[arg-type]
                       "exception": OSError(errno.ENOBUFS, "No buffer space available")})
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 2 and told[1].startswith("out of memory for sockets: a connection to a listening socket")
    assert "(No buffer space available;" in told[1] and "memory is free. Free memory on the host" in told[1]


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


def test_a_proc_read_failing_for_memory_is_told_once_not_at_every_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Five warnings a second while it lasted (review 13, finding 7)."""
    from .test_start_checks import _guard

    guard = _guard(tmp_path)
    guard.server = SimpleNamespace(running=True, pid=os.getpid())  # type: ignore[assignment]
    guard.stubs = [Stub(os.getpid(), "lesion_crop", "lesion_crop_0_0")]
    no_memory = OSError(errno.ENOMEM, "Cannot allocate memory")
    monkeypatch.setattr(guard_module, "broken_stubs", lambda stubs: (_ for _ in ()).throw(no_memory))
    with caplog.at_level(logging.WARNING, logger="dermassist.guard.guard"):
        assert all(guard._scan() is None for _ in range(50))
        told = [r.getMessage() for r in caplog.records]
        assert told == ["tritonserver's processes cannot be looked at (ENOMEM: Cannot allocate memory); the canary "
                        "alone judges them"]
        monkeypatch.setattr(guard_module, "broken_stubs", lambda stubs: [])
        assert guard._scan() is None
        monkeypatch.setattr(guard_module, "broken_stubs", lambda stubs: (_ for _ in ()).throw(no_memory))
        assert guard._scan() is None
    assert len(caplog.records) == 2  # told again after it had passed
    guard.audit.close()


def test_a_restart_while_proc_cannot_be_read_forgets_the_old_servers_stubs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old stubs' pids were kept after a restart: once descriptors came free the next scan called them exited and
    healed a working pipeline (review 13, finding 6). Its stubs are looked for once /proc can be read again."""
    from .test_start_checks import _guard

    guard = _guard(tmp_path)
    guard.server = SimpleNamespace(running=True, pid=os.getpid())  # type: ignore[assignment]
    guard.stubs = [Stub(2**22 + 7, "triage", "triage_0_0")]  # the old tritonserver's, gone with it
    monkeypatch.setattr(guard_module, "find_stubs", _no_descriptors)
    guard._find_stubs(after_restart=True)
    assert guard.stubs == [] and guard._stubs_unknown
    assert guard._scan() is None and guard._blind is not None  # still blind: nothing healed
    new = [Stub(os.getpid(), "triage", "triage_0_0")]
    monkeypatch.setattr(guard_module, "find_stubs", lambda pid: new)
    assert guard._scan() is None and guard.stubs == new and not guard._stubs_unknown and guard._blind is None
    monkeypatch.setattr(guard_module, "find_stubs", _no_descriptors)
    guard._find_stubs()  # not after a restart: the stubs found before are still the server's
    assert guard.stubs == new
    guard.audit.close()
