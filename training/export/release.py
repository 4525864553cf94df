"""Export a release folder into a model repository: ``python -m training.export.release segmenter|classifier
RELEASE REPOSITORY`` (one framework per process). Weights are widened from float16, each export is
parity-checked, and the tuned values are written as the steps' ``tuned.json`` (the classes the classifier has no
training images of: in its ``calibration.json``)."""
from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dermassist.base.logs import configure_logging

from ..child import child_main

if TYPE_CHECKING:
    from preprocess.crop import CropParams

logger = logging.getLogger(__name__)

# The keys of a release's segmenter section that ``lesion_crop`` serves (its colour balance is the classifier's).
SEGMENTER_CROP_KEYS = ("threshold", "margin")


def check_release_pair(folder: Path, release: Mapping) -> None:
    """Raise ReleaseError when a release's classifier was trained on crops cut at another mask threshold than its
    segmenter is served with: the two halves of an interrupted ``dermassist release`` (a new segmenter, the old
    classifier). A release whose classifier recorded no crop threshold is not checked."""
    from ..release import ReleaseError
    from .steps import crop_threshold_differs

    trained = release.get("classifier", {}).get("figures", {}).get("crop_threshold")
    served = release.get("segmenter", {}).get("threshold")
    if trained is None or served is None:
        logger.debug("release %s records no classifier crop threshold: its pair is not checked", folder)
        return
    if crop_threshold_differs(trained, served):
        raise ReleaseError(
            f"release {folder} is half-built: its classifier was trained on crops cut at mask threshold {float(trained):g}, "
            f"but its segmenter is served at {float(served):g}, so the classifier would see crops it never saw (an "
            "interrupted `dermassist release`?); run `dermassist release` again with the same --out, --data and --recipe to "
            "finish it (without --force it reuses the new segmenter and trains the classifier at its threshold); "
            "not exported")


def crop_values(folder: Path, release: Mapping) -> CropParams:
    """The ``lesion_crop`` values a release records: its segmenter's tuned threshold and margin with its classifier's
    colour balance, each present, a finite number and valid, or ReleaseError naming release.json, the key and the fix."""
    from preprocess.crop import CropParams

    from ..release import MANIFEST, ReleaseError, classifier_colour_constancy, recorded_values

    section = release.get("segmenter", {})
    missing = [key for key in SEGMENTER_CROP_KEYS if key not in section]
    if missing:
        raise ReleaseError(f"segmenter in {Path(folder) / MANIFEST} lacks {', '.join(missing)} (expected the tuned "
                           f"{' and '.join(SEGMENTER_CROP_KEYS)} a build records): restore release.json from git or "
                           "rebuild the release")
    values = {key: section[key] for key in SEGMENTER_CROP_KEYS}
    return recorded_values(CropParams, {**values, "colour_constancy": classifier_colour_constancy(release)}, "segmenter")


def export_segmenter_release(folder: Path, repository: Path) -> str:
    """The release's UNet as the served SavedModel, and its tuned threshold for ``lesion_crop``."""
    from ..release import read_release

    release = read_release(folder)
    check_release_pair(folder, release)  # before TensorFlow loads: a half-built release is refused in a moment
    params = crop_values(folder, release)  # so is one whose crop values are missing or mistyped
    from ..segmenter.predict import release_segmenter
    from .segmenter import export_segmenter
    from .steps import write_crop_values

    model, section = release_segmenter(folder)
    done = export_segmenter(model, repository)
    write_crop_values(repository, params, {"val": section["figures"]["val"]}, _source(release))
    return f"segmenter -> {done.savedmodel} (parity {done.max_abs_diff:.1e}), crop threshold {params.threshold:.2f}"


def untrained_of(release: Mapping) -> tuple[str, ...] | None:
    """The classes a release's classifier has no training images of, from the training counts its figures record
    (None where they record none: nothing is claimed then)."""
    from ..model_card import training_class_counts
    from .steps import untrained_classes

    return untrained_classes(training_class_counts(release["classifier"].get("figures", {})))


def export_classifier_release(folder: Path, repository: Path) -> str:
    """The release's ResNet18 (with temperature, OOD statistics and CAM) as the served TorchScript with the classes it
    has no training images of beside it (``steps.UNTRAINED_KEY``), and the tuned values of ``triage`` and
    ``prepare``."""
    from preprocess.contract import PREPARE_MODEL, TRIAGE_MODEL
    from preprocess.quality import QualityLimits

    from ..release import CLASSIFIER_WEIGHTS, load_weights, read_release, recorded_triage, recorded_values

    release = read_release(folder)
    check_release_pair(folder, release)  # before PyTorch loads
    from ..classifier.weights import OOD_MEANS, OOD_PRECISION, model_from_arrays
    from .classifier import ClassifierCalibration, export_classifier
    from .steps import record_trained_crop_threshold, record_untrained_classes, write_step_file

    untrained = untrained_of(release)  # before PyTorch loads too
    path = Path(folder) / CLASSIFIER_WEIGHTS
    arrays = load_weights(path)
    section = release["classifier"]
    calibration = ClassifierCalibration(float(section["temperature"]), arrays[OOD_MEANS], arrays[OOD_PRECISION],
                                        float(section["ood_scale"]), section["figures"].get("calibration", {}))
    done = export_classifier(model_from_arrays(arrays, str(path)), repository, calibration)
    record_untrained_classes(repository, untrained)
    trained = section["figures"].get("crop_threshold", release["segmenter"].get("threshold"))  # check_release_pair: one
    record_trained_crop_threshold(repository, None if trained is None else float(trained))
    triage = recorded_triage(release)
    quality = recorded_values(QualityLimits, release["quality"]["values"], "quality.values")
    write_step_file(repository, TRIAGE_MODEL, triage.as_dict(), release["triage"]["figures"], _source(release))
    write_step_file(repository, PREPARE_MODEL, quality.as_dict(), release["quality"]["figures"], _source(release))
    return (f"classifier -> {done.torchscript} (parity {done.max_abs_diff:.1e}, T {calibration.temperature:.3f}), "
            f"REFER threshold {triage.refer_threshold:.3f}, {_untrained_text(untrained)}")


def _untrained_text(untrained: tuple[str, ...] | None) -> str:
    if untrained is None:
        return "its training images per class not recorded (no class is marked not learnt)"
    return f"no training images of {', '.join(untrained)}" if untrained else "training images of every class"


def _source(release: dict) -> str:
    return f"release {release.get('version', '?')}"


def main(argv: list[str] | None = None) -> int:
    """Subprocess entry (see ``training.child.run_child``)."""
    configure_logging(level=logging.WARNING)
    kind, folder, repository = (argv if argv is not None else sys.argv[1:])[:3]
    exporter = {"segmenter": export_segmenter_release, "classifier": export_classifier_release}[kind]
    return child_main(lambda: exporter(Path(folder), Path(repository)))


if __name__ == "__main__":
    sys.exit(main())
