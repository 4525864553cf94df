"""``launcher.py``: the program it starts is stopped when the process that started it dies, with no Python run
between fork and exec in that process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dermassist.base import launcher
from dermassist.base.server import with_parent
from tests.support.polling import wait_until

LAUNCHER = Path(launcher.__file__)

PARENT = """
import subprocess, sys
sys.path.insert(0, {root!r})
from dermassist.base.server import with_parent
child = subprocess.Popen(with_parent(["/bin/sleep", "60"]), start_new_session=True)
print(child.pid, flush=True)
sys.stdin.readline()  # dies when the test closes its stdin
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_the_program_is_the_launched_process_and_stops_when_its_parent_dies() -> None:
    root = str(Path(__file__).resolve().parents[3])
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(root=root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None and parent.stdin is not None
    pid = int(parent.stdout.readline())
    try:
        assert wait_until(lambda: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"/bin/sleep", 10)
        assert _alive(pid)
        parent.stdin.close()  # the parent exits
        assert parent.wait(timeout=10) == 0
        assert wait_until(lambda: not _alive(pid), 10), "the launched program outlived its parent"
    finally:
        if _alive(pid):
            os.kill(pid, 9)


def test_a_launch_whose_parent_is_already_gone_does_not_run_the_program(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    done = subprocess.run([sys.executable, "-I", str(LAUNCHER), "1", "/usr/bin/touch", str(marker)], timeout=30)
    assert done.returncode == launcher.ORPHANED and not marker.exists()  # parent 1 is not this test's process


def test_the_command_goes_through_the_launcher_with_this_process_as_parent() -> None:
    cmd = with_parent(["/opt/tritonserver/bin/tritonserver", "--model-repository=/models"])
    assert cmd[:5] == [sys.executable, "-I", str(LAUNCHER), str(os.getpid()), "/opt/tritonserver/bin/tritonserver"]
    done = subprocess.run([sys.executable, "-I", str(LAUNCHER), "not-a-pid"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "usage: launcher.py PARENT_PID PROGRAM" in done.stderr


def test_an_exit_code_of_the_launch_is_told_in_words() -> None:
    from dermassist.base.server import exit_hint

    assert "launcher found the thread that started it already gone" in exit_hint(launcher.ORPHANED)
    assert exit_hint(-11) == " (killed by signal 11, SIGSEGV)"  # the report then shows the log, empty or not
    assert exit_hint(-9) == " (killed by signal 9, SIGKILL)"
    assert exit_hint(1) == ""


def test_a_python_that_cannot_be_run_is_a_server_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.base import server as server_module
    from dermassist.base.errors import ServerError
    from dermassist.base.server_config import ServerConfig

    monkeypatch.setattr(server_module.sys, "executable", str(tmp_path / "no-python"))
    monkeypatch.setattr(server_module, "check_tuned_values", lambda repository: None)
    monkeypatch.setattr(server_module, "check_ports", lambda config: None)
    http, grpc_port, metrics = server_module.free_ports(3)
    config = ServerConfig(repository=tmp_path, http_port=http, grpc_port=grpc_port, metrics_port=metrics)
    with pytest.raises(ServerError, match=rf"this Python \({tmp_path}/no-python\) cannot be run \(No such file"):
        server_module.TritonServer(config).start()


def test_the_launched_program_writes_no_core_dump_unless_an_operator_raises_its_limit() -> None:
    """A crashing stub's core dump would hold the pictures it was analysing (privacy audit, not verified there: the
    project never set RLIMIT_CORE). The soft limit is 0; the hard one is left for an operator who debugs a crash."""
    import resource

    code = "import resource; print(*resource.getrlimit(resource.RLIMIT_CORE))"
    done = subprocess.run(with_parent([sys.executable, "-c", code]), capture_output=True, text=True, timeout=30)
    soft, hard = (int(v) for v in done.stdout.split())
    assert done.returncode == 0 and soft == 0 and hard == resource.getrlimit(resource.RLIMIT_CORE)[1]
