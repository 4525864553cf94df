"""Classifier stage entry point: ``python -m training.classifier.stage`` (a PyTorch-only process)."""
from __future__ import annotations

import sys

sys.modules.setdefault("triton", None)

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
from pathlib import Path  # noqa: E402

from ..settings import setting  # noqa: E402
from .run import prepare_data, run_classifier  # noqa: E402
from .schedule import low_res_epochs_for  # noqa: E402
from .train import ClassifierConfig  # noqa: E402

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of a classifier run (shared by ``dermassist train classifier`` and the pipeline stage)."""
    parser.add_argument("--data", type=Path, required=True, help="folder in the HAM10000 / ISIC 2019 / ISIC 2017 layout")
    parser.add_argument("--out", type=Path, default=Path("reports/classifier"), help="where metrics, plots, weights go")
    parser.add_argument("--repository", type=Path, default=None, help="export the trained model into this repository")
    parser.add_argument("--name", default="classifier", help="file prefix of this run's outputs")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 6)")
    parser.add_argument("--low-res-epochs", type=int, default=None, help="first epochs at --low-res px (default 4)")
    parser.add_argument("--low-res", type=int, default=None, help="resolution of the early epochs (default 112)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3)")
    parser.add_argument("--brightness", action="store_true", default=None, help="brightness augmentation")
    parser.add_argument("--full-image", action="store_true", help="train on the whole image instead of lesion crops")
    parser.add_argument("--predicted-masks", type=Path, default=None,
                        help="folder of <image_id>.png 256x256 segmenter masks for images without ground truth")
    parser.add_argument("--pretrained", type=Path, default=None, help="local torchvision resnet18 state_dict")
    parser.add_argument("--seed", type=int, default=None)


def config_from_args(args: argparse.Namespace) -> ClassifierConfig:
    """CLI > DERMASSIST_CLS_* environment > defaults."""
    epochs = setting(args.epochs, "CLS_EPOCHS", 6, int)
    return ClassifierConfig(
        epochs=epochs,
        low_res_epochs=setting(args.low_res_epochs, "CLS_LOW_RES_EPOCHS", low_res_epochs_for(epochs), int),
        low_res=setting(args.low_res, "CLS_LOW_RES", 112, int),
        batch_size=setting(args.batch_size, "CLS_BATCH_SIZE", 32, int),
        learning_rate=setting(args.lr, "CLS_LR", 2e-3, float),
        brightness=setting(args.brightness, "CLS_BRIGHTNESS", False, bool),
        pretrained=args.pretrained,
        seed=setting(args.seed, "SEED", 0, int),
        progress=sys.stderr.isatty(),
    )


def run(args: argparse.Namespace) -> dict:
    """Train (and export when ``--repository`` is given); returns the report."""
    config = config_from_args(args)
    data = prepare_data(args.data, config.seed, args.full_image, args.predicted_masks, progress=config.progress)
    model, report = run_classifier(data, args.out, args.name, config)
    if args.repository is not None:
        from dermassist.export_classifier import export_classifier

        exported = export_classifier(model, args.repository)
        report["export"] = {"torchscript": str(exported.torchscript), "max_abs_diff": exported.max_abs_diff}
    (Path(args.out) / f"{args.name}_metrics.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point of the stage subprocess."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m training.classifier.stage", description=__doc__)
    add_arguments(parser)
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
