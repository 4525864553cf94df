"""Resumable training runs, framework-free: where a run keeps the checkpoint it saves as each epoch ends, and what the
checkpoint must match to be continued (``--resume``): the run's config and its data, as a fingerprint. The frameworks'
own state (weights, optimizer, random streams) is saved by ``training.classifier.checkpoint`` and
``training.segmenter.train``."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

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


#: How many names of changed images a refused --resume lists per kind of change (the counts are always given).
NAMED_CHANGES = 5


def named_image(source: str | None, image_id: str) -> str:
    """How :func:`image_digests` keys and a refused ``--resume`` names an image: ``source/image id`` (the id alone when
    the source is not known)."""
    return f"{source}/{image_id}" if source else image_id


def image_digests(image_ids: Sequence[str], *arrays: np.ndarray | None) -> dict[str, list[str]]:
    """image id -> a short digest of each of its rows of ``arrays`` (row i of each array is image i: its pixels, label,
    mask), in order, recorded beside a run's data digest so that a refused ``--resume`` can name the images that
    changed; an id of more than one row (two sources numbering alike) lists a digest per row."""
    if any(a is not None and len(a) != len(image_ids) for a in arrays):
        raise ValueError(f"image_digests: {len(image_ids)} image ids for arrays of {[len(a) for a in arrays if a is not None]} "
                         "rows; expected one id per row")
    digests: dict[str, list[str]] = {}
    for i, image_id in enumerate(image_ids):
        digests.setdefault(image_id, []).append(array_digest(*(None if a is None else a[i] for a in arrays))[:16])
    return digests


def run_fingerprint(config: DataclassInstance, data_digest: str | None,
                    images: Mapping[str, Mapping[str, list[str]]] | None = None) -> dict[str, Any]:
    """What a checkpoint must match to be continued: the run's settings (less the display-only ones) as JSON values,
    and the digest of its training and validation data (None: not known yet, only the settings are compared);
    ``images`` (split -> :func:`image_digests`) is recorded to name what changed, never compared itself."""
    values = json.loads(json.dumps(asdict(config), default=str))
    for name in DISPLAY_ONLY:
        values.pop(name, None)
    fingerprint = {"format": CHECKPOINT_FORMAT, "config": values, "data": data_digest}
    if images is not None:
        fingerprint["images"] = {split: dict(digests) for split, digests in images.items()}
    return fingerprint


def _named(kind: str, names: Sequence[str]) -> str:
    shown = ", ".join(sorted(names)[:NAMED_CHANGES])
    more = f" and {len(names) - NAMED_CHANGES} more" if len(names) > NAMED_CHANGES else ""
    return f"{len(names)} {kind} ({shown}{more})"


def _per_row_record(record: Any) -> TypeGuard[Mapping[str, Mapping[str, list[str]]]]:
    """Whether ``record`` is an ``images`` record as :func:`image_digests` writes it (split -> id -> list of digests)."""
    return isinstance(record, Mapping) and all(
        isinstance(digests, Mapping) and all(isinstance(rows, list) for rows in digests.values())
        for digests in record.values())


def images_changed(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> str | None:
    """Which images of each split differ between two fingerprints' ``images`` records (changed pixels, label or mask;
    added; left out; moved in from another split), or that the same images come in another order; None when either
    fingerprint has no record (a checkpoint of older code) or the records agree. Rows sharing an id are matched by
    content first, so the rows left out of them are the ones named, whatever their place."""
    old, new = recorded.get("images"), wanted.get("images")
    if not _per_row_record(old):
        return None  # a checkpoint of older code (no record, or one digest per id): the data digests alone are told
    if not _per_row_record(new):
        return None
    parts = []
    for split in sorted(set(old) | set(new)):
        before, now = old.get(split, {}), new.get(split, {})
        changes: dict[str, list[str]] = {"changed": [], "added": [], "moved in from another split": [], "left out": []}
        for image in [*now, *(i for i in before if i not in now)]:
            was, is_ = Counter(before.get(image, [])), Counter(now.get(image, []))
            gone, came = sum((was - is_).values()), sum((is_ - was).values())  # rows matched by content cancel out
            changes["changed"] += [image] * min(gone, came)
            if came > gone:
                elsewhere = any(image in digests for other, digests in old.items() if other != split)
                changes["moved in from another split" if elsewhere else "added"] += [image] * (came - gone)
            elif gone > came and not any(image in digests for other, digests in new.items() if other != split):
                changes["left out"] += [image] * (gone - came)
        said = [_named(what, names) for what, names in changes.items() if names]
        if said:
            parts.append(f"{split}: " + ", ".join(said))
    if parts:
        return "; ".join(parts)
    if any(list(old.get(split, {}).items()) != list(new.get(split, {}).items()) for split in set(old) | set(new)):
        return "the same images in another order"
    return None


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
        which = images_changed(recorded, wanted)
        differences.append(f"the training and validation images differ (data digest {str(recorded.get('data'))[:12]} in "
                           f"the checkpoint, {str(wanted['data'])[:12]} now: "
                           f"{which or 'other images, masks, crop settings or split'})")
    if differences:
        parts = ("format", "config", "data") if wanted.get("data") is not None else ("format", "config")
        theirs, ours = ({k: fp.get(k) for k in parts} for fp in (recorded, wanted))
        raise ResumeError(
            f"--resume: checkpoint {path} (fingerprint {fingerprint_text(theirs)}) is of another run than this one "
            f"(fingerprint {fingerprint_text(ours)}): {'; '.join(differences)}; continuing it would mix two runs: "
            "pass the flags and data of the run that wrote it, or leave out --resume to start again from epoch 1 (the "
            "checkpoint is then replaced)")
