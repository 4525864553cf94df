"""Files and folders that hold patient data are made readable by their owner only (0600 and 0700, whatever the
umask): results, reports and spooled instances name the patient and carry the picture."""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: Path) -> Path:
    """Create ``path`` (and its missing parents) as a folder only its owner can open; an existing one is left as is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=FOLDER_MODE, exist_ok=True)
    return path


def open_private(path: Path) -> BinaryIO:
    """Open ``path`` for writing (created or truncated) readable and writable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(descriptor, FILE_MODE)  # an existing file keeps its mode through O_CREAT: set it
    return os.fdopen(descriptor, "wb")


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
