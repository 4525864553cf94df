"""A training run's --out folder: a path that is a file, or lies in one, is refused before any work."""
from __future__ import annotations

from pathlib import Path

from dermassist.base.paths import file_in_the_way

from .errors import TrainingConfigError


def refuse_file_out(out_dir: Path, holds: str = "the run's metrics, plots and weights") -> None:
    """TrainingConfigError when ``--out`` (or a folder above it) is a file: the run could write nothing there."""
    out_dir = Path(out_dir)
    blocking = out_dir if out_dir.exists() and not out_dir.is_dir() else file_in_the_way(out_dir)
    if blocking is not None:
        what = "is a file" if blocking == out_dir else f"lies inside {blocking}, which is a file"
        raise TrainingConfigError(f"--out {out_dir} {what}; expected a folder for {holds}: pass another --out, or move "
                                  "the file away")
