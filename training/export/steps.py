"""Tuned values of the Python-backend steps, written as ``tuned.json`` into each step's version folder."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from dermassist.base.errors import RepositoryError
from dermassist.base.repository import CALIBRATION_FILENAME, classifier_artifact, tuned_file
from preprocess.contract import CLASS_CODES, CROP_MODEL, PREPARE_MODEL, TRIAGE_MODEL
from preprocess.crop import CropParams
from preprocess.errors import PreprocessError
from preprocess.params import read_tuned, resolve_params, tuned_artifact
from preprocess.quality import QualityLimits
from preprocess.triage import OOD_UNCHECKED, TriageParams

from ..errors import ExportError
from ..release import write_json_atomic

# Two crop thresholds are the same when they differ by less than this (they travel as JSON floats).
THRESHOLD_TOLERANCE = 1e-9
# ``lesion_crop``'s values come from two models (threshold and margin: the segmenter's; colour balance: the
# classifier's), so its tuned.json names each value's origin under this key beside the summary in "source".
SOURCES_KEY = "sources"
DEFAULT_ORIGIN = "contract default"
# The classes an exported classifier has no training images of, in its calibration.json (beside model.pt): a fact of
# that model version, which the demo page is told (it shows no percentage for them). Absent: not known, none claimed.
UNTRAINED_KEY = "untrained_classes"


def write_step_file(repository: Path, model: str, values: Mapping, figures: Mapping, source: str,
                    origins: Mapping[str, str] | None = None) -> Path:
    """Write one step's ``tuned.json`` (values the step reads in ``initialize``, figures people read; ``origins``:
    where each value came from, for a step whose values come from more than one model)."""
    path = tuned_file(repository, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {} if origins is None else {SOURCES_KEY: dict(origins)}
    path.write_text(tuned_artifact(values, figures, source, **extra))
    return path


def crop_threshold_differs(trained: float, served: float) -> bool:
    """Whether a classifier trained on crops cut at mask threshold ``trained`` would be served crops cut at ``served``
    (the one comparison every check of a classifier against its segmenter makes)."""
    return abs(float(trained) - float(served)) > THRESHOLD_TOLERANCE


def served_crop_values(repository: Path) -> CropParams:
    """``lesion_crop``'s values as a repository serves them from its tuned.json (the contract's defaults where it has
    none), by the step's own rule; an ExportError naming the file when it cannot be read or names no setting."""
    path = tuned_file(repository, CROP_MODEL)
    try:
        return resolve_params(CropParams, {}, read_tuned(str(path.parent)), CROP_MODEL)
    except PreprocessError as e:
        raise ExportError(f"{path} cannot be used: {e}; mend it, or export the segmenter again") from e


def crop_origins(repository: Path) -> dict[str, str]:
    """Where each of ``lesion_crop``'s values in a repository came from: its ``sources``, else (a file written before
    they were recorded) its one ``source`` for every value, else the contract's defaults."""
    path = tuned_file(repository, CROP_MODEL)
    written = json.loads(path.read_text()) if path.is_file() else {}
    recorded = written.get(SOURCES_KEY)
    recorded = recorded if isinstance(recorded, dict) else {}
    values, fallback = written.get("values", {}), str(written.get("source", DEFAULT_ORIGIN))
    return {name: str(recorded.get(name, fallback if name in values else DEFAULT_ORIGIN)) for name in CropParams().as_dict()}


def origins_summary(origins: Mapping[str, str]) -> str:
    """One line naming where the values came from: the origin alone when all share it, else each origin's values."""
    grouped: dict[str, list[str]] = {}
    for name, origin in origins.items():
        grouped.setdefault(origin, []).append(name)
    if len(grouped) == 1:
        return next(iter(grouped))
    return "; ".join(f"{', '.join(names)}: {origin}" for origin, names in grouped.items())


def _write_crop(repository: Path, params: CropParams, figures: Mapping, origins: Mapping[str, str]) -> Path:
    return write_step_file(repository, CROP_MODEL, params.as_dict(), figures, origins_summary(origins), origins)


def write_crop_values(repository: Path, params: CropParams, figures: Mapping, source: str) -> Path:
    """``lesion_crop``'s tuned segmentation threshold and margin (the segmenter's) and the colour balance its
    classifier was trained with, all from one ``source``."""
    return _write_crop(repository, params, figures, {name: source for name in params.as_dict()})


def set_crop_colour(repository: Path, colour_constancy: float, source: str) -> Path:
    """Record a newly exported classifier's colour balance in ``lesion_crop``'s tuned values, keeping the
    segmenter's threshold, figures and their origin already there (defaults where the repository has none)."""
    path = tuned_file(repository, CROP_MODEL)
    params = replace(served_crop_values(repository), colour_constancy=colour_constancy)
    figures = json.loads(path.read_text()).get("figures", {}) if path.is_file() else {}
    return _write_crop(repository, params, figures, {**crop_origins(repository), "colour_constancy": source})


def set_crop_threshold(repository: Path, threshold: float, source: str, figures: Mapping | None = None) -> Path:
    """Record a newly exported segmenter's mask threshold in ``lesion_crop``'s tuned values, keeping the margin and the
    classifier's colour balance there with their origins; ``figures`` are the new segmenter's validation figures at that
    threshold (the ones there described the replaced segmenter, so they go)."""
    params = replace(served_crop_values(repository), threshold=threshold)
    return _write_crop(repository, params, dict(figures or {}), {**crop_origins(repository), "threshold": source})


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


def untrained_classes(counts: Mapping[str, int] | None) -> tuple[str, ...] | None:
    """The class codes a classifier has no training images of (contract order), from its training images per class
    (``training.model_card.training_class_counts``); None where those counts are not known: then nothing is claimed."""
    if counts is None:
        return None
    return tuple(code for code in CLASS_CODES if not counts.get(code, 0))


def calibration_file(repository: Path) -> Path:
    """The exported classifier's ``calibration.json`` (beside its TorchScript)."""
    return classifier_artifact(repository).parent / CALIBRATION_FILENAME


def record_untrained_classes(repository: Path, codes: Sequence[str] | None) -> Path:
    """Record in the exported classifier's calibration.json which classes it has no training images of (``codes``;
    None: not known, and any earlier record goes, so nothing is claimed for this classifier)."""
    path = calibration_file(repository)
    try:
        written = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ExportError(f"{path} cannot be read ({e}); expected the calibration.json the classifier's export writes: "
                          "export the classifier again") from e
    written.pop(UNTRAINED_KEY, None)
    if codes is not None:
        unknown = [code for code in codes if code not in CLASS_CODES]
        if unknown:
            raise ExportError(f"untrained classes {', '.join(map(repr, unknown))} are not class codes; expected some of "
                              f"{', '.join(CLASS_CODES)}: fix the training counts the export was given")
        written[UNTRAINED_KEY] = [code for code in CLASS_CODES if code in codes]
    write_json_atomic(path, written)  # an interrupted write leaves the old file or the new
    return path


def served_untrained_classes(repository: Path) -> tuple[str, ...] | None:
    """The classes the repository's classifier has no training images of, as its export recorded them (contract order);
    None where it recorded none (a classifier imported or trained outside a release, or exported before they were
    recorded, or no classifier yet). A RepositoryError naming the file, what it holds and the fix when it is unusable."""
    path = calibration_file(repository)
    recorded = _calibration_record(repository).get(UNTRAINED_KEY)
    if recorded is None:
        return None
    if not isinstance(recorded, list) or not all(isinstance(code, str) and code in CLASS_CODES for code in recorded):
        raise RepositoryError(f"{path}: {UNTRAINED_KEY} must be a list of class codes (some of {', '.join(CLASS_CODES)}), "
                              f"got {recorded!r}; export the release again (`dermassist models --force`)")
    return tuple(code for code in CLASS_CODES if code in recorded)


#: The mask threshold of the crops the exported classifier trained on, in its calibration.json: a segmenter imported
#: later is checked against it (a classifier served other crops than it learnt answers other pictures).
TRAINED_CROP_KEY = "trained_crop_threshold"


def record_trained_crop_threshold(repository: Path, threshold: float | None) -> Path:
    """Record in the exported classifier's calibration.json the mask threshold of the crops it trained on (None: not
    known, and any earlier record goes)."""
    path = calibration_file(repository)
    written = _calibration_record(repository)
    if not path.is_file():
        raise ExportError(f"{path} does not exist; expected the calibration.json the classifier's export writes: export "
                          "the classifier first")
    written.pop(TRAINED_CROP_KEY, None)
    if threshold is not None:
        written[TRAINED_CROP_KEY] = float(threshold)
    write_json_atomic(path, written)  # an interrupted write leaves the old file or the new
    return path


def served_classifier_crop_threshold(repository: Path) -> float | None:
    """The mask threshold of the crops the repository's classifier trained on, as its export recorded it (None: no
    classifier, or not recorded: a classifier imported without its run's metrics, or exported before it was)."""
    value = _calibration_record(repository).get(TRAINED_CROP_KEY)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise RepositoryError(f"{calibration_file(repository)}: {TRAINED_CROP_KEY} must be a number in (0, 1), got "
                              f"{value!r}; export the classifier again")
    return float(value)


def served_temperature(repository: Path) -> float | None:
    """The temperature the repository's classifier divides its logits by, as its export recorded it (None: no
    classifier, or none recorded). A RepositoryError naming the file and the fix when it is unusable."""
    temperature = _calibration_record(repository).get("temperature")
    if temperature is None:
        return None
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 < temperature < float("inf"):
        raise RepositoryError(f"{calibration_file(repository)}: temperature must be a positive number, got "
                              f"{temperature!r}; export the release again (`dermassist models --force`)")
    return float(temperature)


def _calibration_record(repository: Path) -> dict:
    """The exported classifier's calibration.json ({} where there is none)."""
    path = calibration_file(repository)
    if not path.is_file():
        return {}
    try:
        written = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RepositoryError(f"{path} cannot be read ({e}); expected the JSON the classifier's export writes: export "
                              "the release again (`dermassist models --force`)") from e
    return written if isinstance(written, dict) else {}
