"""``dermassist import --keras MODEL.keras --torch RESNET18.pt``: serve your own trained models."""
from __future__ import annotations

import argparse
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from training.errors import ImportModelError

from ..base.paths import folder_problem
from ..base.repository import SOURCE_REPOSITORY, classifier_artifact, segmenter_artifact
from ..base.settings import Settings, setting_help, setting_names

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportConfig(Settings):
    """Where ``dermassist import`` (and ``export``) puts the models (``resolve``: flags > DERMASSIST_IMPORT_* >
    defaults); the repository is checked when it is opened (``open_repository``)."""

    env_prefix = "DERMASSIST_IMPORT_"
    config_error = ImportModelError

    repository: Path = SOURCE_REPOSITORY

    def __post_init__(self) -> None:
        object.__setattr__(self, "repository", Path(self.repository))
        problem = folder_problem(self.repository)
        if problem is not None:
            raise ImportModelError(f"{setting_names(type(self), 'repository')} {self.repository} {problem}; expected a "
                                   "model repository folder, or a path where nothing is yet to make a new one there: "
                                   "pass another path")


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist import`` (--repository falls back to DERMASSIST_IMPORT_REPOSITORY, then the default)."""
    parser.add_argument("--keras", type=Path, default=None, help="full Keras segmenter (.keras), (N,256,256,3)->(N,256,256,1)")
    parser.add_argument("--torch", type=Path, default=None, help="torchvision resnet18 state_dict (.pt/.pth) with an 8-class fc")
    parser.add_argument("--repository", type=Path, help=setting_help(ImportConfig, "repository", "model repository"))


def _export(jobs: Sequence[tuple[str, Path]], repository: Path, tuned: float | None,
            crops: tuple[float, float] | None, args: argparse.Namespace) -> None:
    """Export every file into ``repository`` as one change (``restored_on_failure``: a refused second file leaves the
    first unserved too) with the values that travel with them: the segmenter's tuned mask threshold, the classifier's
    trained crops."""
    from dermassist.base.repository import file_sha256, mark_not_release, seal
    from training.export.repository import restored_on_failure
    from training.export.steps import record_trained_crop_threshold, reset_for_imported, set_crop_colour, set_crop_threshold
    from training.importer import run_import

    with restored_on_failure(repository, ImportModelError):
        for kind, path in jobs:
            logger.info("%s", run_import(kind, path, repository))
            reset_for_imported(repository, kind, f"dermassist import --{kind} {path.resolve()}: not tuned")
            if kind == "torch":
                record_trained_crop_threshold(repository, None if crops is None else crops[0])
            # which file it was (two files of one name differ); its name only: answers carry it to every client, and a
            # full path names a user's home folder (the tuned-values notes, which stay on the server, keep it)
            digest = file_sha256(path)[:16]
            mark_not_release(repository, f"{kind} {path.name} (sha256:{digest})")
            logger.info("%s: %s, sha256:%s", kind, path.resolve(), digest)
        if tuned is not None:
            set_crop_threshold(repository, tuned,
                               f"dermassist import --keras {Path(args.keras).resolve()}: tuned on validation by its run")
        if crops is not None and crops[1]:
            set_crop_colour(repository, crops[1],
                            f"dermassist import --torch {Path(args.torch).resolve()}: the colour balance it trained on")
        seal(repository)  # the last act: serve checks the files against it


def run(args: argparse.Namespace) -> int:
    """Check both files, then export each in its own subprocess through the parity-checked exports; if either export is
    refused, the repository is put back as it was."""
    from training.export.repository import check_repository, empty_folder, is_new, open_repository
    from training.importer import check_file, check_keras_file, unfinished_run_problem

    if args.keras is None and args.torch is None:
        raise ImportModelError("nothing to import: give --keras MODEL.keras and/or --torch RESNET18.pt")
    repository = ImportConfig.resolve(vars(args)).repository
    jobs = []
    if args.keras is not None:
        jobs.append(("keras", check_file(args.keras, "Keras segmenter", (".keras",))))
        check_keras_file(args.keras)
    if args.torch is not None:
        jobs.append(("torch", check_file(args.torch, "PyTorch classifier", (".pt", ".pth"))))
    unfinished = [p for p in (unfinished_run_problem(path) for _, path in jobs) if p is not None]
    if unfinished:
        raise ImportModelError("; ".join(unfinished))
    check_repository(repository, ImportModelError)  # made (open_repository) only once the pair is found servable
    from preprocess.crop import CropParams
    from training.export.steps import crop_threshold_differs, served_classifier_crop_threshold, served_crop_values
    from training.importer import trained_crops, tuned_mask_threshold

    tuned = tuned_mask_threshold(args.keras) if args.keras is not None else None
    served = (tuned if tuned is not None else CropParams().threshold) if args.keras is not None else \
        served_crop_values(repository).threshold
    crops = trained_crops(args.torch) if args.torch is not None else None
    if crops is not None and crop_threshold_differs(crops[0], served):  # refused before anything is replaced
        raise ImportModelError(
            f"the classifier {args.torch} was trained on crops cut at mask threshold {crops[0]:g} (its run's metrics "
            f"beside it), but its segmenter would be served at {served:g}: it would be served other crops than it "
            "learnt; import the segmenter of the same run with it (--keras, its segmenter_metrics.json beside it), or "
            f"train the classifier with --crop-threshold {served:g}")
    kept = served_classifier_crop_threshold(repository) if args.torch is None else None
    made, existed = is_new(repository), repository.exists()
    open_repository(repository, ImportModelError)
    try:
        _export(jobs, repository, tuned, crops, args)
    except BaseException:
        if made:  # a repository this import made holds nothing worth keeping: it goes as it came (an empty folder)
            try:
                if existed:
                    empty_folder(repository)
                else:
                    shutil.rmtree(repository)
            except OSError as e:  # the refusal is what the operator must read: this is said beside it
                logger.warning("model repository %s, made by this import, could not be removed (%s): remove it",
                               repository, e)
            else:
                logger.info("model repository %s, made by this import, removed", repository)
        raise
    missing = [m for m, artifact in (("segmenter", segmenter_artifact(repository)),
                                     ("classifier", classifier_artifact(repository))) if not artifact.exists()]
    if missing:
        logger.warning("model repository %s has no %s yet, so it cannot be served: import one there (--%s), or put the "
                       "release's there first (`dermassist models --repository %s`) and import yours over it",
                       repository, " or ".join(missing), "keras" if "segmenter" in missing else "torch", repository)
    if kept is not None and crop_threshold_differs(kept, served):  # a segmenter alone, under the classifier served
        # a step of the site route (the segmenter first, then `train classifier --repository` at its threshold), so
        # told loudly rather than refused: until the classifier is replaced, its answers are on crops it never saw
        logger.warning("the classifier %s serves was trained on crops cut at mask threshold %g (its calibration.json), "
                       "but the imported segmenter is served at %g: until it is replaced its answers are on other crops "
                       "than it learnt, so do not use them; train its successor at that threshold into this repository "
                       "(`dermassist train classifier --crop-threshold %g --repository %s`), or import one with --torch",
                       repository, kept, served, served, repository)
    if args.torch is None and kept is None and classifier_artifact(repository).is_file():
        logger.warning("the classifier %s serves records no mask threshold its crops were cut at: check it was trained "
                       "at %g, the imported segmenter's, or import a classifier trained there with it (--torch)",
                       repository, served)
    if tuned is not None:
        logger.info("the imported segmenter is served at the mask threshold its run tuned on validation, %g", tuned)
    elif args.keras is not None:
        logger.warning("the imported segmenter's mask threshold is the default (not tuned on validation: no "
                       "segmenter_metrics.json beside %s)", args.keras)
    if args.torch is not None:
        logger.warning("the imported classifier is served uncalibrated: its probabilities are the network's own "
                       "(temperature 1), REFER uses the contract's default threshold and the out-of-distribution check "
                       "is off (no OOD statistics); measure it with `dermassist evaluate` on labelled images of your "
                       "own before any clinical use, or export it with its tuned values from its training run "
                       "(`dermassist train classifier --repository`), which tunes all three")
    logger.info("`dermassist models` leaves these models in %s (it says so); `--force` replaces them with the release",
                repository)
    return 0
