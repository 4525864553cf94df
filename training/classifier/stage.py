"""Classifier stage entry point: ``python -m training.classifier.stage`` (a PyTorch-only process)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dermassist.base.flags import GivenOnce, Pooled
from dermassist.base.settings import Settings, setting_help, setting_names
from preprocess.contract import DEFAULT_COLOUR_CONSTANCY, DEFAULT_THRESHOLD
from preprocess.crop import CropParams
from preprocess.errors import PreprocessError
from preprocess.triage import TriageParams

from ..child import stage_main
from ..errors import TrainingConfigError, check_setting_range
from ..resume import Checkpointing
from ..run_folder import refuse_file_out
from .calibrate import Tuned, tune
from .checkpoint import check_resumable, checkpoint_path
from .run import ClassifierData, prepare_data, run_classifier, staged_outputs
from .schedule import DEFAULT_REFER_SAFETY
from .train import ClassifierConfig, training_device

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageOptions(Settings):
    """What the stage does around training: how its crops are cut (the segmentation threshold and colour
    balance ``lesion_crop`` then serves) and a factor on the REFER threshold tuned on validation (< 1 leaves
    room for unseen melanomas)."""

    env_prefix = "DERMASSIST_CLS_"
    config_error = TrainingConfigError

    crop_threshold: float = DEFAULT_THRESHOLD
    colour_constancy: float = DEFAULT_COLOUR_CONSTANCY
    refer_safety: float = DEFAULT_REFER_SAFETY

    def __post_init__(self) -> None:
        self.crop()
        check_setting_range(self.refer_safety, setting_names(type(self), "refer_safety"), 0, lo_open=True,
                            meaning="a factor on the REFER threshold tuned on validation; below 1 refers more",
                            default=DEFAULT_REFER_SAFETY)

    def crop(self) -> CropParams:
        """The crop settings the training crops are cut with (and ``lesion_crop`` serves)."""
        try:
            return CropParams(threshold=self.crop_threshold, colour_constancy=self.colour_constancy)
        except PreprocessError as e:
            raise TrainingConfigError(f"--crop-threshold / --colour-constancy: {e}") from e


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of a classifier run (shared by ``dermassist train classifier`` and the pipeline stage), taken only as spelt
    (a prefix such as --epoch for --epochs is refused)."""
    parser.allow_abbrev = False
    cls, opts = ClassifierConfig, StageOptions
    parser.add_argument("--data", type=Path, nargs="+", action=Pooled, required=True, metavar="DIR",
                        help="folder(s) in the ISIC 2018 Task 3 / PH2 / HAM10000 / ISIC 2019 / ISIC 2017 layout, or a "
                             "site's own folder with a labels.csv (training/README.md); each is split on its own and the "
                             "splits are pooled (repeatable: --data A --data B is --data A B)")
    parser.add_argument("--train-only", type=Path, nargs="+", action=Pooled, default=[], metavar="DIR",
                        help="folder(s) with an official Training split (e.g. ISIC 2017 with its Part 3 CSVs) whose "
                             "labelled images only add to the training split")
    parser.add_argument("--out", type=Path, default=Path("reports/classifier"), help="where metrics, plots, weights go")
    parser.add_argument("--repository", type=Path, default=None, help="export the trained model into this repository")
    parser.add_argument("--release", type=Path, action=GivenOnce, default=None,
                        help="write the float16 weights, tuned values and figures into this release folder")
    parser.add_argument("--refer-safety", type=float,
                        help=setting_help(opts, "refer_safety", "multiply the validation REFER threshold by this"))
    parser.add_argument("--name", default="classifier", help="file prefix of this run's outputs")
    parser.add_argument("--retune", action="store_true",
                        help="do not train: re-fit the temperature, OOD statistics, REFER threshold and quality limits "
                             "of the classifier already in --release, on the same splits (its --out split manifest)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the unfinished run in --out under --name (stopped by Ctrl-C or SIGTERM, or failed "
                             "after an epoch ended) from its last finished epoch, given the same flags and data; a finished run "
                             "removes the checkpoint this reads")
    parser.add_argument("--epochs", type=int, help=setting_help(cls, "epochs", "training epochs"))
    parser.add_argument("--low-res-epochs", type=int,
                        help=setting_help(cls, "low_res_epochs",
                                          "first epochs at --low-res px (0 to epochs; unset: at most epochs - 1)"))
    parser.add_argument("--low-res", type=int, help=setting_help(cls, "low_res", "resolution of the early epochs"))
    parser.add_argument("--batch-size", type=int, help=setting_help(cls, "batch_size", "crops per step"))
    parser.add_argument("--lr", dest="learning_rate", type=float, help=setting_help(cls, "learning_rate", "peak learning rate"))
    parser.add_argument("--warmup-epochs", type=int, help=setting_help(cls, "warmup_epochs", "linear warm-up epochs"))
    parser.add_argument("--weight-decay", type=float, help=setting_help(cls, "weight_decay", "AdamW weight decay"))
    parser.add_argument("--label-smoothing", type=float, help=setting_help(cls, "label_smoothing", "label smoothing"))
    parser.add_argument("--balance", type=float, help=setting_help(
        cls, "balance", "class-balanced sampling: 0 as the data comes, 1 every class equally often"))
    parser.add_argument("--mixup", type=float, help=setting_help(cls, "mixup", "mixup alpha, 0 = off"))
    parser.add_argument("--dropout", type=float,
                        help=setting_help(cls, "dropout", "dropout on the pooled features while training"))
    parser.add_argument("--ema", type=float, help=setting_help(cls, "ema", "weight moving-average decay, 0 = off"))
    parser.add_argument("--select-after", type=float,
                        help=setting_help(cls, "select_after", "keep the best epoch after this fraction of the run"))
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                        help=setting_help(cls, "augment", "flips and quarter turns of the served crops only"))
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", default=None,
                        help=setting_help(cls, "bf16", "train in float32 (bfloat16 is used only where the CPU has it natively)"))
    parser.add_argument("--brightness", action="store_true", default=None,
                        help=setting_help(cls, "brightness", "the seed's brightness augmentation"))
    parser.add_argument("--white-balance", type=float, help=setting_help(
        cls, "white_balance", "per-channel gain spread (log scale) of the colour jitter, 0 = off"))
    parser.add_argument("--crop-threshold", type=float, help=setting_help(
        opts, "crop_threshold", "segmentation threshold the crops are cut at: the one lesion_crop serves"))
    parser.add_argument("--colour-constancy", type=float, help=setting_help(
        opts, "colour_constancy", "shades-of-grey norm p that balances each crop's colours (6 is usual), 0 = off"))
    parser.add_argument("--full-image", action="store_true", help="train on the whole image instead of lesion crops")
    parser.add_argument("--predicted-masks", type=Path, action=GivenOnce, default=None,
                        help="folder of <image_id>.png 256x256 segmenter masks for images without ground truth")
    parser.add_argument("--pretrained", type=Path, help=setting_help(cls, "pretrained", "local torchvision resnet18 state_dict"))
    parser.add_argument("--seed", type=int, help=setting_help(cls, "seed", "random seed"))
    parser.add_argument("--device", help=setting_help(cls, "device", "torch device the network trains on (cpu, cuda, cuda:N)"))


def config_from_args(args: argparse.Namespace) -> ClassifierConfig:
    """Flags > DERMASSIST_CLS_* environment > the dataclass defaults (a progress bar only on a terminal)."""
    return ClassifierConfig.resolve({**vars(args), "progress": sys.stderr.isatty()})


def run(args: argparse.Namespace) -> dict:
    """Train (and export when ``--repository`` is given); returns the report."""
    config = config_from_args(args)
    training_device(config.device)  # a GPU this host lacks is refused before the data is read
    refuse_file_out(Path(args.out))  # and an --out that is a file
    options = StageOptions.resolve(vars(args))
    crop = options.crop()
    if args.release is not None:
        _check_release_threshold(Path(args.release), crop.threshold)
    if args.repository is not None and not args.retune:
        if args.full_image:
            raise TrainingConfigError(f"--full-image trains on whole pictures, but the repository {args.repository} "
                                      "serves the classifier the lesion crop its segmenter finds: it would be served "
                                      "other pictures than it learnt; drop --repository (and import nothing), or train "
                                      "on crops (drop --full-image)")
        _check_repository_threshold(Path(args.repository), crop.threshold)
    if args.retune:
        if args.release is None:
            raise TrainingConfigError("--retune needs --release: the release folder whose classifier to re-tune")
        if args.resume:
            raise TrainingConfigError("--resume continues an unfinished training run and --retune trains nothing; pass "
                                      "one of them")
        crop = replace(crop, colour_constancy=_released_colour(Path(args.release)))
    elif args.resume:  # a missing checkpoint, or one of other settings, is refused before the crops are cut
        check_resumable(Checkpointing(checkpoint_path(Path(args.out), args.name), resume=True), config)
    data = prepare_data(args.data, config.seed, args.full_image, args.predicted_masks, progress=config.progress,
                        crop=crop, context=config.augment and not args.retune, train_only=args.train_only)
    if args.retune:
        return retune_release(data, args, options)
    if args.repository is not None:  # before training: the served pipeline classifies crops
        from training.importer import WHOLE_PICTURES_FIX, whole_pictures

        whole = whole_pictures(args.full_image, data.sets["train"].with_mask)
        if whole is not None:
            raise TrainingConfigError(f"the classifier would be trained on whole pictures ({whole}) and exported into "
                                      f"{args.repository}, {WHOLE_PICTURES_FIX}; or drop --repository")
    # every output lands in --out together once the run is done (an interrupted run leaves the earlier one whole)
    with staged_outputs(Path(args.out), args.name) as staging:
        model, report = run_classifier(data, args.out, args.name, config, staging, resume=args.resume)
        tuned = tune(model, data.sets["train"], data.sets["val"], data.sets["test"], staging, options.refer_safety,
                     name=args.name)
        report["tuned"] = tuned.figures
        report["crop_threshold"] = crop.threshold
        report["full_image"] = bool(args.full_image)
        report["colour_constancy"] = crop.colour_constancy
        if args.release is not None:
            write_release_sections(model, tuned, report, args.release)
        if args.repository is not None:
            from dermassist.base.repository import mark_not_release, seal
            from training.export.classifier import export_classifier
            from training.export.repository import open_repository
            from training.export.steps import record_trained_crop_threshold, set_crop_colour, write_step_values

            repository, source = open_repository(args.repository, TrainingConfigError), f"classifier stage {args.out}"
            exported = export_classifier(model, repository, tuned.calibration)
            record_trained_crop_threshold(repository, None if args.full_image else crop.threshold)
            write_step_values(repository, tuned.triage, tuned.quality, tuned.figures, source)
            set_crop_colour(repository, crop.colour_constancy, source)
            mark_not_release(repository, source)
            seal(repository)
            report["export"] = {"torchscript": str(exported.torchscript), "max_abs_diff": exported.max_abs_diff}
        (staging / f"{args.name}_metrics.json").write_text(json.dumps(report, indent=1))
    return report


def write_release_sections(model: torch.nn.Module, tuned: Tuned, report: dict, folder: Path) -> None:
    """The classifier's part of a release: ``classifier.npz`` and the classifier, triage and quality sections."""
    figures = {k: report[k] for k in ("test", "test_by_source", "val_by_source", "best_epoch", "best_val", "dataset",
                                      "splits", "crops_with_mask", "crop_threshold", "precision") if k in report}
    _write_tuned(model, tuned, folder, {"figures": figures, "config": report["config"], "seconds": report["seconds"],
                                        "colour_constancy": report["colour_constancy"]})


def _write_tuned(model: torch.nn.Module, tuned: Tuned, folder: Path, classifier: dict) -> None:
    from ..release import CLASSIFIER_WEIGHTS, save_weights, update_release
    from .weights import OOD_MEANS, OOD_PRECISION, state_arrays

    save_weights(Path(folder) / CLASSIFIER_WEIGHTS, state_arrays(model, tuned.calibration),
                 keep=(OOD_MEANS, OOD_PRECISION))
    update_release(folder, {
        "classifier": {**classifier, "temperature": tuned.calibration.temperature,
                       "ood_scale": tuned.calibration.ood_scale,
                       "figures": {**classifier["figures"], "calibration": tuned.figures}},
        "triage": {"values": tuned.triage.as_dict(), "figures": {"val": tuned.figures["val"]["operating_point"],
                                                                   "test": tuned.figures["test"]["operating_point"]}},
        "quality": {"values": tuned.quality.as_dict(), "figures": tuned.figures["quality"]},
    }, new_weights=True)


def _check_repository_threshold(repository: Path, threshold: float) -> None:
    """The crops a classifier exported into a repository trains on are cut at the threshold its ``lesion_crop`` serves
    (its tuned.json, the contract default without one); a path that is not a model repository is refused first."""
    from dermassist.base.repository import tuned_file
    from preprocess.contract import CROP_MODEL
    from training.export.repository import check_repository
    from training.export.steps import crop_threshold_differs, served_crop_values

    check_repository(repository, TrainingConfigError)
    served = served_crop_values(repository).threshold
    if crop_threshold_differs(threshold, served):
        path = tuned_file(repository, CROP_MODEL)
        where = str(path) if path.is_file() else f"the contract default, {path} being absent"
        raise TrainingConfigError(
            f"--crop-threshold {threshold:g} differs from the threshold {served:g} the segmenter of model repository "
            f"{repository} is served with ({where}): the "
            f"classifier would be served other crops than it trains on; pass --crop-threshold {served:g}, or first export "
            f"the segmenter whose tuned threshold is {threshold:g} into {repository} (`dermassist train segmenter "
            "--repository`)")


def _check_release_threshold(folder: Path, threshold: float) -> None:
    """The crops a release's classifier trains on are cut at the threshold its segmenter is served with."""
    from training.export.steps import crop_threshold_differs

    from ..release import MANIFEST, read_manifest

    if not (Path(folder) / MANIFEST).is_file():
        return  # a new release: the build writes the segmenter first, with this threshold
    served = read_manifest(folder).get("segmenter", {}).get("threshold")
    if served is not None and crop_threshold_differs(threshold, served):
        raise TrainingConfigError(
            f"--crop-threshold {threshold:g} differs from the threshold {float(served):g} the segmenter of release "
            f"{folder} is served with: the classifier would train on other crops than it is served; pass "
            f"--crop-threshold {float(served):g}")


def _released_colour(folder: Path) -> float:
    from ..release import classifier_colour_constancy, read_manifest

    return classifier_colour_constancy(read_manifest(folder))


def retuned_triage(release: Mapping, refit: TriageParams) -> TriageParams:
    """The triage values a re-tune writes: the REFER threshold ``refit`` chose, the release's other triage values as it
    recorded them (a re-tune fits the threshold alone; the code's defaults only where the release records none)."""
    from ..release import recorded_triage

    if "triage" not in release:
        return refit
    return replace(recorded_triage(release), refer_threshold=refit.refer_threshold)


def retune_release(data: ClassifierData, args: argparse.Namespace, options: StageOptions) -> dict:
    """Re-fit what ``tune`` fits for the classifier a release already holds, on the splits it was trained with
    (a changed rule, e.g. the REFER threshold's, reaches a shipped model without retraining it)."""
    from ..release import CLASSIFIER_WEIGHTS, ReleaseError, load_weights, read_manifest
    from ..splits import manifest, same_splits, splits_difference
    from .weights import model_from_arrays

    folder, out = Path(args.release), Path(args.out)
    recorded_path = out / f"{args.name}_split.json"
    try:
        recorded = json.loads(recorded_path.read_text())
    except (OSError, ValueError) as e:
        raise TrainingConfigError(f"--retune reads the split manifest the training wrote, {recorded_path}, but it "
                                  f"cannot be read ({e}); pass the --out and --name of that training run") from e
    if not same_splits(manifest(data.splits), recorded):
        folders = ", ".join(map(str, args.data))
        raise TrainingConfigError(f"the splits of {folders} differ from those recorded in {recorded_path} "
                                  f"({splits_difference(manifest(data.splits), recorded)}): the data or the seed changed "
                                  "since training, so re-tuning would mix in training images")
    release = read_manifest(folder)
    if "classifier" not in release:
        raise ReleaseError(f"release {folder} holds no classifier section to re-tune; train one into it first")
    weights = folder / CLASSIFIER_WEIGHTS
    model = model_from_arrays(load_weights(weights), str(weights))
    before = release.get("triage", {}).get("values", {}).get("refer_threshold")
    tuned = tune(model, data.sets["train"], data.sets["val"], data.sets["test"], out, options.refer_safety,
                 name=args.name)
    tuned = replace(tuned, triage=retuned_triage(release, tuned.triage))
    _write_tuned(model, tuned, folder, release["classifier"])
    logger.info("re-tuned %s: temperature %.4f -> %.4f, REFER threshold %s -> %.4f", folder,
                release["classifier"]["temperature"], tuned.calibration.temperature,
                "none" if before is None else f"{float(before):.4f}", tuned.triage.refer_threshold)
    report = {"tuned": tuned.figures, "retuned_from": {"temperature": release["classifier"]["temperature"],
                                                        "refer_threshold": before}}
    (out / f"{args.name}_retune.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point of the stage subprocess."""
    return stage_main("training.classifier.stage", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
