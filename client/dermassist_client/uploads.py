"""Where the demo page keeps the pictures uploaded to it: a folder of this run alone, readable by its user alone.

Gradio's default, ``<tmp>/gradio``, is shared with every user and every other Gradio app of the machine, its folders
listable by all (an upload keeps its file name: ``Doe_Jane_MRN123456.jpg``) and its result pictures readable by all;
and a page that crashed left them there for good (privacy audit, M2). The page's folder is made mode 0700 under the
temporary folder, named for its process; it is removed when the process ends, and a later page removes those whose
process is gone. An operator who sets ``GRADIO_TEMP_DIR`` (the container, on its tmpfs) keeps that folder.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

ENV = "GRADIO_TEMP_DIR"
PREFIX = "dermassist-demo-"
_NAME = re.compile(rf"{PREFIX}(\d+)-")
_made: Path | None = None  # this process's folder, once made


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs (one of another user's counts: its folder is not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_folders(base: Path) -> list[Path]:
    """This user's upload folders under ``base`` whose page process has ended."""
    stale = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        try:
            mine = entry.is_dir() and not entry.is_symlink() and entry.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and not process_alive(int(match.group(1))):
            stale.append(entry)
    return stale


def private_upload_folder(base: Path | None = None) -> Path:
    """The folder the page keeps its uploads and result pictures in (``GRADIO_TEMP_DIR`` from now on): the operator's
    when set, else this process's own (made once, mode 0700, removed at exit), after removing the folders of pages
    that ended without removing theirs (a crash, a SIGKILL)."""
    global _made
    given = os.environ.get(ENV)
    if given and (_made is None or Path(given) != _made):
        return Path(given)
    if _made is not None and _made.is_dir():
        os.environ[ENV] = str(_made)  # handed to Gradio again, should the variable have been cleared meanwhile
        return _made
    root = Path(base) if base is not None else Path(tempfile.gettempdir())
    for folder in stale_folders(root):
        shutil.rmtree(folder, ignore_errors=True)
        logger.info("removed the uploads a demo page that ended left in %s", folder)
    _made = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root))
    os.environ[ENV] = str(_made)
    atexit.register(shutil.rmtree, _made, True)
    return _made
