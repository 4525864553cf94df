"""``dermassist synth OUT --count N --seed S``: write a synthetic dermoscopy set (ISIC 2018 + HAM10000 layouts)."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist synth``."""
    from training.synth.generator import SynthConfig

    from ..base.settings import setting_help

    parser.add_argument("out", type=Path, help="output folder (gets ham10000/ and isic2018/)")
    parser.add_argument("--count", type=int, help=setting_help(SynthConfig, "count", "number of images"))
    parser.add_argument("--seed", type=int, help=setting_help(SynthConfig, "seed", "random seed"))
    parser.add_argument("--width", type=int, help=setting_help(SynthConfig, "width", "image width, px"))
    parser.add_argument("--height", type=int, help=setting_help(SynthConfig, "height", "image height, px"))
    parser.add_argument("--grid", type=Path, default=Path("reports/synthetic_samples.png"),
                        help="PNG grid of samples per class (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Generate the set and the sample grid."""
    from training.errors import TrainingConfigError
    from training.synth.generator import SynthConfig, generate
    from training.synth.grid import sample_grid

    from ..base.image_files import image_suffix_problem

    config = SynthConfig.resolve(vars(args))
    for what, path in (("out", Path(args.out)), ("--grid's folder", Path(args.grid).parent)):
        if path.exists() and not path.is_dir():
            raise TrainingConfigError(f"synth {what} {path} is a file; expected a folder (new or existing)")
    problem = image_suffix_problem(args.grid)
    if problem is not None:
        raise TrainingConfigError(f"synth --grid {args.grid} {problem}: pass another --grid")
    result = generate(args.out, config)
    grid = sample_grid(args.grid, seed=config.seed)
    logger.info("%d images at %.1f images/s -> %s; sample grid %s", result.images, result.images_per_second, args.out, grid)
    return 0
