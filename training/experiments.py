"""The seed project's experiment table on the synthetic set: Baseline vs Brightness-augmented, Crop vs Full image.

Runs the classifier three times (PyTorch only): crops without augmentation (the baseline, also
the "Crop" row), crops with brightness augmentation, and whole images without augmentation.
"""
from __future__ import annotations

import sys

sys.modules.setdefault("triton", None)

import json  # noqa: E402
import logging  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

from .classifier.run import prepare_data, run_classifier  # noqa: E402
from .classifier.train import ClassifierConfig  # noqa: E402

logger = logging.getLogger(__name__)

COLUMNS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")
EXPERIMENT_CONFIG = ClassifierConfig(epochs=3, low_res_epochs=2, low_res=112)


def run_experiments(data: Path, out_dir: Path, config: ClassifierConfig = EXPERIMENT_CONFIG) -> dict:
    """Train the three variants on the same lesion-grouped split; write experiments.md and .json."""
    out_dir = Path(out_dir)
    runs_dir = out_dir / "experiments"
    crops = prepare_data(data, config.seed, full_image=False, progress=config.progress)
    full = prepare_data(data, config.seed, full_image=True, progress=config.progress)
    variants = {
        "baseline": (crops, config),
        "brightness": (crops, replace(config, brightness=True)),
        "full_image": (full, config),
    }
    results = {}
    for name, (data_set, cfg) in variants.items():
        logger.info("experiment %s", name)
        _, report = run_classifier(data_set, runs_dir, name, cfg)
        results[name] = {k: report["test"][k] for k in (*COLUMNS, "balanced_accuracy")}
        results[name]["seconds"] = report["seconds"]
    table = {
        "schedule": {"epochs": config.epochs, "low_res_epochs": config.low_res_epochs, "low_res": config.low_res,
                     "seed": config.seed},
        "data": str(data),
        "test_images": int(len(crops.sets["test"].labels)),
        "augmentation": {"Baseline": results["baseline"], "Brightness-augmented": results["brightness"]},
        "input": {"Crop": results["baseline"], "Full image": results["full_image"]},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "experiments.json").write_text(json.dumps(table, indent=1))
    (out_dir / "experiments.md").write_text(render_markdown(table))
    logger.info("experiment table -> %s", out_dir / "experiments.md")
    return table


def render_markdown(table: dict) -> str:
    """The two comparison tables as markdown."""
    lines = [
        "# DermAssist experiments (synthetic set)",
        "",
        f"ResNet18 from scratch, {table['schedule']['epochs']} epochs ({table['schedule']['low_res_epochs']} at "
        f"{table['schedule']['low_res']} px, the rest at 224 px), seed {table['schedule']['seed']}, "
        f"{table['test_images']} lesion-grouped test images from `{table['data']}`.",
        "",
    ]
    for title, key in (("Augmentation", "augmentation"), ("Input", "input")):
        lines += [f"## {title}", "", "| run | accuracy | macro precision | macro recall | macro F1 |", "|---|---|---|---|---|"]
        for name, row in table[key].items():
            lines.append(f"| {name} | {row['accuracy'] * 100:.2f}% | {row['macro_precision']:.3f} | "
                         f"{row['macro_recall']:.3f} | {row['macro_f1']:.3f} |")
        lines.append("")
    lines.append("Seed project reference (real HAM10000): baseline 82.10% / 0.70 / 0.59 / 0.61; "
                 "brightness-augmented 82.17% / 0.67 / 0.59 / 0.62.")
    return "\n".join(lines) + "\n"
