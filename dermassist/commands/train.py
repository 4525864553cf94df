"""``dermassist train segmenter|classifier``: train one model on a dataset folder.

Only the chosen model's stage module is imported, so the process holds TensorFlow (segmenter) or
PyTorch (classifier), never both.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
from collections.abc import Sequence

logger = logging.getLogger(__name__)

MODELS = {
    "segmenter": ("training.segmenter.stage", "train the Keras ResNet-UNet segmenter (TensorFlow)"),
    "classifier": ("training.classifier.stage", "train the torchvision ResNet18 classifier (PyTorch)"),
}


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Subcommands ``segmenter`` and ``classifier``; only the one named in ``argv`` loads its flags (and framework)."""
    from ..cli import first_word

    sub = parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    chosen = first_word(argv)
    for name, (module, help_text) in MODELS.items():
        # allow_abbrev=False: a mistyped flag (--epoch) is refused, never taken as the flag it begins (--epochs)
        p = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Train the chosen model in this process and log its headline metrics."""
    stage = importlib.import_module(MODELS[args.model][0])
    report = stage.run(args)
    headline = report.get("val") if args.model == "segmenter" else report.get("test")
    logger.info("%s done: %s", args.model,
                json.dumps({k: round(v, 4) for k, v in headline.items() if isinstance(v, float)}))
    return 0
