"""Writing a file whole or not at all (standard library only: the load-test image ships the base without the rest)."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], object], partial: Path | None = None) -> Path:
    """Have ``write`` write a file at a temporary path beside ``path`` (``partial``, default ``<name>.partial``: a
    writer that insists on a suffix, e.g. Keras's ``.keras``, gets its own), then ``os.replace`` it onto ``path``, so
    an interrupted write leaves the old file or the new one, never a cut one (the temporary file is removed)."""
    path = Path(path)
    partial = Path(partial) if partial is not None else path.with_name(path.name + ".partial")
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
