"""``dermassist experiments``: the seed's experiment table on real data (segmenter augmentation, crop vs full image)."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from training.errors import TrainingConfigError
from training.experiments import ExperimentSchedule, run_experiments

from ..base.flags import GivenOnce
from ..base.paths import SHARED_DATA, folder_problem
from ..base.settings import Settings, setting_help, setting_names

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentsConfig(Settings):
    """Where ``dermassist experiments`` reads the real sets and writes its runs (``resolve``: flags >
    DERMASSIST_EXPERIMENTS_* > defaults; the schedule is training.experiments.ExperimentSchedule)."""

    env_prefix = "DERMASSIST_EXPERIMENTS_"
    config_error = TrainingConfigError

    data: Path = SHARED_DATA
    out: Path = Path("data/runs/experiments")  # relative to the working folder

    def __post_init__(self) -> None:
        cls = type(self)
        object.__setattr__(self, "data", Path(self.data))
        object.__setattr__(self, "out", Path(self.out))
        if not self.data.is_dir():
            found = "is a file" if self.data.exists() else "does not exist"
            raise TrainingConfigError(f"{setting_names(cls, 'data')} {self.data} {found}; expected the folder holding "
                                      f"the real sets (the shared ones are {SHARED_DATA}): pass that folder")
        problem = folder_problem(self.out)
        if problem is not None:
            raise TrainingConfigError(f"{setting_names(cls, 'out')} {self.out} {problem}; expected a folder for the "
                                      "runs and the table (new or existing): pass another path")


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist experiments`` (each falls back to its DERMASSIST_EXPERIMENTS_* variable, then the default)."""
    e, s = ExperimentsConfig, ExperimentSchedule
    parser.add_argument("--data", type=Path, action=GivenOnce, help=setting_help(e, "data", "folder holding the real sets"))
    parser.add_argument("--out", type=Path, help=setting_help(e, "out", "runs, logs, experiments.md / .json"))
    parser.add_argument("--seg-epochs", type=int, help=setting_help(s, "seg_epochs", "segmenter epochs per run"))
    parser.add_argument("--cls-epochs", type=int, help=setting_help(s, "cls_epochs", "classifier epochs per run"))

def run(args: argparse.Namespace) -> int:
    """Train the five variants (each framework in its own subprocess) and write the table."""
    config = ExperimentsConfig.resolve(vars(args))
    run_experiments(config.out, config.data, schedule=ExperimentSchedule.resolve(vars(args)))
    return 0
