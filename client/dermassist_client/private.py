"""Files and folders that hold patient data are made readable by their owner only (0600 and 0700, whatever the
umask): results, reports and spooled instances name the patient and carry the picture."""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO

from .errors import DermAssistClientError
from .files import mode_kind, path_kind

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: Path) -> Path:
    """Create ``path`` (and its missing parents) as a folder only its owner can open; an existing one is left as is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=FOLDER_MODE, exist_ok=True)
    return path


class UnsafeOutputError(DermAssistClientError, OSError):
    """An output path is a symbolic link or not a regular file: patient data is not written through it.

    An ``OSError`` too (``strerror`` holds the whole reason), so a caller's ``except OSError`` that names what it was
    writing still reports it."""


def open_private(path: Path) -> BinaryIO:
    """Open ``path`` for writing (created or truncated) readable and writable by its owner only; refuse a symbolic
    link (never followed: its target is neither truncated nor chmod'ed) or anything but a regular file."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK  # non-blocking: a FIFO fails instead of waiting
    try:
        descriptor = os.open(path, flags, FILE_MODE)
    except OSError as e:
        if e.errno == errno.ELOOP or path.is_symlink():
            raise _unsafe(path, f"is a symbolic link (to {_target(path)})") from e
        if e.errno == errno.ENXIO:  # a FIFO without a reader, a socket
            raise _unsafe(path, f"is {path_kind(path) or 'not a regular file'}") from e
        raise
    try:
        kind = mode_kind(os.fstat(descriptor).st_mode)
        if kind is not None:
            raise _unsafe(path, f"is {kind}")
        os.ftruncate(descriptor, 0)  # truncated only once known to be a regular file
        os.fchmod(descriptor, FILE_MODE)  # an existing file keeps its mode through O_CREAT: set it
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "wb")
    except BaseException:
        os.close(descriptor)
        raise


def _target(path: Path) -> str:
    try:
        return repr(os.readlink(path))
    except OSError:
        return "an unknown target"


def _unsafe(path: Path, what: str) -> UnsafeOutputError:
    return UnsafeOutputError(
        errno.ELOOP if "link" in what else errno.EINVAL,
        f"{path} {what}; expected a new or existing regular file: patient data is not written through it, as that "
        "could overwrite or expose another file. Remove it, or choose another output path")


def write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` readable by its owner only."""
    with open_private(path) as f:
        f.write(data)
    return path


def remove_output(path: Path) -> bool:
    """Remove an earlier run's output at ``path`` so it cannot pass for this run's; whether there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
