"""Segmenter stage entry point: ``python -m training.segmenter.stage`` (a TensorFlow-only process)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..settings import setting
from .model import UNetConfig
from .train import SegmenterConfig, train_segmenter

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of a segmenter run (shared by ``dermassist train segmenter`` and the pipeline stage)."""
    parser.add_argument("--data", type=Path, required=True, help="folder in an ISIC segmentation / HAM10000 layout")
    parser.add_argument("--out", type=Path, default=Path("reports/segmenter"), help="where metrics, curves, model go")
    parser.add_argument("--repository", type=Path, default=None, help="export the trained model into this repository")
    parser.add_argument("--depth", type=int, choices=(18, 34), default=None, help="ResNet encoder depth (default 18)")
    parser.add_argument("--width", type=float, default=None, help="channel width multiplier (default 0.25)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 8)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3)")
    parser.add_argument("--max-train-images", type=int, default=None, help="cap on training images (0 = all)")
    parser.add_argument("--brightness", action="store_true", default=None, help="brightness/contrast augmentation")
    parser.add_argument("--encoder-weights", type=Path, default=None, help="local encoder .weights.h5 to start from")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--predict-masks", type=Path, default=None, metavar="DATA",
                        help="after training, write predicted masks for every image of this dataset")
    parser.add_argument("--predict-out", type=Path, default=None,
                        help="folder for those masks (default OUT/predicted_masks); pass it to the classifier's --predicted-masks")


def config_from_args(args: argparse.Namespace) -> SegmenterConfig:
    """CLI > DERMASSIST_SEG_* environment > defaults."""
    return SegmenterConfig(
        unet=UNetConfig(
            depth=setting(args.depth, "SEG_DEPTH", 18, int),
            width=setting(args.width, "SEG_WIDTH", 0.25, float),
            encoder_weights=args.encoder_weights,
        ),
        epochs=setting(args.epochs, "SEG_EPOCHS", 8, int),
        batch_size=setting(args.batch_size, "SEG_BATCH_SIZE", 16, int),
        learning_rate=setting(args.lr, "SEG_LR", 2e-3, float),
        brightness=setting(args.brightness, "SEG_BRIGHTNESS", False, bool),
        max_train_images=setting(args.max_train_images, "SEG_MAX_TRAIN_IMAGES", 0, int),
        seed=setting(args.seed, "SEED", 0, int),
        verbose=1 if sys.stdout.isatty() else 2,
    )


def run(args: argparse.Namespace) -> dict:
    """Train (and export when ``--repository`` is given); returns the report."""
    result = train_segmenter(args.data, args.out, config_from_args(args))
    model, report = result.model, result.report
    model.save(str(Path(args.out) / "segmenter.keras"))
    if args.predict_masks is not None:
        from .train import write_predicted_masks

        target = args.predict_out or Path(args.out) / "predicted_masks"
        report["predicted_masks"] = {"folder": str(target), "count": write_predicted_masks(model, args.predict_masks, target)}
    if args.repository is not None:
        from dermassist.export_segmenter import export_segmenter

        exported = export_segmenter(model, args.repository)
        report["export"] = {"savedmodel": str(exported.savedmodel), "max_abs_diff": exported.max_abs_diff}
    (Path(args.out) / "segmenter_metrics.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point of the stage subprocess."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m training.segmenter.stage", description=__doc__)
    add_arguments(parser)
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
