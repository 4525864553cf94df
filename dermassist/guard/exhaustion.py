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
    socket out of file descriptors or of socket memory (a hundred a second for each port: 143 MB of log in a minute,
    failure audit 1). The first of a spell is told at once, naming what ran out, then the count once every
    ACCEPT_REPORT_S while they go on (a spell ends after ACCEPT_REPORT_S without one), and each is counted by
    ``on_refused``; everything else goes to asyncio's own handler."""

    def __init__(self, on_refused: Callable[[], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._on_refused = on_refused
        self._told_at: float | None = None  # when the present spell of refusals was last told (None: none is going on)
        self._last_at = 0.0  # when the last refusal came
        self._untold = 0
        self._clock = clock

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Handle one error ``context`` of ``loop``."""
        error = context.get("exception")
        if context.get("message") != _ACCEPT_MESSAGE or not isinstance(error, OSError):
            loop.default_exception_handler(context)
            return
        self._on_refused()
        now = self._clock()
        if self._told_at is not None and now - self._last_at > ACCEPT_REPORT_S:  # a new spell: told at once
            self._told_at, self._untold = None, 0
        self._last_at = now
        self._untold += 1
        if self._told_at is not None and now - self._told_at < ACCEPT_REPORT_S:
            return
        told_at = self._told_at
        self._told_at, untold, self._untold = now, self._untold, 0
        files = error.errno in OUT_OF_FILES
        lack = "out of file descriptors" if files else "out of memory for sockets"
        logger.error("%s: a connection to %s could not be accepted (%s; %s): it waits in the queue, and is taken once "
                     "%s free. %s",
                     lack if told_at is None else
                     f"still {lack} ({untold} accepts refused in the {now - told_at:.0f} s since the last report)",
                     _address(context.get("socket")), error.strerror or error, open_files_text(),
                     "descriptors are" if files else "memory is",
                     "Raise the open-file limit (ulimit -n, LimitNOFILE, docker --ulimit nofile) or cap connections in a "
                     "proxy before the guard" if files else
                     "Free memory on the host (or raise the container's memory limit), or cap connections in a proxy "
                     "before the guard")


def _address(sock: Any) -> str:
    try:
        host, port = sock.getsockname()[:2]
    except (AttributeError, OSError, ValueError, TypeError):
        return "a listening socket"
    return f"{host}:{port}"
