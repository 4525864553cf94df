"""Find the Python-backend stub processes of a tritonserver and tell which are dead or stopped."""
from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

STUB_NAME = "triton_python_backend_stub"
_INSTANCE = re.compile(r"^(?P<model>.+)_\d+_\d+$")
# /proc/<pid>/stat states of a process that will not answer: stopped, traced, zombie, dead.
_NOT_RUNNING = set("TtZXx")
# errno of a process short of file descriptors or memory: a /proc file it cannot open says nothing of the process
_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOMEM)


@dataclass(frozen=True)
class Stub:
    """One stub process: its pid, the model it serves and the instance name Triton gave it."""

    pid: int
    model: str
    instance: str


def _read(path: str) -> str | None:
    """The text of a /proc file, or None when it cannot be read (its process is gone, or not this user's to see). A
    lack of file descriptors or memory is raised: a guard out of file descriptors (EMFILE) had called every healthy
    stub "exited" and set out to heal them (failure audit 1)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        if e.errno in _EXHAUSTED:
            raise
        return None


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the process's name (its state first, then its parent, ...: field 3 of
    proc(5) is index 0 here), or None when the process is gone (OSError when short of descriptors). The name, in
    parentheses, may hold spaces and parentheses itself, so the fields are those after its last ')'."""
    stat = _read(f"/proc/{pid}/stat")
    return None if stat is None else stat.rsplit(")", 1)[1].split()


def stub_of(pid: int, parent: int) -> Stub | None:
    """The stub running as ``pid`` when it is a child of ``parent`` (tritonserver), else None."""
    fields = stat_fields(pid)
    if fields is None or int(fields[1]) != parent:
        return None
    cmdline = _read(f"/proc/{pid}/cmdline")
    if not cmdline:
        return None
    argv = cmdline.rstrip("\0").split("\0")
    if not argv[0].endswith(STUB_NAME) or len(argv) < 3:
        return None
    # argv: stub, <repository>/<model>/<version>/model.py, ..., <instance name>, <kind>
    model = Path(argv[1]).parent.parent.name
    instance = argv[-2]
    match = _INSTANCE.match(instance)
    return Stub(pid, match.group("model") if match else model, instance)


def find_stubs(parent: int) -> list[Stub]:
    """Every stub process tritonserver ``parent`` has started, ordered by model then instance (OSError when short of
    descriptors)."""
    stubs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stub = stub_of(int(entry), parent)
            if stub is not None:
                stubs.append(stub)
    return sorted(stubs, key=lambda s: (s.model, s.instance))


def process_state(pid: int) -> str | None:
    """The one-letter state of a process (R, S, T, Z ...), or None when it is gone (OSError when short of
    descriptors)."""
    fields = stat_fields(pid)
    return None if fields is None else fields[0]


def broken_stubs(stubs: list[Stub]) -> list[tuple[Stub, str]]:
    """Stubs that can no longer answer, each with why: gone, a zombie, or stopped (hung). OSError when short of
    descriptors: no stub is then called broken."""
    broken = []
    for stub in stubs:
        state = process_state(stub.pid)
        if state is None:
            broken.append((stub, "exited"))
        elif state in _NOT_RUNNING:
            broken.append((stub, "stopped" if state in "Tt" else "exited"))
    return broken


def cpu_seconds(pids: Iterable[int]) -> float:
    """The CPU time (user and system) processes ``pids`` have used, in seconds; one that is gone counts nothing
    (OSError when short of descriptors)."""
    ticks = 0
    for pid in pids:
        fields = stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime and stime: fields 14 and 15 of proc(5)
    return ticks / os.sysconf("SC_CLK_TCK")
