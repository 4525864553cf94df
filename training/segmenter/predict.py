"""The released segmenter's masks for whole datasets: ``python -m training.segmenter.predict`` (a TensorFlow-only
process). A re-tune of the classifier cuts its crops from these when the build's own masks are gone."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dermassist.base.flags import GivenOnce, Pooled

from ..child import stage_main

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)


def release_segmenter(folder: Path) -> tuple[keras.Model, dict]:
    """The release's UNet (float16 weights widened to float32) and the release's ``segmenter`` section."""
    from ..release import SEGMENTER_WEIGHTS, load_weights, read_release
    from .model import UNetConfig, build_resnet_unet, set_weight_arrays

    section = read_release(folder)["segmenter"]
    model = build_resnet_unet(UNetConfig(depth=int(section["unet"]["depth"]), width=float(section["unet"]["width"])))
    weights = Path(folder) / SEGMENTER_WEIGHTS
    set_weight_arrays(model, load_weights(weights), str(weights))
    return model, section


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of a mask prediction run."""
    parser.add_argument("--release", type=Path, action=GivenOnce, required=True, help="release folder holding segmenter.npz")
    parser.add_argument("--data", type=Path, nargs="+", action=Pooled, required=True, metavar="DIR",
                        help="dataset folder(s) whose every image gets a predicted mask")
    parser.add_argument("--out", type=Path, required=True, help="folder of the <image_id>.png masks")


def run(args: argparse.Namespace) -> int:
    """Write the masks; returns how many."""
    from .train import write_predicted_masks

    model, _ = release_segmenter(args.release)
    return sum(write_predicted_masks(model, data, args.out) for data in args.data)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the prediction subprocess."""
    return stage_main("training.segmenter.predict", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
