"""``dermassist release``: train a release on the real data with its recorded recipe, then prove it through
the served ensemble on its own test splits, the evaluation-only samples and an out-of-distribution corpus,
and write its model card."""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from training.pipeline import Recipe

    from ..evaluation import EvaluationConfig

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist release``."""
    from training.pipeline import BuildConfig

    from ..base.flags import GivenOnce
    from ..base.settings import setting_help

    parser.add_argument("--data", type=Path, action=GivenOnce,
                        help=setting_help(BuildConfig, "data", "folder holding the real sets"))
    parser.add_argument("--out", type=Path, help=setting_help(BuildConfig, "out", "release folder to write (the shipped "
                                                                                   "one is training/release)"))
    parser.add_argument("--runs", type=Path, help=setting_help(BuildConfig, "runs", "stage logs, curves and predicted masks"))
    parser.add_argument("--recipe", type=Path, default=None,
                        help="a release.json whose recorded recipe to reproduce (default: the built-in real-data recipe)")
    parser.add_argument("--force", action="store_true", default=None,
                        help=setting_help(BuildConfig, "force", "retrain stages even when their outputs are current"))
    parser.add_argument("--no-evaluate", dest="evaluate", action="store_false",
                        help="skip the evaluation through the served ensemble and the model card")
    parser.add_argument("--retune", action="store_true",
                        help="do not train: re-fit the tuned values of the classifier in --out on its build's splits "
                             "(crops from the --runs folder's predicted masks; where they are gone the release's segmenter "
                             "predicts them again), then evaluate")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="only evaluate the release already in --out through the ensemble and rewrite its card (its "
                             "training-time figures re-derived from their recorded confusion matrices)")


def run(args: argparse.Namespace) -> int:
    """Build, export to a staged repository, evaluate through an embedded server, write the card."""
    from training.pipeline import BuildConfig, build_release, retune_release
    from training.release import read_release

    overrides = vars(args)
    recipe = chosen_recipe(args)
    if recipe is not None:  # else the config's default: the built-in real-data recipe
        overrides = {**overrides, "recipe": recipe}
    config = BuildConfig.resolve(overrides)
    if args.retune:
        retune_release(config)
    elif not args.evaluate_only:
        build_release(config)
    if args.evaluate or args.evaluate_only:
        evaluate_release(config.out, config.data)
    release = read_release(config.out)
    logger.info("release %s written to %s", release.get("version"), config.out)
    return 0


def chosen_recipe(args: argparse.Namespace) -> Recipe | None:
    """The recipe a run uses: ``--recipe``'s; for ``--retune`` and ``--evaluate-only`` without it, the one the release
    in ``--out`` recorded (not the built-in one: a synthetic release names synthetic folders); else None (built-in)."""
    from training.pipeline import BuildConfig, Recipe
    from training.release import MANIFEST

    from ..base.settings import resolve_values

    if args.recipe is not None:
        return Recipe.from_dict(read_recipe(Path(args.recipe)))
    out = resolve_values(BuildConfig, BuildConfig.env_prefix, {"out": args.out}).get("out", BuildConfig.out)
    recorded = Path(out) / MANIFEST
    if (args.retune or args.evaluate_only) and recorded.is_file():
        return Recipe.from_dict(read_recipe(recorded))
    return None


def read_recipe(path: Path) -> dict:
    """The ``recipe`` object of a release.json (or of a file holding one), or TrainingConfigError naming the file."""
    from training.errors import TrainingConfigError

    try:
        recorded = json.loads(path.read_text())
    except OSError as e:
        raise TrainingConfigError(f"recipe file {path} cannot be read ({e}); pass a release.json, e.g. "
                                  "training/release/release.json") from e
    except json.JSONDecodeError as e:
        raise TrainingConfigError(f"recipe file {path} is not JSON ({e}); pass a release.json") from e
    if not isinstance(recorded, dict) or "recipe" not in recorded:
        raise TrainingConfigError(f"recipe file {path} has no 'recipe' object; pass a release.json, which records one")
    return recorded["recipe"]


# The evaluation-only sets of the shared data (never trained on), evaluated whole where --data holds them.
EVALUATION_ONLY = ("ham10000_sample", "isic2019_sample")
# The name the shipped release's reports give a dataset folder (its report is isic2017_validation).
REPORT_NAMES = {"isic2017_seg_256": "isic2017"}
ROBUSTNESS = "cam_faithfulness and quality_check"


def report_name(folder: str, split: str | None = None) -> str:
    """The report a release's evaluation writes for a dataset folder (and split): ``<folder>_<split>``."""
    base = REPORT_NAMES.get(folder, folder)
    return f"{base}_{split}" if split else base


def release_sets(release: dict, folder: Path, data: Path) -> tuple[dict[str, dict], dict[str, str]]:
    """(sets to evaluate, sets skipped with why) for a release and the ``--data`` folder: the segmenter's validation
    split of its recipe's seg_data, the classifier's test split of each of its cls_data folders (the first one's
    also gets the out-of-distribution corpus), then each evaluation-only sample; a set whose folder or split manifest
    is absent is skipped. Each set's ``EvaluationConfig`` arguments (without ``ood``, ``out`` and ``url``)."""
    recipe = release["recipe"]
    manifests = release.get("data", {}).get("splits", {})
    trained = {recipe["seg_data"], *recipe["seg_extra"], *recipe["cls_data"]}
    candidates: list[tuple[str, str, str | None, str | None]] = [
        (report_name(recipe["seg_data"], "validation"), recipe["seg_data"], "segmenter", "val")]
    candidates += [(report_name(d, "test"), d, "classifier", "test") for d in recipe["cls_data"]]
    candidates += [(report_name(d), d, None, None) for d in EVALUATION_ONLY]
    sets: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for name, dataset, stage, split in candidates:
        if not (data / dataset).is_dir():
            sample = " (an evaluation-only sample of the shared data)" if stage is None else ""
            skipped[name] = f"--data {data} holds no {dataset}/{sample}"
        elif stage is None and dataset in trained:
            skipped[name] = f"the release's recipe trains on {dataset}, so it is no evaluation-only set"
        elif stage is None:
            sets[name] = {"data": data / dataset}
        elif stage not in manifests or not (folder / manifests[stage]).is_file():
            skipped[name] = f"release {folder} records no {stage} split manifest (release.json data.splits.{stage})"
        else:
            sets[name] = {"data": data / dataset, "split_manifest": folder / manifests[stage], "split": split}
    return sets, skipped


def primary_test(release: dict) -> str:
    """The report of the classifier's test split on the recipe's first classification set (OOD and robustness)."""
    return report_name(release["recipe"]["cls_data"][0], "test")


def log_skipped(skipped: dict[str, str]) -> None:
    """One line per skipped check: INFO for an absent evaluation-only sample, WARNING for the rest."""
    for name, why in skipped.items():
        level = logging.INFO if name in EVALUATION_ONLY else logging.WARNING
        logger.log(level, "release evaluation: %s skipped: %s", name, why)


def remove_stale_reports(reports: Path, kept: set[str]) -> None:
    """Remove the report files of each set an earlier evaluation wrote under ``reports`` that this one did not
    evaluate (metrics.json would list it as evaluated); a folder is removed only when nothing else is left in it."""
    from ..evaluation.report_files import clear_report

    for folder in sorted(p.parent for p in reports.glob("*/report.json")):
        if folder.name not in kept:
            clear_report(folder)
            if not any(folder.iterdir()):
                folder.rmdir()
            logger.info("release evaluation: removed the report of %s left by an earlier evaluation (not evaluated now)",
                        folder.name)


def evaluate_release(folder: Path, data: Path) -> dict:
    """Serve the release from a staged repository and evaluate it on the sets ``data`` holds of those its recipe
    names (and the evaluation-only samples); record the figures and the checks skipped, and write the card."""
    from training.metrics import refreshed_figures
    from training.model_card import write_model_card
    from training.ood_corpus import build_ood_corpus
    from training.pipeline import export_release
    from training.release import read_release, update_release

    from ..base.repository import RELEASE_STAMP, name_release, stage_repository
    from ..base.server import embedded_server
    from ..evaluation import EvaluationConfig, evaluate

    folder, data = Path(folder), Path(data)
    release = read_release(folder)
    runs, skipped = release_sets(release, folder, data)
    primary = primary_test(release)
    seg_name = report_name(release["recipe"]["seg_data"], "validation")
    if primary not in runs:
        skipped[ROBUSTNESS] = f"they run on the classifier's test images, and {primary} was skipped"
    log_skipped(skipped)
    reports = folder / "reports"
    checks: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        repository = stage_repository(Path(tmp) / "repository")
        export_release(folder, repository)
        # a throwaway repository: its stamp names the release, which each report's run line then states
        (repository / RELEASE_STAMP).write_text(f"{release.get('name')} version {release.get('version')}\n")
        name_release(repository, release.get("name"), release.get("version"))
        if primary in runs:
            ood = Path(tmp) / "ood"
            build_ood_corpus(ood)
            runs[primary] = {**runs[primary], "ood": ood}
        results = {}
        with embedded_server(repository) as server:
            url = server.config.grpc_address
            for name, kwargs in runs.items():
                results[name] = evaluate(EvaluationConfig(name=name, out=reports, url=url, repository=repository,
                                                          **kwargs))
            if primary in runs:
                checks = robustness_checks(url, repository, EvaluationConfig(out=reports, **runs[primary]),
                                           Path(tmp) / "degraded")
    remove_stale_reports(reports, set(results))
    served = {
        "segmentation_val_report": seg_name,  # the set segmentation_val was measured on (the card's label)
        "test_report": primary,  # the set of classification_test, triage_test, ood_test and the robustness checks
        "segmentation_val": results.get(seg_name, {}).get("segmentation"),
        "classification_test": _without_reliability(results.get(primary, {}).get("classification")),
        "triage_test": results.get(primary, {}).get("triage"),
        "ood_test": results.get(primary, {}).get("ood"),
        **checks,
        "reports": {name: {k: _without_reliability(v) if k == "classification" else v for k, v in r.items()
                           if k in ("images", "segmentation", "classification", "triage", "ood", "refused")}
                    for name, r in results.items()},
        **({"skipped": skipped} if skipped else {}),
    }
    # the training-time figures are re-derived from their confusion matrices, so a release recorded before a metric's
    # definition changed (the macro average) reads as today's without retraining
    classifier = {**release["classifier"], "figures": refreshed_figures(release["classifier"].get("figures", {}))}
    update_release(folder, {"evaluation": served, "classifier": classifier})
    write_model_card(folder)
    return served


def robustness_checks(url: str, repository: Path, test: EvaluationConfig, scratch: Path) -> dict:
    """On the classifier's test images through the service: the CAM deletion test and the quality gate on
    heavily blurred, dark and overexposed copies."""
    from training.model_card import QUALITY_CHECK_IMAGES

    from ..base.repository import classifier_artifact
    from ..evaluation.selection import select_samples
    from ..evaluation.service import analyse, quality_check
    from ..faithfulness import deletion_test, torchscript_scorer

    _, samples = select_samples(test)
    paths = [s.image_path for s in samples]
    answers = analyse(url, paths, test.timeout_s, with_crop=True)
    crops = np.stack([np.asarray(r.crop) for r in answers.results])
    cams = np.stack([np.asarray(r.cam) for r in answers.results])
    faithfulness = deletion_test(crops, cams, torchscript_scorer(classifier_artifact(repository)))
    quality = quality_check(url, paths[:QUALITY_CHECK_IMAGES], scratch, test.timeout_s)
    logger.info("CAM beats random erasure on %.1f%% of %d test crops; degraded copies not assessable: %s",
                100 * faithfulness.share_cam_wins, len(crops), {k: v["not_assessable"] for k, v in quality.items()})
    return {"cam_faithfulness": faithfulness.as_dict(), "quality_check": quality}


def _without_reliability(figures: dict | None) -> dict | None:
    return None if figures is None else {k: v for k, v in figures.items() if k != "reliability"}
