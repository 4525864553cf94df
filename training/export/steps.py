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
from preprocess.triage import TriageParams


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


def write_step_values(repository: Path, triage: TriageParams, quality: QualityLimits, figures: Mapping,
                      source: str) -> list[Path]:
    """``triage``'s operating point and ``prepare``'s quality limits."""
    return [
        write_step_file(repository, TRIAGE_MODEL, triage.as_dict(),
                        {"val": figures["val"]["operating_point"], "test": figures["test"]["operating_point"]}, source),
        write_step_file(repository, PREPARE_MODEL, quality.as_dict(), figures["quality"], source),
    ]
