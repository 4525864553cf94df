"""Segmenter stage entry point: ``python -m training.segmenter.stage`` (a TensorFlow-only process)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dermassist.base.flags import GivenOnce
from dermassist.base.settings import setting_help

from ..child import stage_main
from ..errors import TrainingConfigError
from ..run_folder import refuse_file_out, staged_outputs
from .model import BLOCKS, UNetConfig, float32_copy
from .train import CHECKPOINT, METRICS, RUN_OUTPUTS, SegmenterConfig, train_segmenter

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of a segmenter run (shared by ``dermassist train segmenter`` and the pipeline stage), taken only as spelt
    (a prefix such as --epoch for --epochs is refused)."""
    parser.allow_abbrev = False
    seg, unet = SegmenterConfig, UNetConfig
    parser.add_argument("--data", type=Path, action=GivenOnce, required=True,
                        help="folder in an ISIC segmentation / PH2 / HAM10000 layout; its validation split is the one reported")
    parser.add_argument("--extra-data", type=Path, action="append", default=[], metavar="DIR",
                        help="another masked dataset whose training split is added (repeatable), e.g. PH2")
    parser.add_argument("--out", type=Path, default=Path("reports/segmenter"), help="where metrics, curves, model go")
    parser.add_argument("--repository", type=Path, default=None, help="export the trained model into this repository")
    parser.add_argument("--release", type=Path, action=GivenOnce, default=None,
                        help="write the float16 weights, tuned threshold and figures into this release folder")
    parser.add_argument("--resume", action="store_true",
                        help="continue the unfinished run in --out (stopped by Ctrl-C, or failed after an epoch ended) "
                             "from its last finished epoch, given the same flags and data; a finished run removes the "
                             "checkpoint this reads")
    parser.add_argument("--depth", type=int, choices=sorted(BLOCKS), help=setting_help(unet, "depth", "ResNet encoder depth"))
    parser.add_argument("--width", type=float, help=setting_help(unet, "width", "channel width multiplier"))
    parser.add_argument("--epochs", type=int, help=setting_help(seg, "epochs", "training epochs"))
    parser.add_argument("--batch-size", type=int, help=setting_help(seg, "batch_size", "images per step"))
    parser.add_argument("--lr", dest="learning_rate", type=float, help=setting_help(seg, "learning_rate", "peak learning rate"))
    parser.add_argument("--warmup-epochs", type=int,
                        help=setting_help(seg, "warmup_epochs", "linear warm-up epochs before the cosine decay"))
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                        help=setting_help(seg, "augment", "flips and quarter turns only (no rotation, scale, stretch or colour)"))
    parser.add_argument("--mixed-precision", action="store_true", default=None,
                        help=setting_help(seg, "mixed_precision",
                                         "train in bfloat16 where the CPU has it natively, else float32 (exports float32)"))
    parser.add_argument("--max-train-images", type=int,
                        help=setting_help(seg, "max_train_images", "cap on training images (0 = all)"))
    parser.add_argument("--brightness", action="store_true", default=None,
                        help=setting_help(seg, "brightness", "brightness/contrast augmentation"))
    parser.add_argument("--encoder-weights", type=Path,
                        help=setting_help(unet, "encoder_weights", "local encoder .weights.h5 to start from"))
    parser.add_argument("--seed", type=int, help=setting_help(seg, "seed", "random seed"))
    parser.add_argument("--predict-masks", type=Path, action="append", default=[], metavar="DATA",
                        help="after training, write predicted masks for every image of this dataset (repeatable)")
    parser.add_argument("--predict-out", type=Path, default=None,
                        help="folder for those masks (default OUT/predicted_masks); "
                             "pass it to the classifier's --predicted-masks")


def config_from_args(args: argparse.Namespace) -> SegmenterConfig:
    """Flags > DERMASSIST_SEG_* environment > the dataclass defaults (Keras prints one line per epoch off a terminal)."""
    return SegmenterConfig.resolve({**vars(args), "verbose": 1 if sys.stdout.isatty() else 2})


def run(args: argparse.Namespace) -> dict:
    """Train (and export when ``--repository`` is given); returns the report. Every output that goes into ``--out``
    (metrics, splits, curves, model, the default predicted masks) is written into a staging folder there and replaces
    the earlier run's together once the run is done: an interrupted or failed run leaves ``--out`` as it was (but for
    the unfinished run's best epoch and resumable checkpoint), never a mix of two runs' files."""
    config = config_from_args(args)
    if args.repository is not None:  # a mistyped --repository is told before the training, not after it
        from training.export.repository import check_repository

        check_repository(args.repository, TrainingConfigError)
    out = Path(args.out)
    refuse_file_out(out, "the segmenter's metrics, curves and model")
    with staged_outputs(out, "segmenter", METRICS, (*RUN_OUTPUTS, CHECKPOINT)) as staging:
        result = train_segmenter(args.data, out, config, extra=args.extra_data, staging=staging, resume=args.resume,
                                 predict_masks=args.predict_masks)  # their images are checked before training
        model, report = float32_copy(result.model, config.unet), result.report
        model.save(str(staging / "segmenter.keras"))
        if result.predict_data:
            from ..masks_record import record_masks
            from .train import write_predicted_masks

            target = args.predict_out or staging / "predicted_masks"
            final = Path(args.predict_out or out / "predicted_masks")  # where the staged masks are once the run is done
            count = sum(write_predicted_masks(model, dataset, target, shown=final) for dataset in result.predict_data)
            record_masks(target, staging / "segmenter.keras", report["threshold"], shown=out / "segmenter.keras",
                         written={f"{s.image_id}.png" for dataset in result.predict_data for s in dataset.samples})
            report["predicted_masks"] = {"folder": str(final), "count": count}
        if args.release is not None:
            write_release_section(model, config, report, args.release)
        if args.repository is not None:
            from dermassist.base.repository import mark_not_release, seal
            from training.export.repository import open_repository
            from training.export.segmenter import export_segmenter
            from training.export.steps import set_crop_threshold

            repository = open_repository(args.repository, TrainingConfigError)
            exported = export_segmenter(model, repository)
            # its own tuned threshold, with the validation figures behind it, not the one of the model it replaced
            set_crop_threshold(repository, report["threshold"], f"segmenter stage {args.out}", {"val": report["val"]})
            mark_not_release(repository, f"segmenter stage {args.out}")
            seal(repository)
            report["export"] = {"savedmodel": str(exported.savedmodel), "max_abs_diff": exported.max_abs_diff}
        (staging / METRICS).write_text(json.dumps(report, indent=1))
    return report


def write_release_section(model: keras.Model, config: SegmenterConfig, report: dict, folder: Path) -> None:
    """The segmenter's part of a release: ``segmenter.npz`` and the ``segmenter`` section of release.json."""
    from preprocess.contract import DEFAULT_MARGIN

    from ..release import SEGMENTER_WEIGHTS, save_weights, update_release
    from .model import weight_arrays

    save_weights(Path(folder) / SEGMENTER_WEIGHTS, weight_arrays(model))
    unet = {"depth": config.unet.depth, "width": config.unet.width}
    figures = {k: report[k] for k in ("val", "val_at_default", "best_epoch", "params", "precision", "dataset") if k in report}
    update_release(folder, {"segmenter": {
        "unet": unet, "threshold": report["threshold"], "margin": DEFAULT_MARGIN,
        "figures": {**figures, **({"test": report["test"]} if "test" in report else {})},
        "config": report["config"], "seconds": report["seconds"],
    }}, new_weights=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the stage subprocess."""
    return stage_main("training.segmenter.stage", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
