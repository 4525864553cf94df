"""The private copy of the model repository that the guard's tritonserver serves.

tritonserver reads a model's files whenever it loads it: at its start, at an admin load, and at every heal (a step
reloaded, a restart). Served straight from the operator's folder, a heal after that folder had changed loaded the files
then there beside the older ones still in memory, and the answers named a build of files that were not all loaded
(upgrade audit, H1). The guard serves a copy instead, made at its start and made again only at an admin load of the
ensemble: a heal loads again what was loaded, and the release and build read from the copy name exactly the files
its models came from. The operator's folder is only read.
"""
from __future__ import annotations

import compileall
import errno
import filecmp
import logging
import os
import shutil
import stat
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import grpc

from preprocess.contract import ALL_MODELS

from ..base.errors import ConfigError, DermAssistError
from ..base.repository import SEAL_FILE, FileMarks, changed_files, repository_marks, require_servable, seal_problems
from ..base.server import RUN_FOLDER_PREFIX, check_tuned_values, hold_run_folder
from ..base.server_config import unservable_chars

logger = logging.getLogger(__name__)

#: The copy's folder is a run folder (RUN_FOLDER_PREFIX): locked while its guard runs, removed by a later start once
#: its guard is gone (``remove_orphans``), so a guard killed outright leaves no copy behind for long.
COPY_PREFIX = f"{RUN_FOLDER_PREFIX}served-"


#: What a failed admin load that could not be undone leaves (Triton answers on with what it holds, which is not known).
LOST_MODELS = ("the models served before a failed admin load could not all be loaded again: the answers name no build "
               "until tritonserver is restarted (by a heal's restart, or a new start of serve), which loads the copy "
               "served")


class CopyError(ConfigError):
    """The operator's repository cannot be copied to be served (missing models, a seal it fails, a change while it was
    copied, no room): nothing served changed."""


class LoadFailed(DermAssistError):
    """An admin load of the updated copy that Triton failed or did not end in time: its gRPC status ``code`` and
    ``details``; ``restored``: whether the models served before were loaded again."""

    def __init__(self, code: grpc.StatusCode, details: str, restored: bool) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code, self.details, self.restored = code, details, restored

    @property
    def outcome(self) -> str:
        """What the failed load leaves served, in the words the call's answer and the log give."""
        return "the models served before are served again" if self.restored else LOST_MODELS


def copied_entries(source: Path) -> list[str]:
    """What of ``source`` is served: each model folder DermAssist runs (ALL_MODELS) that is there, and the files of its
    top level (the release's name and stamp, the seal, an import's origins); other folders in it are not models."""
    models = [name for name in ALL_MODELS if (source / name).is_dir()]
    return models + sorted(p.name for p in source.iterdir() if p.is_file() and p.name not in models)


def copy_repository(source: Path, destination: Path) -> None:
    """Copy the served entries of ``source`` into the empty folder ``destination``: links followed (the copy holds the
    files themselves), caches left out and the steps' byte-code compiled anew, each file with the time of the copy (so
    tritonserver takes a copied model folder for a changed one)."""
    destination.mkdir(exist_ok=True)
    entries = copied_entries(source)
    for name in entries:
        if (source / name).is_dir():
            shutil.copytree(source / name, destination / name, ignore=shutil.ignore_patterns("__pycache__"),
                            copy_function=shutil.copy)
        else:
            shutil.copy(source / name, destination / name)
    for folder, _, _ in os.walk(destination):  # a release made read-only (chmod -R a-w) gives read-only folders: the
        os.chmod(folder, os.stat(folder).st_mode | stat.S_IRWXU)  # copy's must be the guard's to swap and remove
    for name in entries:
        if name in ALL_MODELS:
            compile_steps(destination / name)


def compile_steps(model: Path) -> None:
    """Write the byte-code of the Python files of the model folder ``model`` beside them, as their sources are now.

    A step's stub writes it beside its model.py once loaded (the stub's Python reads no PYTHONDONTWRITEBYTECODE), which
    made tritonserver take every step for changed at the next load of the ensemble and replace its instances. Only the
    model folders: a __pycache__ at the repository's top level would be taken for a model. A model.py that does not
    compile is left to fail its load, as it would."""
    compileall.compile_dir(str(model), quiet=2, force=True)


def same_entry(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` (files, or folders compared file by file, caches left out) hold the same bytes."""
    if a.is_file() or b.is_file():
        return a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False)
    if not (a.is_dir() and b.is_dir()):
        return False
    names = {n for n in os.listdir(a) if n != "__pycache__"}
    if names != {n for n in os.listdir(b) if n != "__pycache__"}:
        return False
    return all(same_entry(a / n, b / n) for n in names)


def copy_problem(error: OSError, folder: Path) -> str:
    """What went wrong copying the models into ``folder`` (the first file of a copy that failed on many), with the fix
    its cause calls for: room, permissions, or a path."""
    text = str(error)
    if isinstance(error, shutil.Error) and error.args and isinstance(error.args[0], list) and error.args[0]:
        failures = error.args[0]
        source, _, why = failures[0]
        text = f"{why}, copying {source}" + (f", and {len(failures) - 1} more files" if len(failures) > 1 else "")
    if error.errno == errno.ENOSPC or f"[Errno {errno.ENOSPC}]" in text:
        fix = (f"free space in {folder} (room for two copies of the models: the one served, and one made at each admin "
               "load), or start serve again with TMPDIR naming a folder that has it")
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS) or any(
            f"[Errno {code}]" in text for code in (errno.EACCES, errno.EPERM, errno.EROFS)):
        fix = f"let serve's user write in {folder}, or start serve again with TMPDIR naming a folder it can write"
    else:
        fix = f"make {folder} a folder serve's user can write and that has room, or start serve again with TMPDIR naming one"
    return f"{text}; {fix}"


def remove_tree(path: Path) -> None:
    """Remove the folder ``path``, its read-only folders included (their modes are set to the owner's); what cannot be
    removed is logged, never raised."""
    def writable_and_again(function: Any, name: str, _: Any) -> None:
        """Make the folder holding ``name`` the owner's to change, and try ``function`` on it again."""
        parent = os.path.dirname(name)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IRWXU)
        function(name)

    try:
        shutil.rmtree(path, onerror=writable_and_again)
    except FileNotFoundError:
        pass
    except OSError as e:
        logger.warning("could not remove %s, the guard's copy of the models: %s", path, e)


def _touch_all(root: Path) -> None:
    """Give every file and folder under ``root`` the time now: tritonserver then takes it for a changed model."""
    now = time.time()
    for folder, _, names in os.walk(root):
        for name in names:
            os.utime(Path(folder) / name, (now, now))
        os.utime(folder, (now, now))


class ServedCopy:
    """A private copy of the repository ``source`` in a folder of its own under the temporary folder: ``fill`` makes
    it at start, ``update`` takes the changes of ``source`` in (``keep`` or ``restore`` then ends the update),
    ``close`` removes it. ``repository`` is the folder tritonserver is given."""

    def __init__(self, source: Path, parent: Path | None = None) -> None:
        """CopyError when no folder for the copy can be made under ``parent`` (default: the temporary folder)."""
        self.source = Path(source).resolve()
        folder = Path(parent) if parent is not None else Path(tempfile.gettempdir())
        unservable = unservable_chars(folder)
        if unservable:  # tritonserver is given the copy's path
            raise CopyError(f"the temporary folder {folder} has {', '.join(map(repr, unservable))} in its path, which "
                            "tritonserver 2.51 cannot serve models from (serve copies the models there); expected a "
                            "path of plain ASCII without spaces: start serve with TMPDIR naming one")
        wanted = os.environ.get("TMPDIR")
        if parent is None and wanted and Path(wanted).resolve() != folder.resolve():
            logger.warning("TMPDIR is %s, but Python's temporary folder is %s (TMPDIR cannot be written): the copy of "
                           "the models served goes there", wanted, folder)
        try:
            self.root = Path(tempfile.mkdtemp(prefix=COPY_PREFIX, dir=folder))
            self._lock = hold_run_folder(self.root, "")
            self.repository = self.root / "repository"
            self.repository.mkdir()
        except OSError as e:
            raise CopyError(f"cannot make a folder under {folder} for the copy of model repository {self.source} that "
                            f"serve serves: {copy_problem(e, folder)}") from e
        self._previous = self.root / "previous"  # what an update replaced, until kept or restored
        self._replaced: list[str] = []
        self._closer = weakref.finalize(self, _remove, self.root, self._lock)

    def fill(self) -> FileMarks:
        """Copy ``source`` into the empty served folder; the marks of the source's files as copied (what its watch
        compares with). CopyError when it cannot be served or changed while it was copied."""
        marks = self._copy_checked(self.repository)
        logger.info("serving a copy of %s (made now, in %s): a change to that folder is served after an admin load of "
                    "the ensemble or a restart, never by a heal", self.source, self.repository)
        return marks

    def update(self) -> tuple[list[str], FileMarks]:
        """Copy ``source`` again beside the served folder, check the copy, and put each entry whose bytes changed in
        place of the served one (a rename each); the names put in place, and the source's marks as copied. Nothing
        served changes on a CopyError. The entries replaced are kept until ``keep`` or ``restore``."""
        self._end_update()
        incoming = self.root / "incoming"
        remove_tree(incoming)
        try:
            marks = self._copy_checked(incoming)
            names = set(copied_entries(incoming)) | set(copied_entries(self.repository))
            changed = sorted(n for n in names if not same_entry(incoming / n, self.repository / n))
            self._previous.mkdir()
            for name in changed:
                self._replaced.append(name)  # before its renames: a swap cut between them is put back whole
                if (self.repository / name).exists():
                    os.rename(self.repository / name, self._previous / name)
                if (incoming / name).exists():
                    os.rename(incoming / name, self.repository / name)
        except OSError as e:
            self.restore()
            raise CopyError(f"could not put the new copy of model repository {self.source} in place of the one served: "
                            f"{copy_problem(e, self.root.parent)}") from e
        finally:
            remove_tree(incoming)
        return changed, marks

    def keep(self) -> None:
        """The update's entries are served: the ones it replaced are removed."""
        self._end_update()

    def restore(self) -> list[str]:
        """Put back what the last update replaced, each entry with the time now (so tritonserver loads it again); the
        names put back."""
        restored = list(self._replaced)
        for name in restored:
            _remove_entry(self.repository / name)
            if (self._previous / name).exists():
                os.rename(self._previous / name, self.repository / name)
                _touch_all(self.repository / name)
                if name in ALL_MODELS:  # its byte-code as its sources are now (touched)
                    compile_steps(self.repository / name)
        self._replaced = []
        remove_tree(self._previous)
        return restored

    def check(self, error: type[Exception]) -> None:
        """Raise ``error`` if the served copy no longer holds what was copied (a cleaner of the temporary folder?)."""
        try:
            require_servable(self.repository, error)
        except Exception as e:
            raise error(f"the copy of model repository {self.source} that is served ({self.repository}) lost or changed "
                        f"files since it was made ({e}); expected it untouched while serve runs: keep cleaners of "
                        f"temporary files away from {self.root} (or set TMPDIR), and restart serve") from e

    def close(self) -> None:
        """Remove the copy (its guard has stopped tritonserver)."""
        self._closer()

    def _end_update(self) -> None:
        """Forget the last update's replaced entries and remove them."""
        self._replaced = []
        remove_tree(self._previous)

    def _copy_checked(self, destination: Path) -> FileMarks:
        """Copy ``source`` into ``destination`` once it is servable (its models there, as sealed, their tuned values
        ones their steps take); the marks of its files before the copy. A copy that fails the source's seal or whose
        files changed meanwhile (an export still writing) is a CopyError."""
        require_servable(self.source, CopyError)
        try:
            check_tuned_values(self.source)  # a value its step refuses: the step would run on defaults, or not load
        except ConfigError as e:
            raise CopyError(str(e)) from e
        marks = repository_marks(self.source)
        try:
            copy_repository(self.source, destination)
        except OSError as e:
            if destination != self.repository:  # a start that fails leaves the whole copy to close()
                remove_tree(destination)
            raise CopyError(f"could not copy model repository {self.source} to serve it: "
                            f"{copy_problem(e, self.root.parent)}") from e
        problems = seal_problems(destination) or [f"{name} changed" for name in
                                                   changed_files(marks, repository_marks(self.source))]
        if problems:
            remove_tree(destination)
            shown = "; ".join(problems[:5])
            raise CopyError(f"model repository {self.source} changed while it was copied to be served ({shown}; "
                            f"{SEAL_FILE} says what was written): expected a folder no one writes to; finish the export "
                            "or copy into it, then start or load again")
        return marks


def _remove_entry(path: Path) -> None:
    """Remove the file or folder ``path`` (nothing if it is not there)."""
    if path.is_dir() and not path.is_symlink():
        remove_tree(path)
    else:
        path.unlink(missing_ok=True)


def _remove(root: Path, lock: int) -> None:
    """Remove a copy's folder and let go of its lock (its guard stopped, or was collected)."""
    remove_tree(root)
    try:
        os.close(lock)
    except OSError:
        pass
