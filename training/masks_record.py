"""The record beside a folder of predicted masks: which segmenter wrote them, at which tuned threshold. The release
pipeline checks it before a re-tune; a classifier run cutting crops from the folder warns where it disagrees."""
from __future__ import annotations

import json
import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

from dermassist.base.repository import file_sha256

from .release import write_json_atomic

logger = logging.getLogger(__name__)

#: Beside a folder of predicted masks: the SHA-256 of the segmenter weights they come from (and its threshold).
MASKS_RECORD = "masks.json"


def read_masks_record(masks: Path) -> dict[str, Any] | None:
    """The record of ``masks`` (a JSON object), or None where there is none or it cannot be read."""
    try:
        record = json.loads((Path(masks) / MASKS_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def record_masks(masks: Path, segmenter: Path, threshold: float | None = None, same_model: bool = False,
                 shown: Path | None = None, written: Collection[str] | None = None) -> None:
    """Record which segmenter weights (a release's ``segmenter.npz``, a run's ``segmenter.keras``) wrote the masks in
    ``masks``, with its tuned threshold where known. A folder that held another segmenter's masks is recorded as
    mixed, and said in a WARNING: the masks of the images both predicted are this one's, the others the earlier's.
    ``same_model``: the masks are known to be ``segmenter``'s (the release pipeline recording its stage's masks under
    the release's weights, which are the same model in another file): the record is replaced, its threshold kept.
    ``shown``: where the weights will lie (a staged run's are moved when it ends). ``written``: the mask files this
    run wrote; the folder is mixed only where another file is left (a rebuild rewriting every mask is not)."""
    Path(masks).mkdir(parents=True, exist_ok=True)
    digest = file_sha256(segmenter)
    earlier = read_masks_record(masks) or {}
    if same_model:
        threshold = earlier.get("threshold") if threshold is None else threshold
        earlier = {}
    others = sorted({*earlier.get("mixed_with", []), earlier.get("segmenter_sha256")} - {None, digest})
    left = [p for p in Path(masks).glob("*.png") if written is None or p.name not in written]
    others = others if left else []
    if others:
        logger.warning("%s held masks of another segmenter (weights sha256 %s...): the masks of the images this run "
                       "predicted are its own, any others stay the earlier one's; predict into an empty folder to "
                       "keep one segmenter's masks", masks, others[0][:16])
    record: dict[str, Any] = {"segmenter_sha256": digest, "segmenter": str(shown or segmenter)}
    if threshold is not None:
        record["threshold"] = float(threshold)
    if others:
        record["mixed_with"] = others
    write_json_atomic(Path(masks) / MASKS_RECORD, record)


def warn_masks_disagree(masks: Path, threshold: float) -> None:
    """A WARNING where the record of ``masks`` says its masks come from several segmenters, or from a segmenter tuned
    to another threshold than the crops are cut at (the crops then differ from those the served ensemble cuts)."""
    record = read_masks_record(masks)
    if record is None:
        return
    if record.get("mixed_with"):
        logger.warning("--predicted-masks %s holds masks of %d segmenters (%s): the crops come from different "
                       "segmenters; predict the masks again into an empty folder", masks, 1 + len(record["mixed_with"]),
                       Path(masks) / MASKS_RECORD)
    recorded = record.get("threshold")
    if isinstance(recorded, (int, float)) and abs(float(recorded) - float(threshold)) > 1e-6:
        logger.warning("--predicted-masks %s were written by a segmenter tuned to threshold %g, but the crops are cut at "
                       "--crop-threshold %g: pass --crop-threshold %g to cut them as that segmenter is served", masks,
                       recorded, threshold, recorded)
