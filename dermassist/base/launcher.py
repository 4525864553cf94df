"""Start a program that is stopped when the process that started it dies.

Strictly, the kernel sends the signal when the thread that started it ends (``PR_SET_PDEATHSIG``): the guard starts
tritonserver from one long-lived worker thread, which ends only with the process.

``python -I launcher.py PARENT_PID PROGRAM [ARG ...]`` asks the kernel for SIGTERM on its parent's death
(``PR_SET_PDEATHSIG``), then replaces itself with the program, which keeps that request. It runs as a file, with
nothing but the standard library, in a fresh process of one thread. subprocess's ``preexec_fn`` did the same between
fork and exec inside the guard, whose gRPC threads made the forked child crash now and then (SIGSEGV in cygrpc before
tritonserver ever ran): Python documents ``preexec_fn`` as unsafe in a process with threads. The program writes no
core dump unless an operator raises its soft limit (a crashing step's memory holds patients' pictures).
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

PR_SET_PDEATHSIG = 1
#: Exit status when the parent died before the request was made: nothing would stop the program, so it is not run.
ORPHANED = 125


def main(argv: list[str]) -> int:
    """Make the request, check the parent is still the one named, then exec the program (never returns on success)."""
    if len(argv) < 2 or not argv[0].isdigit():
        sys.stderr.write("usage: launcher.py PARENT_PID PROGRAM [ARG ...]\n")
        return 2
    parent, program = int(argv[0]), argv[1:]
    if ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        sys.stderr.write(f"launcher: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}\n")
        return 2
    if os.getppid() != parent:
        return ORPHANED
    # no core dump by default: a crashing stub's memory holds patients' pictures (privacy audit); the hard limit is
    # left, so an operator debugging a crash raises it on the running server (`prlimit --pid PID --core=unlimited`)
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    os.execv(program[0], program)
    return 2  # not reached: execv raises on failure


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
