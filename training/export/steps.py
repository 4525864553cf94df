"""Tuned values of the Python-backend steps, written as ``tuned.json`` into each step's version folder."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from dermassist.base.repository import tuned_file
from preprocess.contract import CROP_MODEL, PREPARE_MODEL, TRIAGE_MODEL
from preprocess.crop import CropParams
from preprocess.params import read_tuned, tuned_artifact
from preprocess.quality import QualityLimits
from preprocess.triage import OOD_UNCHECKED, TriageParams


def write_step_file(repository: Path, model: str, values: Mapping, figures: Mapping, source: str) -> Path:
    """Write one step's ``tuned.json`` (values the step reads in ``initialize``, figures people read)."""
    path = tuned_file(repository, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tuned_artifact(values, figures, source))
    return path


def write_crop_values(repository: Path, params: CropParams, figures: Mapping, source: str) -> Path:
    """``lesion_crop``'s tuned segmentation threshold and margin (the segmenter's) and the colour balance its
    classifier was trained with."""
    return write_step_file(repository, CROP_MODEL, params.as_dict(), figures, source)


def set_crop_colour(repository: Path, colour_constancy: float, source: str) -> Path:
    """Record a newly exported classifier's colour balance in ``lesion_crop``'s tuned values, keeping the
    segmenter's threshold and figures already there (defaults where the repository has none)."""
    path = tuned_file(repository, CROP_MODEL)
    params = replace(CropParams(**read_tuned(str(path.parent))), colour_constancy=colour_constancy)
    figures = json.loads(path.read_text()).get("figures", {}) if path.is_file() else {}
    return write_crop_values(repository, params, figures, source)


def set_crop_threshold(repository: Path, threshold: float, source: str) -> Path:
    """Record a newly exported segmenter's mask threshold in ``lesion_crop``'s tuned values, keeping the margin and the
    classifier's colour balance there; the figures, which described the replaced segmenter's threshold, go."""
    params = replace(CropParams(**read_tuned(str(tuned_file(repository, CROP_MODEL).parent))), threshold=threshold)
    return write_crop_values(repository, params, {}, source)


def write_step_values(repository: Path, triage: TriageParams, quality: QualityLimits, figures: Mapping,
                      source: str) -> list[Path]:
    """``triage``'s operating point and ``prepare``'s quality limits."""
    return [
        write_step_file(repository, TRIAGE_MODEL, triage.as_dict(),
                        {"val": figures["val"]["operating_point"], "test": figures["test"]["operating_point"]}, source),
        write_step_file(repository, PREPARE_MODEL, quality.as_dict(), figures["quality"], source),
    ]


def reset_for_imported(repository: Path, kind: str, source: str) -> list[Path]:
    """After ``dermassist import``: the tuned values that belonged to the replaced model go back to the contract's
    defaults, so nothing tuned for another model is served with this one. A classifier (``torch``): REFER at the
    default threshold, the OOD check off (no OOD statistics), the crop in the camera's colours. A segmenter
    (``keras``): the crop's default mask threshold. ``prepare``'s quality limits describe images, not a model."""
    if kind == "torch":
        return [write_step_file(repository, TRIAGE_MODEL, TriageParams(ood_limit=OOD_UNCHECKED).as_dict(), {}, source),
                set_crop_colour(repository, 0.0, source)]
    return [set_crop_threshold(repository, CropParams().threshold, source)]
