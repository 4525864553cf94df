"""``dermassist experiments``: the seed's experiment table (augmentation and crop vs full image) on the synthetic set."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist experiments``."""
    parser.add_argument("--data", type=Path, default=None,
                        help="HAM10000-layout folder (default data/synthetic/ham10000, generated if missing)")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="writes experiments.md / .json here")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 3)")
    parser.add_argument("--seed", type=int, default=None)


def run(args: argparse.Namespace) -> int:
    """Make sure the data exist, then train the three variants (PyTorch only in this process)."""
    import sys
    from dataclasses import replace

    from dermassist.repository import PROJECT_ROOT
    from training.classifier.schedule import low_res_epochs_for
    from training.settings import setting
    from training.synth.generator import HAM_DIR, SynthConfig, generate

    seed = setting(args.seed, "SEED", 0, int)
    data = args.data
    if data is None:
        root = PROJECT_ROOT / "data" / "synthetic"
        data = root / HAM_DIR
        if not (data / "HAM10000_metadata.csv").is_file():
            generate(root, SynthConfig(seed=seed))
    from training.experiments import EXPERIMENT_CONFIG, run_experiments

    epochs = setting(args.epochs, "EXP_EPOCHS", EXPERIMENT_CONFIG.epochs, int)
    config = replace(EXPERIMENT_CONFIG, epochs=epochs, low_res_epochs=low_res_epochs_for(epochs, EXPERIMENT_CONFIG.low_res_epochs),
                     seed=seed, progress=sys.stderr.isatty())
    run_experiments(data, args.out, config)
    return 0
