"""``dermassist import --keras MODEL.keras --torch RESNET18.pt``: serve your own trained models."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist import``."""
    parser.add_argument("--keras", type=Path, default=None, help="full Keras segmenter (.keras), (N,256,256,3)->(N,256,256,1)")
    parser.add_argument("--torch", type=Path, default=None, help="torchvision resnet18 state_dict (.pt/.pth) with an 8-class fc")
    parser.add_argument("--repository", type=Path, default=None, help="model repository (default: the project's)")


def run(args: argparse.Namespace) -> int:
    """Validate both files first, then export each in its own subprocess through the parity-checked exports."""
    from dermassist.base.repository import SOURCE_REPOSITORY
    from training.errors import ImportModelError
    from training.export.repository import open_repository
    from training.importer import check_file, check_keras_file, run_import

    if args.keras is None and args.torch is None:
        raise ImportModelError("nothing to import: give --keras MODEL.keras and/or --torch RESNET18.pt")
    repository = args.repository or SOURCE_REPOSITORY
    jobs = []
    if args.keras is not None:
        jobs.append(("keras", check_file(args.keras, "Keras segmenter", (".keras",))))
        check_keras_file(args.keras)
    if args.torch is not None:
        jobs.append(("torch", check_file(args.torch, "PyTorch classifier", (".pt", ".pth"))))
    open_repository(repository, ImportModelError)
    from dermassist.base.repository import mark_not_release
    from training.export.steps import reset_for_imported

    for kind, path in jobs:
        logger.info("%s", run_import(kind, path, repository))
        reset_for_imported(repository, kind, f"dermassist import --{kind} {path}: not tuned")
        mark_not_release(repository, f"{kind} {path}")
    if args.torch is not None:
        logger.warning("the imported classifier is served uncalibrated: its probabilities are the network's own "
                       "(temperature 1), REFER uses the contract's default threshold and the out-of-distribution check "
                       "is off (no OOD statistics); measure it with `dermassist evaluate` on labelled images of your "
                       "own before any clinical use, or train a release with `dermassist release`, which tunes all "
                       "three")
    if args.keras is not None:
        logger.warning("the imported segmenter's mask threshold is the default (not tuned on validation)")
    logger.info("`dermassist models` leaves these models in %s (it says so); `--force` replaces them with the release",
                repository)
    return 0
