"""``dermassist synth OUT --count N --seed S``: write a synthetic dermoscopy set (ISIC 2018 + HAM10000 layouts)."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist synth``."""
    parser.add_argument("out", type=Path, help="output folder (gets ham10000/ and isic2018/)")
    parser.add_argument("--count", type=int, default=None, help="number of images (env DERMASSIST_SYNTH_COUNT, default 1600)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (env DERMASSIST_SEED, default 0)")
    parser.add_argument("--width", type=int, default=600)
    parser.add_argument("--height", type=int, default=450)
    parser.add_argument("--grid", type=Path, default=Path("reports/synthetic_samples.png"),
                        help="PNG grid of samples per class (default reports/synthetic_samples.png)")


def run(args: argparse.Namespace) -> int:
    """Generate the set and the sample grid."""
    from training.settings import setting
    from training.synth.generator import SynthConfig, generate
    from training.synth.grid import sample_grid

    config = SynthConfig(
        count=setting(args.count, "SYNTH_COUNT", 1600, int),
        seed=setting(args.seed, "SEED", 0, int),
        width=args.width,
        height=args.height,
    )
    result = generate(args.out, config)
    grid = sample_grid(args.grid, seed=config.seed)
    logger.info("%d images at %.1f images/s -> %s; sample grid %s", result.images, result.images_per_second, args.out, grid)
    return 0
