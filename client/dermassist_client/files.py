"""What a path names when it is not a regular file, in the one wording the client's readers and checks use.

Reading a named pipe blocks until a writer comes, and a character device such as ``/dev/zero`` never ends, so every
place where the client opens a path a user named looks at its kind first and refuses it by name.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable

_KINDS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def mode_kind(mode: int) -> str | None:
    """What a ``stat`` mode names when it is not a regular file ("a folder", "a named pipe (FIFO)", ...), else None."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def path_kind(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` names when it exists and is not a regular file (symbolic links followed), else None.

    A missing path, or one that cannot be looked at, is None: the caller's own open says why."""
    try:
        return mode_kind(os.stat(path).st_mode)
    except (OSError, ValueError):
        return None
