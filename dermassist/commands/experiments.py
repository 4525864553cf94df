"""``dermassist experiments``: the seed's experiment table on real data (segmenter augmentation, crop vs full image)."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist experiments``."""
    from training.experiments import ExperimentSchedule as schedule

    from ..base.settings import setting_help

    parser.add_argument("--data", type=Path, default=None, help="folder holding the real sets (default ../shared/data)")
    parser.add_argument("--out", type=Path, default=Path("data/runs/experiments"),
                        help="runs, logs, experiments.md / .json (default %(default)s)")
    parser.add_argument("--seg-epochs", type=int, help=setting_help(schedule, "seg_epochs", "segmenter epochs per run"))
    parser.add_argument("--cls-epochs", type=int, help=setting_help(schedule, "cls_epochs", "classifier epochs per run"))


def run(args: argparse.Namespace) -> int:
    """Train the five variants (each framework in its own subprocess) and write the table."""
    from training.experiments import ExperimentSchedule, run_experiments

    from ..base.paths import SHARED_DATA

    run_experiments(args.out, args.data or SHARED_DATA, schedule=ExperimentSchedule.resolve(vars(args)))
    return 0
