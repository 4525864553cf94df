"""A training run's --out folder: a path that is a file, or lies in one, is refused before any work; a run's outputs
are written into a hidden staging folder in it and replace an earlier run's together once the run is done."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dermassist.base.paths import file_in_the_way

from .errors import TrainingConfigError

#: The file names a classifier run named NAME writes (``--name``): NAME_resnet18.pt beside NAME_metrics.json, and when
#: interrupted NAME_interrupted_resnet18.pt beside NAME_interrupted.json (import reads them without loading torch).
CLASSIFIER_STATE_DICT = "resnet18.pt"
INTERRUPTED = "_interrupted"


def refuse_file_out(out_dir: Path, holds: str = "the run's metrics, plots and weights") -> None:
    """TrainingConfigError when ``--out`` (or a folder above it) is a file: the run could write nothing there."""
    out_dir = Path(out_dir)
    blocking = out_dir if out_dir.exists() and not out_dir.is_dir() else file_in_the_way(out_dir)
    if blocking is not None:
        what = "is a file" if blocking == out_dir else f"lies inside {blocking}, which is a file"
        raise TrainingConfigError(f"--out {out_dir} {what}; expected a folder for {holds}: pass another --out, or move "
                                  "the file away")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def staged_outputs(out_dir: Path, name: str, last: str, stale: Sequence[str] = ()) -> Iterator[Path]:
    """A hidden folder ``.<name>.staging`` in ``out_dir`` for a run's outputs (files and folders): when the block ends
    normally they replace an earlier run's together (``last``, the file that marks a finished run, moved last; a folder
    replaces the earlier one whole) and what ``stale`` names that this run did not stage (an earlier run's outputs this
    one does not make, what an unfinished run left: its best epoch, its resumable checkpoint) is removed; when it raises
    (an error, Ctrl-C) the staging folder goes, ``out_dir`` keeps the earlier run whole and a new ``out_dir`` left
    empty is removed."""
    out_dir = Path(out_dir)
    refuse_file_out(out_dir)
    made = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainingConfigError(f"--out {out_dir} cannot be made a folder ({e.strerror}); expected a folder path "
                                  "whose parents are folders you may write to: pass another --out") from e
    staging = out_dir / f".{name}.staging"
    shutil.rmtree(staging, ignore_errors=True)  # what a run killed outright left
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    staged = sorted(staging.iterdir(), key=lambda p: p.name == last)
    for path in staged:
        target = out_dir / path.name
        if path.is_dir() or target.is_dir():  # os.replace moves a file onto a file only; a folder goes whole
            _remove(target)
        os.replace(path, target)
    staging.rmdir()
    for leftover in set(stale) - {p.name for p in staged}:
        _remove(out_dir / leftover)
