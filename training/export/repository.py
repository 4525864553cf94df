"""The model repository an export writes into: a servable one (every model's ``config.pbtxt``), or a new one made
where nothing is yet, so a mistyped ``--repository`` never ends as a folder of artifacts Triton cannot serve."""
from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dermassist.base.paths import SOURCE_REPOSITORY
from dermassist.base.repository import stage_repository
from preprocess.contract import ALL_MODELS

from ..errors import ExportError, TrainingError

logger = logging.getLogger(__name__)

# The layout of what an export writes. Raise it whenever the exported artifacts change shape (a new TorchScript
# method, output or file), so that a repository exported from the same release by older code is exported again.
# 2: the classifier's TorchScript gained its `probabilities` method.
# 3: its CAM resize calls aten::upsample_bilinear2d itself (a scripted F.interpolate did not load on older libtorch).
EXPORT_FORMAT = 3


def missing_configs(repository: Path) -> list[str]:
    """The ``<model>/config.pbtxt`` files of the ensemble's models that ``repository`` lacks."""
    return [f"{model}/config.pbtxt" for model in ALL_MODELS if not (Path(repository) / model / "config.pbtxt").is_file()]


def is_new(repository: Path) -> bool:
    """Whether nothing is at ``repository`` yet (no path, or an empty folder): a new repository can be made there."""
    path = Path(repository)
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def check_repository(repository: Path, error: type[TrainingError] = ExportError) -> None:
    """Raise ``error`` unless ``repository`` is a model repository or nothing is there yet (see ``open_repository``)."""
    path = Path(repository)
    if is_new(path):
        return
    missing = missing_configs(path) if path.is_dir() else []
    if path.is_dir() and not missing:
        return
    found = f"lacks {', '.join(missing)}" if missing else "is a file, not a folder"
    raise error(f"{path} is not a model repository: it {found}, so Triton could not serve what is exported there; pass "
                f"the served repository (the project's is {SOURCE_REPOSITORY}), or a path where nothing is yet to make a "
                "new repository there")


def open_repository(repository: Path, error: type[TrainingError] = ExportError) -> Path:
    """``repository`` ready for an export: checked (``check_repository``), and made from the project's configs and
    ``model.py`` files when nothing was there yet (said at INFO, so a mistyped path does not pass unnoticed)."""
    check_repository(repository, error)
    path = Path(repository)
    if is_new(path):
        stage_repository(path)
        logger.info("model repository %s did not exist: made a new one there from the configs of %s (serve it with "
                    "`dermassist serve --repository %s`); if you meant an existing repository, check the path",
                    path, SOURCE_REPOSITORY, path)
    return path


def empty_folder(path: Path) -> None:
    """Remove everything in the folder ``path``, keeping the folder (a mounted repository cannot be removed or renamed);
    a link is removed, never followed."""
    for entry in list(Path(path).iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _put_back(path: Path, saved: Path) -> None:
    """Make the folder ``path`` hold what ``saved`` holds, in place (a mounted repository cannot be renamed)."""
    empty_folder(path)
    shutil.copytree(saved, path, symlinks=True, dirs_exist_ok=True)


@contextmanager
def restored_on_failure(repository: Path, error: type[TrainingError] = ExportError) -> Iterator[Path]:
    """Run several exports into ``repository`` as one: if any of them fails, or the run is interrupted, the repository
    is put back as it was, in place, from a copy made first in the temporary folder, so a refused second file never
    leaves the first one served alone. Yields the repository."""
    path = Path(repository)
    holder = Path(tempfile.mkdtemp(prefix=f"dermassist-{path.name}-before-"))
    saved = holder / path.name
    try:
        shutil.copytree(path, saved, symlinks=True)
    except OSError as e:
        shutil.rmtree(holder, ignore_errors=True)
        raise error(f"{path}: could not copy the repository before changing it ({e}); free space in "
                    f"{tempfile.gettempdir()} (or set TMPDIR) and check that the repository can be read, then try "
                    "again") from e
    try:
        yield path
    except BaseException as failure:
        try:
            _put_back(path, saved)
        except OSError as e:
            raise error(f"{path}: the change failed ({failure}) and putting the repository back failed too ({e}); "
                        f"what it held before is kept at {saved}: copy it back (or run `dermassist models --force`) "
                        "before serving it") from e
        shutil.rmtree(holder, ignore_errors=True)
        logger.info("model repository %s put back as it was before the failed change", path)
        raise
    shutil.rmtree(holder, ignore_errors=True)
