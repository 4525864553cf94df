"""The classifier's resumable checkpoint (PyTorch): all a run stopped after an epoch needs to go on as if it had not
stopped: the network, its moving average, the optimizer (its moments and step), the schedule's step, both random
streams (NumPy's for sampling and augmentation, torch's for dropout), the epochs done, the history and the best
epoch so far with its weights; and the fingerprint (settings and data) a run must match to continue it."""
from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dermassist.base.atomic import write_atomic

from .. import resume
from ..errors import ResumeError
from ..resume import CLASSIFIER_CHECKPOINT, Checkpointing, array_digest, check_fingerprint, run_fingerprint
from .data import CropSet

if TYPE_CHECKING:
    from .train import ClassifierConfig

logger = logging.getLogger(__name__)


def checkpoint_path(out_dir: Path, name: str) -> Path:
    """Where the run named ``name`` with ``--out out_dir`` keeps its resumable checkpoint: beside (not among) a finished
    run's outputs, so nothing that reads a run folder takes it for one; a finished run removes it."""
    return Path(out_dir) / CLASSIFIER_CHECKPOINT.format(name=name)


def data_digest(train: CropSet, val: CropSet) -> str:
    """The digest of what a run trains and selects on: the training crops, contexts and labels, the validation crops
    and labels (other images, masks, crop settings or splits give another)."""
    return array_digest(train.crops, train.labels, train.contexts, val.crops, val.labels)


def _names(crops: CropSet) -> tuple[str, ...] | None:
    if len(crops.image_ids) != len(crops.labels):  # crops made without their ids: nothing to name them by
        return None
    sources = crops.sources if len(crops.sources) == len(crops.labels) else ("",) * len(crops.labels)
    return tuple(resume.named_image(source, image_id) for source, image_id in zip(sources, crops.image_ids))


def data_images(train: CropSet, val: CropSet) -> dict[str, dict[str, list[str]]] | None:
    """Each training and validation image's own digest (crop, label, context), keyed ``source/image id``: recorded
    beside :func:`data_digest` so that a refused ``--resume`` names the images that changed; None when the crops
    carry no ids (named by their place, an image added in front would name every later one)."""
    train_names, val_names = _names(train), _names(val)
    if train_names is None or val_names is None:
        return None
    return {"train": resume.image_digests(train_names, train.crops, train.labels, train.contexts),
            "val": resume.image_digests(val_names, val.crops, val.labels)}


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write a checkpoint whole or not at all (a Ctrl-C while it is written leaves the previous epoch's); its folder
    (a run's --out) is made when absent."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(Path(path), lambda partial: torch.save(state, partial))


def load_checkpoint(path: Path, mmap: bool = False) -> dict[str, Any]:
    """A checkpoint's contents on the CPU, or ResumeError naming the file when it cannot be read."""
    try:
        saved = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=mmap)
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as e:
        raise ResumeError(f"--resume: checkpoint {path} cannot be read ({type(e).__name__}: {e}); expected the checkpoint "
                          "a classifier run saves as each epoch ends: leave out --resume to start again from epoch 1 "
                          "(the file is then replaced)") from e
    if not isinstance(saved, dict) or "fingerprint" not in saved:
        raise ResumeError(f"--resume: {path} is not a classifier run's checkpoint (no fingerprint in it); leave out "
                          "--resume to start again from epoch 1 (the file is then replaced)")
    return saved


def check_resumable(checkpointing: Checkpointing, config: ClassifierConfig) -> None:
    """Before any data is read: refuse (ResumeError) a ``--resume`` whose checkpoint is of other settings (the data is
    compared once the crops are cut)."""
    if checkpointing.resume:
        saved = load_checkpoint(checkpointing.path, mmap=True)
        check_fingerprint(checkpointing.path, saved["fingerprint"], run_fingerprint(config, None))
