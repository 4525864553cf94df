"""``dermassist train segmenter|classifier``: train one model on a dataset folder (one framework per process)."""
from __future__ import annotations

import argparse
import json
import logging

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Subcommands ``segmenter`` (Keras ResNet-UNet) and ``classifier`` (torchvision ResNet18)."""
    from training.classifier import stage as cls_stage
    from training.segmenter import stage as seg_stage

    sub = parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    seg_stage.add_arguments(sub.add_parser("segmenter", help="train the Keras ResNet-UNet segmenter"))
    cls_stage.add_arguments(sub.add_parser("classifier", help="train the torchvision ResNet18 classifier"))


def run(args: argparse.Namespace) -> int:
    """Train the chosen model in this process and log its headline metrics."""
    if args.model == "segmenter":
        from training.segmenter import stage
    else:
        from training.classifier import stage
    report = stage.run(args)
    headline = report.get("val") if args.model == "segmenter" else report.get("test")
    logger.info("%s done: %s", args.model, json.dumps({k: v for k, v in headline.items() if not isinstance(v, (dict, list))}))
    return 0
