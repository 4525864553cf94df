"""What the guard says and does when the process runs out of file descriptors: a not-ready reason that names it, and
an event-loop error handler that tells asyncio's refused accepts once a minute instead of a hundred times a second."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

#: The errors of a process or a system out of file descriptors.
OUT_OF_FILES = (errno.EMFILE, errno.ENFILE)
#: How often refused accepts are told, with their count since the last time.
ACCEPT_REPORT_S = 60.0
_ACCEPT_MESSAGE = "socket.accept() out of system resource"


def open_files_text() -> str:
    """How many files this process holds and may hold, e.g. "1024 open, limit 1024"."""
    try:
        count = str(len(os.listdir("/proc/self/fd")))
    except OSError:
        count = "?"
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return f"{count} open, limit {'unlimited' if soft == resource.RLIM_INFINITY else soft}"


def out_of_files(error: OSError) -> str | None:
    """The not-ready reason for ``error`` when it is a lack of file descriptors, else None."""
    if error.errno not in OUT_OF_FILES:
        return None
    return (f"the guard is out of file descriptors ({error.strerror}; {open_files_text()}): it can neither take new "
            "connections nor watch tritonserver; it comes back by itself as connections close. Raise the open-file "
            "limit (ulimit -n, LimitNOFILE, docker --ulimit nofile) or cap connections in a proxy before it")


class AcceptErrors:
    """An event loop's exception handler: asyncio logs an ERROR with a traceback for every refused accept of a listening
    socket out of file descriptors (a hundred a second for each port: 143 MB of log in a minute, failure audit 1).
    The first is told at once, then the count once every ACCEPT_REPORT_S while they go on, and each is counted by
    ``on_refused``; everything else goes to asyncio's own handler."""

    def __init__(self, on_refused: Callable[[], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._on_refused = on_refused
        self._told_at: float | None = None
        self._untold = 0
        self._clock = clock

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Handle one error ``context`` of ``loop``."""
        error = context.get("exception")
        if context.get("message") != _ACCEPT_MESSAGE or not isinstance(error, OSError):
            loop.default_exception_handler(context)
            return
        self._on_refused()
        self._untold += 1
        now = self._clock()
        if self._told_at is not None and now - self._told_at < ACCEPT_REPORT_S:
            return
        first = self._told_at is None
        self._told_at, untold, self._untold = now, self._untold, 0
        where = context.get("socket")
        logger.error("%s: a connection to %s could not be accepted (%s; %s): it waits in the queue, and is taken once "
                     "descriptors are free. Raise the open-file limit (ulimit -n, LimitNOFILE, docker --ulimit nofile) "
                     "or cap connections in a proxy before the guard",
                     "out of file descriptors" if first else
                     f"still out of file descriptors ({untold} accepts refused in the last {ACCEPT_REPORT_S:g} s)",
                     _address(where), error.strerror or error, open_files_text())


def _address(sock: Any) -> str:
    try:
        host, port = sock.getsockname()[:2]
    except (AttributeError, OSError, ValueError, TypeError):
        return "a listening socket"
    return f"{host}:{port}"
