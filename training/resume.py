"""Resumable training runs, framework-free: where a run keeps the checkpoint it saves as each epoch ends, and what the
checkpoint must match to be continued (``--resume``): the run's config and its data, as a fingerprint. The frameworks'
own state (weights, optimizer, random streams) is saved by ``training.classifier.checkpoint`` and
``training.segmenter.train``."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ResumeError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: Bumped when what a checkpoint holds changes: a checkpoint of another format is refused, not misread.
CHECKPOINT_FORMAT = 1
#: Settings that change only what a run shows (a progress bar, Keras's per-epoch lines), never what it trains: a run
#: resumed from a terminal or from a log file continues the same run.
DISPLAY_ONLY = ("progress", "verbose")
RESUME_HINT = "rerun with --resume to continue"
#: The resumable checkpoint a run keeps in its --out (named here, framework-free, for the release build too): the
#: classifier's under its --name, the segmenter's.
CLASSIFIER_CHECKPOINT = "{name}_resume.pt"
SEGMENTER_CHECKPOINT = "segmenter_resume.npz"


@dataclass(frozen=True)
class Checkpointing:
    """Where a run keeps its resumable checkpoint (saved, whole or not at all, as each epoch ends) and whether it
    continues from it (``--resume``); a run asked to resume from a checkpoint that is not there is refused here, before
    any data is read."""

    path: Path
    resume: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if self.resume and not self.path.is_file():
            state = "is a folder" if self.path.is_dir() else "does not exist"
            raise ResumeError(
                f"--resume: checkpoint {self.path} {state}; expected the checkpoint an unfinished run (stopped by Ctrl-C "
                "or failed after an epoch ended) leaves in its --out: pass the --out (and --name) of that run, or leave "
                "out --resume to start at epoch 1")


def array_digest(*arrays: np.ndarray | None) -> str:
    """A SHA-256 (hex) of arrays' dtypes, shapes and bytes (None counts as absent), e.g. a run's training images."""
    h = hashlib.sha256()
    for array in arrays:
        if array is None:
            h.update(b"absent;")
            continue
        a = np.ascontiguousarray(array)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def run_fingerprint(config: DataclassInstance, data_digest: str | None) -> dict[str, Any]:
    """What a checkpoint must match to be continued: the run's settings (less the display-only ones) as JSON values,
    and the digest of its training and validation data (None: not known yet, only the settings are compared)."""
    values = json.loads(json.dumps(asdict(config), default=str))
    for name in DISPLAY_ONLY:
        values.pop(name, None)
    return {"format": CHECKPOINT_FORMAT, "config": values, "data": data_digest}


def fingerprint_text(fingerprint: Mapping[str, Any]) -> str:
    """A short hash of a fingerprint, for messages."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:12]


def _flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_fingerprint(path: Path, recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    """Refuse (ResumeError) to continue the checkpoint at ``path`` for a run whose fingerprint ``wanted`` differs from
    the ``recorded`` one: the message names both fingerprints, every setting that differs with both values, and
    whether the data differs (``wanted['data']`` None: the data is not compared)."""
    if recorded.get("format") != CHECKPOINT_FORMAT:
        raise ResumeError(f"--resume: checkpoint {path} is of format {recorded.get('format')!r}, this code reads format "
                          f"{CHECKPOINT_FORMAT}; it was written by another version of the training code: leave out "
                          "--resume to start again from epoch 1 (the checkpoint is then replaced)")
    old, new = _flat(recorded.get("config", {})), _flat(wanted.get("config", {}))
    differences = [f"{name}: {old.get(name, 'unset')!r} in the checkpoint, {new.get(name, 'unset')!r} now"
                   for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
    if wanted.get("data") is not None and recorded.get("data") != wanted.get("data"):
        differences.append(f"the training and validation images differ (data digest {str(recorded.get('data'))[:12]} in "
                           f"the checkpoint, {str(wanted['data'])[:12]} now: other images, masks, crop settings or "
                           "split)")
    if differences:
        parts = ("format", "config", "data") if wanted.get("data") is not None else ("format", "config")
        theirs, ours = ({k: fp.get(k) for k in parts} for fp in (recorded, wanted))
        raise ResumeError(
            f"--resume: checkpoint {path} (fingerprint {fingerprint_text(theirs)}) is of another run than this one "
            f"(fingerprint {fingerprint_text(ours)}): {'; '.join(differences)}; continuing it would mix two runs: "
            "pass the flags and data of the run that wrote it, or leave out --resume to start again from epoch 1 (the "
            "checkpoint is then replaced)")
