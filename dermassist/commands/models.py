"""``dermassist models``: synthetic data -> segmenter -> classifier -> export -> reports/latest/metrics.json."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist models`` (all optional; defaults fit 15 minutes on two cores)."""
    parser.add_argument("--repository", type=Path, default=None, help="model repository to export into")
    parser.add_argument("--count", type=int, default=None, help="synthetic images (env DERMASSIST_SYNTH_COUNT)")
    parser.add_argument("--seed", type=int, default=None, help="seed (env DERMASSIST_SEED)")
    parser.add_argument("--seg-epochs", type=int, default=None, help="segmenter epochs (env DERMASSIST_SEG_EPOCHS)")
    parser.add_argument("--cls-epochs", type=int, default=None, help="classifier epochs (env DERMASSIST_CLS_EPOCHS)")
    parser.add_argument("--force", action="store_true", help="rebuild every stage even if its outputs are current")


def run(args: argparse.Namespace) -> int:
    """Build (or reuse) the served models and write the metrics report."""
    from training.pipeline import PipelineConfig, build_models, with_overrides
    from training.settings import setting

    base = PipelineConfig()
    config = with_overrides(
        base,
        repository=args.repository,
        count=setting(args.count, "SYNTH_COUNT", base.count, int),
        seed=setting(args.seed, "SEED", base.seed, int),
        seg_epochs=setting(args.seg_epochs, "SEG_EPOCHS", base.seg_epochs, int),
        cls_epochs=setting(args.cls_epochs, "CLS_EPOCHS", base.cls_epochs, int),
        force=args.force or None,
    )
    metrics = build_models(config)
    seg, cls = metrics["segmentation"], metrics["classification"]["test"]
    logger.info("segmentation val dice %.3f jaccard %.3f thresholded jaccard %.3f (threshold %.2f)",
                seg["val"]["dice"], seg["val"]["jaccard"], seg["val"]["thresholded_jaccard"], seg["threshold"])
    logger.info("classification test accuracy %.3f macro F1 %.3f balanced accuracy %.3f",
                cls["accuracy"], cls["macro_f1"], cls["balanced_accuracy"])
    return 0
