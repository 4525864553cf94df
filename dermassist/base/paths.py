"""Where the project and the shared real samples are on disk (no import beyond the standard library)."""
from __future__ import annotations

import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The model repository the project serves: configs and model.py files in git, artifacts from `make models`.
SOURCE_REPOSITORY = PROJECT_ROOT / "model_repository"
# The real dermoscopy sets beside the project (../shared/data, see its README); never copied into it.
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
HAM_SAMPLE_IMAGES = SHARED_DATA / "ham10000_sample" / "HAM10000_images_part_1"


def file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is a file (so ``path`` cannot be made), else None."""
    for parent in Path(path).parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be (or be made) a folder, as far as the file system's shape tells: it is a file, or one of
    its parents is; None otherwise (permissions are found when it is made)."""
    if path.exists():
        return None if path.is_dir() else "is a file"
    blocking = file_in_the_way(path)
    return None if blocking is None else f"cannot be made: {blocking} is a file, not a folder"


def writable_folder_error(path: Path) -> OSError | None:
    """Make ``path`` a folder (with its parents) and make a file in it, before any work whose results go there; the
    error that stopped either, else None."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        return e
    return None


def writable_folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be made a folder results are written in (``writable_folder_error``), in the system's words,
    else None."""
    error = writable_folder_error(path)
    return None if error is None else f"cannot be written ({error.strerror or error})"
