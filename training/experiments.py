"""The seed project's experiment table on real data: a baseline vs a brightness-augmented segmenter (each
feeding its own crops to the classifier), and lesion crops vs the full image for the classifier.

Every variant runs the release recipe with a shorter schedule (the table compares variants, it does not
reproduce the release), each stage in its own subprocess; figures are on the held-out test split.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dermassist.base.paths import SHARED_DATA
from dermassist.base.settings import Settings, setting_names, variable_name

from .classifier.schedule import low_res_epochs_for
from .errors import TrainingConfigError
from .pipeline import REAL_RECIPE, Recipe, run_stage
from .release import recipe_flag

logger = logging.getLogger(__name__)

COLUMNS = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "balanced_accuracy")
SEED_FIGURES = {
    "Baseline": {"accuracy": 0.8210, "macro_precision": 0.70, "macro_recall": 0.59, "macro_f1": 0.61},
    "Brightness-augmented": {"accuracy": 0.8217, "macro_precision": 0.67, "macro_recall": 0.59, "macro_f1": 0.62},
}
PRIMARY = "isic2018_task3"
# The schedule's settings `dermassist experiments` has a flag for; the others are set by their variable only.
FLAGGED = ("seg_epochs", "cls_epochs")


@dataclass(frozen=True)
class ExperimentSchedule(Settings):
    """Shorter schedules than the release's, so five trainings fit a working session (``resolve``: flags >
    DERMASSIST_EXPERIMENTS_* > defaults).

    ``cls_ema`` replaces the recipe's weight-averaging decay: 0.998 averages over about 500 steps, longer
    than a short run itself, so its averaged weights would still remember the untrained network.
    """

    env_prefix = "DERMASSIST_EXPERIMENTS_"
    config_error = TrainingConfigError

    seg_epochs: int = 30
    cls_epochs: int = 40
    cls_low_res_epochs: int = 34  # resolve(): at most cls_epochs - 1 unless given
    cls_ema: float = 0.99

    @classmethod
    def derived_defaults(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Unless given, the classifier's low-resolution epochs leave at least one epoch at the served size."""
        if given.get("cls_low_res_epochs") is None:
            epochs = given.get("cls_epochs", cls.cls_epochs)
            given = {**given, "cls_low_res_epochs": low_res_epochs_for(epochs, cls.cls_low_res_epochs)}
        return given

    def __post_init__(self) -> None:
        # The bounds the stages these values are passed to check (SegmenterConfig, ClassifierConfig), here before
        # the first training starts rather than in the classifier stage after the segmenter has trained twice.
        for name in ("seg_epochs", "cls_epochs"):
            if getattr(self, name) < 1:
                raise TrainingConfigError(f"experiment schedule {self._names(name)} must be >= 1, got {getattr(self, name)}; "
                                          "pass a positive number of epochs")
        if not 0 <= self.cls_low_res_epochs <= self.cls_epochs:
            raise TrainingConfigError(
                f"experiment schedule {self._names('cls_low_res_epochs')} must lie in [0, {self.cls_epochs}] (the classifier's "
                f"epochs), got {self.cls_low_res_epochs}; lower it, or unset it to leave one epoch at the served size")
        if not 0 <= self.cls_ema < 1:
            raise TrainingConfigError(f"experiment schedule {self._names('cls_ema')} must lie in [0, 1) (a weight averaging "
                                      f"decay, 0 = off), got {self.cls_ema}; pass e.g. 0.99")

    @classmethod
    def _names(cls, name: str) -> str:
        """How an operator sets the field ``name``: its flag and variable, or its variable where there is no flag."""
        return setting_names(cls, name) if name in FLAGGED else variable_name(cls, name)


def _override(args: tuple[str, ...], **flags: str) -> list[str]:
    """Recipe args with some ``--flag value`` pairs replaced."""
    out, skip = [], False
    names = {f"--{k.replace('_', '-')}" for k in flags}
    for a in args:
        if skip:
            skip = False
            continue
        if a in names:
            skip = True
            continue
        out.append(a)
    for k, v in flags.items():
        out += [f"--{k.replace('_', '-')}", v]
    return out


def check_warmup(schedule: ExperimentSchedule, recipe: Recipe) -> None:
    """Refuse a schedule shorter than its recipe's warm-up, before any training: the stage would refuse it only
    when it starts (the classifier's after the segmenter has trained twice)."""
    for name, args in (("seg_epochs", recipe.seg_args), ("cls_epochs", recipe.cls_args)):
        warmup = recipe_flag(args, "--warmup-epochs")
        if warmup is not None and int(warmup) >= getattr(schedule, name):
            raise TrainingConfigError(
                f"experiment schedule {ExperimentSchedule._names(name)} is {getattr(schedule, name)}, but the recipe "
                f"warms up for {warmup} epochs (--warmup-epochs); give more than {warmup} epochs")


def run_experiments(out: Path, data: Path = SHARED_DATA, recipe: Recipe = REAL_RECIPE,
                    schedule: ExperimentSchedule = ExperimentSchedule()) -> dict:
    """Train the segmenter twice and the classifier three times; write experiments.json and experiments.md."""
    out, data = Path(out), Path(data)
    check_warmup(schedule, recipe)
    seg_args = _override(recipe.seg_args, epochs=str(schedule.seg_epochs))
    cls_args = _override(recipe.cls_args, epochs=str(schedule.cls_epochs),
                         low_res_epochs=str(schedule.cls_low_res_epochs), ema=str(schedule.cls_ema))
    rows: dict[str, dict] = {}
    for name, extra in (("baseline", []), ("brightness", ["--brightness"])):
        seg_out, masks = out / f"segmenter_{name}", out / f"masks_{name}"
        run_stage("training.segmenter.stage", [
            "--data", str(data / recipe.seg_data), *sum((["--extra-data", str(data / d)] for d in recipe.seg_extra), []),
            "--out", str(seg_out), "--predict-out", str(masks),
            *sum((["--predict-masks", str(data / d)] for d in recipe.cls_data), []), *seg_args, *extra,
        ], out / f"segmenter_{name}.log")
        seg = json.loads((seg_out / "segmenter_metrics.json").read_text())
        rows[name] = {"segmentation_val": seg["val"], "threshold": seg["threshold"],
                      "classification": _classify(out, f"crop_{name}", data, recipe, cls_args, masks, seg["threshold"])}
    rows["full_image"] = {"classification": _classify(out, "full_image", data, recipe, cls_args, None, None)}
    table = {"schedule": schedule.__dict__, "recipe": {"seg_args": seg_args, "cls_args": cls_args}, "rows": rows}
    (out / "experiments.json").write_text(json.dumps(table, indent=1))
    (out / "experiments.md").write_text(render_markdown(table))
    logger.info("experiment table -> %s", out / "experiments.md")
    return table


def _classify(out: Path, name: str, data: Path, recipe: Recipe, cls_args: list[str], masks: Path | None,
              threshold: float | None) -> dict:
    args = ["--data", *(str(data / d) for d in recipe.cls_data), "--out", str(out / name), "--name", name, *cls_args]
    args += ["--full-image"] if masks is None else ["--predicted-masks", str(masks), "--crop-threshold", str(threshold)]
    run_stage("training.classifier.stage", args, out / f"{name}.log")
    report = json.loads((out / name / f"{name}_metrics.json").read_text())
    return report["test_by_source"][PRIMARY]


def _cells(figures: dict) -> str:
    return " | ".join("n/a" if figures.get(k) is None else
                      (f"{100 * figures[k]:.2f}%" if k == "accuracy" else f"{figures[k]:.3f}") for k in COLUMNS)


def render_markdown(table: dict) -> str:
    """The table side by side with the seed project's figures, and what differs between them."""
    rows, s = table["rows"], table["schedule"]
    head = "| run | segmentation val Jaccard | accuracy | macro precision | macro recall | macro F1 | balanced accuracy |"
    lines = [
        "# The seed's experiments on real data", "",
        f"ResNet18 from scratch on ISIC 2018 Task 3 + PH2 training crops, {s['cls_epochs']} epochs "
        f"({s['cls_low_res_epochs']} at low resolution, weight averaging decay {s.get('cls_ema', 'as released')}); "
        f"segmenter {s['seg_epochs']} epochs. Figures on the "
        "held-out ISIC 2018 Task 3 test split (159 images, 7 classes).", "",
        "## Segmenter augmentation (each segmenter's own crops feed the same classifier recipe)", "",
        head, "|---|---|---|---|---|---|---|",
    ]
    for label, key in (("Baseline", "baseline"), ("Brightness-augmented", "brightness")):
        r = rows[key]
        lines.append(f"| {label} (this project) | {r['segmentation_val']['jaccard']:.3f} | {_cells(r['classification'])} |")
        lines.append(f"| {label} (seed project) | n/a | {_cells(SEED_FIGURES[label])} |")
    lines += ["", "## Classifier input", "", head, "|---|---|---|---|---|---|---|",
              f"| Crop (baseline segmenter) | {rows['baseline']['segmentation_val']['jaccard']:.3f} | "
              f"{_cells(rows['baseline']['classification'])} |",
              f"| Full image | n/a | {_cells(rows['full_image']['classification'])} |", "",
              "The seed trained on about 10,000 HAM10000 images starting from ImageNet weights; this project has about "
              "880 training images and no pretrained weights on these machines, so its accuracy sits lower and its "
              "rare-class recall is noisier (4-5 test images for AK, DF and VASC). Accuracy also depends on the class "
              "mix: the seed optimised accuracy on a 67%-nevus test set, this recipe balanced accuracy.", ""]
    return "\n".join(lines)
