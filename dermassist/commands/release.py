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
    from ..evaluation import EvaluationConfig

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist release``."""
    from training.pipeline import BuildConfig

    from ..base.settings import setting_help

    parser.add_argument("--data", type=Path, help=setting_help(BuildConfig, "data", "folder holding the real sets"))
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
                        help="only evaluate the release already in --out through the ensemble and rewrite its card")


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


def chosen_recipe(args: argparse.Namespace):
    """The recipe a run uses: ``--recipe``'s; for ``--retune`` and ``--evaluate-only`` without it, the one the release
    in ``--out`` recorded (not the built-in one: a synthetic release names synthetic folders); else None (built-in)."""
    from training.pipeline import BuildConfig, Recipe

    from ..base.settings import resolve_values

    if args.recipe is not None:
        return Recipe.from_dict(read_recipe(Path(args.recipe)))
    out = resolve_values(BuildConfig, BuildConfig.env_prefix, {"out": args.out}).get("out", BuildConfig.out)
    recorded = Path(out) / "release.json"
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


def evaluate_release(folder: Path, data: Path) -> dict:
    """Serve the release from a staged repository and evaluate every report it ships; record the figures."""
    from training.model_card import write_model_card
    from training.ood_corpus import build_ood_corpus
    from training.pipeline import export_release
    from training.release import read_release, update_release

    from ..base.repository import stage_repository
    from ..base.server import embedded_server
    from ..evaluation import EvaluationConfig, evaluate

    folder, data = Path(folder), Path(data)
    release = read_release(folder)
    cls_split = folder / release["data"]["splits"]["classifier"]
    seg_split = folder / release["data"]["splits"]["segmenter"]
    reports = folder / "reports"
    with tempfile.TemporaryDirectory() as tmp:
        repository = stage_repository(Path(tmp) / "repository")
        export_release(folder, repository)
        ood = Path(tmp) / "ood"
        build_ood_corpus(ood)
        runs = {
            "isic2017_validation": dict(data=data / release["recipe"]["seg_data"], split_manifest=seg_split, split="val"),
            "isic2018_task3_test": dict(data=data / "isic2018_task3", split_manifest=cls_split, split="test", ood=ood),
            "ph2_test": dict(data=data / "ph2", split_manifest=cls_split, split="test"),
            "ham10000_sample": dict(data=data / "ham10000_sample"),
            "isic2019_sample": dict(data=data / "isic2019_sample"),
        }
        results = {}
        with embedded_server(repository) as server:
            url = server.config.grpc_address
            for name, kwargs in runs.items():
                if Path(kwargs["data"]).is_dir():
                    results[name] = evaluate(EvaluationConfig(name=name, out=reports, url=url, **kwargs))
            checks = robustness_checks(url, repository, EvaluationConfig(out=reports, **runs["isic2018_task3_test"]),
                                       Path(tmp) / "degraded")
    served = {
        "segmentation_val": results.get("isic2017_validation", {}).get("segmentation"),
        "classification_test": _without_reliability(results.get("isic2018_task3_test", {}).get("classification")),
        "triage_test": results.get("isic2018_task3_test", {}).get("triage"),
        "ood_test": results.get("isic2018_task3_test", {}).get("ood"),
        **checks,
        "reports": {name: {k: _without_reliability(v) if k == "classification" else v for k, v in r.items()
                           if k in ("images", "segmentation", "classification", "triage", "ood", "refused")}
                    for name, r in results.items()},
    }
    update_release(folder, {"evaluation": served})
    write_model_card(folder)
    return served


def robustness_checks(url: str, repository: Path, test: EvaluationConfig, scratch: Path) -> dict:
    """On the classifier's test images through the service: the CAM deletion test and the quality gate on
    heavily blurred, dark and overexposed copies."""
    from ..base.repository import classifier_artifact
    from ..evaluation import analyse, quality_check, select_samples
    from ..faithfulness import deletion_test, torchscript_scorer

    _, samples = select_samples(test)
    paths = [s.image_path for s in samples]
    answers = analyse(url, paths, test.timeout_s, with_crop=True)
    crops = np.stack([np.asarray(r.crop) for r in answers.results])
    cams = np.stack([np.asarray(r.cam) for r in answers.results])
    faithfulness = deletion_test(crops, cams, torchscript_scorer(classifier_artifact(repository)))
    quality = quality_check(url, paths[:40], scratch, test.timeout_s)
    logger.info("CAM beats random erasure on %.1f%% of %d test crops; degraded copies not assessable: %s",
                100 * faithfulness.share_cam_wins, len(crops), {k: v["not_assessable"] for k, v in quality.items()})
    return {"cam_faithfulness": faithfulness.as_dict(), "quality_check": quality}


def _without_reliability(figures: dict | None) -> dict | None:
    return None if figures is None else {k: v for k, v in figures.items() if k != "reliability"}
