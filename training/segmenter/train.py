"""Train the ResNet-UNet, keep the best epoch and tune the threshold on validation, report metrics (TensorFlow only).

Validation figures use the served post-processing (threshold, then the largest component, as
``lesion_crop`` does), so the reported Jaccard is the one the ensemble's MASK gets.
"""
from __future__ import annotations

import json
import logging
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dermassist.base.atomic import write_atomic
from dermassist.base.cpu import precision_name, use_bfloat16
from dermassist.base.image_files import write_image
from dermassist.base.settings import Settings, env_name, flag_name, setting_names
from preprocess.contract import DEFAULT_THRESHOLD
from preprocess.crop import lesion_mask

from ..errors import EmptyDatasetError, ResumeError, StageError, TrainingConfigError, check_setting_range
from ..images import INVERTED_BORDER_SHARE, empty_masks, inverted_masks, load_segmentation_arrays
from ..metrics import segmentation_metrics, tune_threshold
from ..plots import plot_curves
from ..progress import ProgressLog, eta_text
from ..readers import read_dataset
from ..records import Dataset, Sample
from ..release import write_json_atomic
from ..resume import (
    RESUME_HINT,
    SEGMENTER_CHECKPOINT,
    Checkpointing,
    array_digest,
    check_fingerprint,
    image_digests,
    named_image,
    run_fingerprint,
)
from ..run_folder import refuse_file_out
from ..signals import Terminated, sigterm_ignored, stop_on_sigterm
from ..splits import MIN_LESIONS_TO_SPLIT, SplitConfig, split_samples, write_manifest
from .model import UNetConfig, round_to_float16

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

logger = logging.getLogger(__name__)

SELECTION_THRESHOLD = 0.5
#: What a run writes into its --out folder (the stage adds the model and, by default, the predicted masks).
RUN_OUTPUTS = ("segmenter_metrics.json", "segmenter_split.json", "segmenter_curves.png", "segmenter.keras",
               "predicted_masks", "segmenter_interrupted.keras", "segmenter_interrupted.json")
#: The file that marks a finished run (written last).
METRICS = "segmenter_metrics.json"
#: Where a run stopped by Ctrl-C or SIGTERM keeps its best epoch, and the JSON that marks it unfinished: not a finished run's
#: names, so nothing that reads a run folder (the release build, ``import --keras OUT/segmenter.keras``) takes it for one.
INTERRUPTED_MODEL, INTERRUPTED_NOTE = "segmenter_interrupted.keras", "segmenter_interrupted.json"
#: The resumable checkpoint a run keeps in its --out as each epoch ends (``--resume`` continues from it); a finished
#: run removes it.
CHECKPOINT = SEGMENTER_CHECKPOINT


@dataclass(frozen=True)
class SegmenterConfig(Settings):
    """Everything one segmenter run needs; validated on construction (``resolve``: flags > DERMASSIST_SEG_* > defaults)."""

    env_prefix = "DERMASSIST_SEG_"
    config_error = TrainingConfigError

    unet: UNetConfig = field(default_factory=UNetConfig, metadata=flag_name(None))  # its fields are flags of their own
    epochs: int = 8
    batch_size: int = 16
    learning_rate: float = field(default=2e-3, metadata=env_name("DERMASSIST_SEG_LR") | flag_name("--lr"))
    warmup_epochs: int = 1
    augment: bool = field(default=True, metadata=flag_name("--no-augment"))
    brightness: bool = False
    mixed_precision: bool = False
    max_train_images: int = 0
    seed: int = field(default=0, metadata=env_name("DERMASSIST_SEED"))
    verbose: int = field(default=1, metadata=flag_name(None))  # the stage sets it: per-batch lines on a terminal

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise TrainingConfigError(f"epochs and batch size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise TrainingConfigError(f"warm-up epochs must lie in [0, epochs), got {self.warmup_epochs} of {self.epochs}; "
                                          "pass --warmup-epochs 0 for a run this short")
        check_setting_range(self.learning_rate, setting_names(type(self), "learning_rate"), 0, 1, lo_open=True,
                            hi_open=True, meaning="the peak learning rate",
                            default=next(f.default for f in fields(self) if f.name == "learning_rate"))
        if self.max_train_images < 0:
            raise TrainingConfigError(f"max train images must be >= 0 (0 = all), got {self.max_train_images}")


@dataclass(frozen=True)
class SegmenterRun:
    """A trained model and its report."""

    model: object
    report: dict
    predict_data: tuple[Dataset, ...] = ()  # the --predict-masks datasets, read (and their images checked) before training


@dataclass(frozen=True)
class SegmentationSets:
    """Training images from every source, the primary source's validation split and each source's test split."""

    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    tests: dict[str, tuple[Sample, ...]]
    datasets: tuple[Dataset, ...]


def segmentation_splits(dataset: Dataset, seed: int) -> dict[str, tuple[Sample, ...]]:
    """The dataset's own Training/Validation(/Test) folders, else a grouped seeded split of masked samples."""
    masked = tuple(s for s in dataset.samples if s.mask_path is not None)
    if not masked:
        raise EmptyDatasetError(
            f"dataset {dataset.name!r} at {dataset.root} has no image with a lesion mask; the segmenter needs masks "
            "(ISIC Task 1 / 2017 Part 1 folders, PH2 or HAM10000_segmentations_lesion_tschandl)"
        )
    if "train" in dataset.splits and "val" in dataset.splits:
        return dict(dataset.splits)
    return split_samples(masked, SplitConfig(seed=seed))


def segmentation_sets(data: Path, extra: Sequence[Path] = (), seed: int = 0) -> SegmentationSets:
    """Train on every source's train split; validate on ``data``'s validation split only (extra sources
    add training images and a test split each, never validation images)."""
    datasets = tuple(read_dataset(root) for root in (data, *extra))
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise TrainingConfigError(f"each segmentation source must be a different dataset, got {names}")
    splits = [segmentation_splits(d, seed) for d in datasets]
    train = tuple(s for sp in splits for s in sp["train"])
    val = splits[0].get("val") or ()
    tests = {d.name: sp["test"] for d, sp in zip(datasets, splits) if sp.get("test")}
    if not train or not val:
        masked = [s for s in datasets[0].samples if s.mask_path is not None]
        raise EmptyDatasetError(
            f"segmenter needs training and validation images; got {len(train)} train and {len(val)} validation "
            f"images from {[str(p) for p in (data, *extra)]}: a split by lesion gives validation images only to a class "
            f"with at least {MIN_LESIONS_TO_SPLIT} lesions ({datasets[0].name} has {len(masked)} masked images of "
            f"{len({s.group for s in masked})} lesions); add masked images to --data or give it its own Validation folder"
        )
    return SegmentationSets(train, tuple(val), tests, datasets)


def prepare_out_dir(out_dir: Path) -> Path:
    """Create the --out folder; a path that is a file (or under one) is a TrainingConfigError, and an earlier run's
    outputs there are named in a WARNING, as this run replaces them."""
    out_dir = Path(out_dir)
    refuse_file_out(out_dir, "the segmenter's metrics, curves and model")
    replaced = [name for name in RUN_OUTPUTS if (out_dir / name).exists()]
    if replaced:
        logger.warning("--out %s holds an earlier run (%s); this run replaces them: pass another --out to keep them",
                       out_dir, ", ".join(replaced))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainingConfigError(f"--out {out_dir} cannot be made a folder ({e.strerror}); expected a folder path "
                                  "whose parents are folders you may write to: pass another --out") from e
    return out_dir


#: The fewest masks looking inverted that refuse a split (with half of it or more): one full-frame lesion of a split of
#: two is a warning (review 17, finding 7).
INVERTED_REFUSED_FROM = 3


def check_inverted(ys: np.ndarray, samples: Sequence[Sample], split: str) -> None:
    """Masks that mark (nearly) their whole border as lesion (``inverted_masks``): named in a WARNING, an
    EmptyDatasetError when half the split's or more do, at least INVERTED_REFUSED_FROM (a segmenter trained on them,
    exit 0, had learnt the background: training input audit, finding 9). A real lesion that touches the border escapes
    the rule when inverted, so a set inverted whole shows as most, not all (328 of ISIC 2017's 350; none of the real
    ones is flagged)."""
    inverted = inverted_masks(ys, samples)
    if not inverted:
        return
    first = inverted[0].mask_path.name if inverted[0].mask_path else inverted[0].image_id
    what = (f"their lesion covers at least {INVERTED_BORDER_SHARE:.0%} of the picture's border, which no real mask of "
            f"the shared sets does (e.g. {first}); expected white (255, or 1) on the lesion and black (0) elsewhere: "
            "check that they are not inverted (lesion black) or blank white exports")
    if len(inverted) >= INVERTED_REFUSED_FROM and 2 * len(inverted) >= len(samples):
        raise EmptyDatasetError(f"{len(inverted)} of the {len(samples)} {split} masks look inverted: {what}")
    logger.warning("%d of %d %s masks look inverted: %s", len(inverted), len(samples), split, what)


def check_lesions(ys: np.ndarray, samples: Sequence[Sample], split: str) -> int:
    """How many of a split's ground-truth masks (N, H, W) hold no lesion pixel: counted and named in a WARNING (each
    such image scores 1 for a prediction of nothing), an EmptyDatasetError when every one is empty (a model chosen
    and a threshold tuned on them would measure nothing)."""
    check_inverted(ys, samples, split)
    empty = empty_masks(ys, samples)
    if not empty:
        return 0
    folders = sorted({str(s.mask_path.parent) for s in empty if s.mask_path is not None})
    where = f"{folders[0]}" + (f" (and {len(folders) - 1} other folder(s))" if len(folders) > 1 else "")
    what = (f"e.g. {empty[0].mask_path.name if empty[0].mask_path else empty[0].image_id}; expected white (255, or 1) "
            "on the lesion and black (0) elsewhere: check the masks' values (a lesion marked with a grey level "
            "below 128, a 16-bit PNG) and that they are not inverted or blank exports")
    if len(empty) == len(samples):
        raise EmptyDatasetError(f"every one of the {len(samples)} {split} masks in {where} is empty (no lesion pixel); "
                                f"{what}")
    logger.warning("%d of %d %s masks in %s are empty (no lesion pixel): those images score 1 for predicting nothing, "
                   "which favours a high threshold; %s", len(empty), len(samples), split, where, what)
    return len(empty)


def predict(model: keras.Model, xs: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Probability maps (N, 256, 256) for uint8 seg inputs."""
    out = np.empty(xs.shape[:3], np.float32)
    for i in range(0, len(xs), batch_size):
        chunk = xs[i : i + batch_size].astype(np.float32) * np.float32(1.0 / 255.0)
        out[i : i + batch_size] = np.asarray(model(chunk, training=False), dtype=np.float32)[..., 0]
    return out


def served_masks(prob: np.ndarray, threshold: float) -> np.ndarray:
    """The masks ``lesion_crop`` serves for probability maps (N, H, W): threshold + largest component, 0/1."""
    return np.stack([lesion_mask(p, threshold) for p in prob]) // 255


def served_metrics(truth: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, float]:
    """Dice, Jaccard and thresholded Jaccard of the served masks at ``threshold``."""
    return segmentation_metrics(truth, served_masks(prob, threshold), 0.5)


def tune_served_threshold(truth: np.ndarray, prob: np.ndarray) -> tuple[float, dict[float, dict[str, float]]]:
    """The threshold maximising the served masks' thresholded Jaccard on validation, and every candidate's scores."""
    return tune_threshold(truth, prob, score=lambda t: served_metrics(truth, prob, t))


def write_predicted_masks(model: keras.Model, data: Path | Dataset, out_dir: Path, batch_size: int = 16,
                          shown: Path | None = None) -> int:
    """Write ``<image_id>.png`` (256x256 probability x 255) for every image of a dataset (a folder, or one read
    already), so the classifier can crop images that have no ground-truth mask (``--predicted-masks``); returns the
    count. Each tenth done is logged with the time left (a release re-tune predicts them with no other sign of life),
    and the last line names the folder as ``shown`` (where a staged run's masks end up; ``out_dir`` without it).
    Images that cannot be decoded are all named in one UnreadableImageError once the others are predicted."""
    from ..classifier.data import unreadable_images_error
    from ..errors import UnreadableImageError
    from ..images import load_prepared, seg_input_uint8

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = data if isinstance(data, Dataset) else read_dataset(data)
    samples = dataset.samples
    progress = ProgressLog(logger, f"predicting the masks of {dataset.root}", len(samples))
    unusable: list[tuple[Path, str]] = []
    for i in range(0, len(samples), batch_size):
        chunk, inputs = [], []
        for s in samples[i : i + batch_size]:
            try:
                inputs.append(seg_input_uint8(load_prepared(s.image_path)))
                chunk.append(s)
            except UnreadableImageError as e:  # every one is named at the end, not only the first
                unusable.append((Path(s.image_path), " ".join(str(e.__cause__ or e).split())))
        if inputs:
            for s, prob in zip(chunk, predict(model, np.stack(inputs), batch_size)):
                write_image(out_dir / f"{s.image_id}.png", np.round(prob * 255).astype(np.uint8), "predicted mask",
                            StageError)
        progress.advance(len(samples[i : i + batch_size]))
    if unusable:
        raise unreadable_images_error(unusable, len(samples), f"{dataset.root} (predicting their masks)")
    logger.info("wrote %d predicted masks for %s to %s", len(samples), dataset.root, shown or out_dir)
    return len(samples)


def check_run_images(images: Sequence[Sample], predict: Sequence[Dataset] = (), what: str = "the training data") -> int:
    """Before the first epoch: decode every image the run will read (its train, validation and test images, and those
    of the ``predict`` datasets whose masks it predicts once trained) and refuse them in one UnreadableImageError that
    names every unusable one (a few, then a count) with the fix, rather than one per run at the step that reads it;
    ``what`` names where ``images`` come from (e.g. "--data DIR"); returns how many were checked."""
    from ..classifier.data import check_images

    sources = [what, *(f"--predict-masks {d.root}" for d in predict)]
    what = sources[0] if len(sources) == 1 else ", ".join(sources[:-1]) + f" and {sources[-1]}"
    return check_images([*(s.image_path for s in images), *(s.image_path for d in predict for s in d.samples)], what)


def _training_dataset(xs: np.ndarray, ys: np.ndarray, config: SegmenterConfig, seed: int) -> tf.data.Dataset:
    import tensorflow as tf

    from .augment import augment_fn

    ds = tf.data.Dataset.from_tensor_slices((xs, ys)).shuffle(len(xs), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(augment_fn(config.augment, config.brightness), num_parallel_calls=2)
    return ds.batch(config.batch_size, drop_remainder=True).prefetch(2)


def _schedule(keras: Any, config: SegmenterConfig, steps_per_epoch: int) -> keras.optimizers.schedules.CosineDecay:
    """Linear warm-up to the peak rate, then cosine decay to 5% of it."""
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else config.learning_rate, decay_steps=max(1, total - warmup), alpha=0.05,
        warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup,
    )


Best = tuple[float, list | None, int]  # (validation served Jaccard, weights, epoch) of the best epoch so far
EpochHook = Callable[[int, object], None]


def _best_epoch_callback(keras: Any, x_val: np.ndarray, y_val: np.ndarray, history: dict[str, list[float]],
                         best: Best = (-1.0, None, 0), done: int = 0, save: Callable[[object, int, Best], None] | None = None,
                         on_epoch: EpochHook | None = None) -> keras.callbacks.Callback:
    """Score every epoch's served Jaccard on validation and keep the best weights (from ``best``, that of the ``done``
    epochs a resumed run had done); record each epoch's figures in ``history``, then ``save(model, epochs done, best)``
    (the resumable checkpoint), then ``on_epoch(epochs done, model)``."""

    class KeepBest(keras.callbacks.Callback):
        started = 0.0

        def __init__(self) -> None:
            super().__init__()
            self.best = best

        def on_train_begin(self, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            scores = served_metrics(y_val, predict(self.model, x_val), SELECTION_THRESHOLD)
            history.setdefault("val_served_jaccard", []).append(scores["jaccard"])
            for key, value in (logs or {}).items():
                history.setdefault(key, []).append(float(value))
            if scores["jaccard"] > self.best[0]:
                self.best = (scores["jaccard"], self.model.get_weights(), epoch + 1)
            if save is not None:
                save(self.model, epoch + 1, self.best)
            if on_epoch is not None:
                on_epoch(epoch + 1, self.model)
            total = int(self.params.get("epochs", epoch + 1))
            eta = eta_text(time.perf_counter() - self.started, epoch + 1 - done, total - done) or "done"
            logger.info("epoch %d/%d (%s): val served Jaccard %.4f (best %.4f at epoch %d)", epoch + 1, total, eta,
                        scores["jaccard"], self.best[0], self.best[2])

    return KeepBest()


def _arrays(prefix: str, arrays: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}_{i:04d}": np.asarray(a) for i, a in enumerate(arrays)}


def save_checkpoint(path: Path, model: keras.Model, fingerprint: dict, done: int, best: Best, history: dict[str, list[float]],
                    seconds: float) -> Path:
    """Write the resumable checkpoint whole or not at all: the model's weights (batch-norm statistics included), the
    optimizer's variables (its step, so the learning-rate schedule's place, and its moments), the best epoch so far
    with its weights, the epochs done, the history and the run's fingerprint."""
    optimizer = [np.asarray(v.numpy()) for v in model.optimizer.variables]
    meta = {"fingerprint": fingerprint, "epochs_done": done, "best_score": best[0], "best_epoch": best[2],
            "history": history, "train_seconds": seconds}
    arrays = {"meta": np.array(json.dumps(meta)), **_arrays("weights", model.get_weights()),
              **_arrays("optimizer", optimizer), **_arrays("best", best[1] or [])}

    def write(partial: Path) -> None:
        with open(partial, "wb") as f:
            np.savez(f, **arrays)

    return write_atomic(path, write)


def _read_checkpoint(path: Path, arrays: bool = True) -> dict:
    """A segmenter checkpoint: its ``meta`` and (``arrays``) its ``weights``, ``optimizer`` and ``best`` lists, or
    ResumeError naming the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            saved = {"meta": json.loads(str(z["meta"]))}
            if arrays:
                for part in ("weights", "optimizer", "best"):
                    saved[part] = [z[k] for k in sorted(z.files) if k.startswith(f"{part}_")]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ResumeError(f"--resume: checkpoint {path} cannot be read ({type(e).__name__}: {e}); expected the checkpoint "
                          "a segmenter run saves as each epoch ends: leave out --resume to start again from epoch 1 (the "
                          "file is then replaced)") from e
    return saved


def check_resumable(checkpointing: Checkpointing, config: SegmenterConfig) -> None:
    """Before any image is read: refuse (ResumeError) a ``--resume`` whose checkpoint is of other settings (the data
    is compared once the images are loaded)."""
    if checkpointing.resume:
        meta = _read_checkpoint(checkpointing.path, arrays=False)["meta"]
        check_fingerprint(checkpointing.path, meta.get("fingerprint", {}), run_fingerprint(config, None))


def restore_checkpoint(model: keras.Model, saved: dict, path: Path) -> None:
    """Set the model's weights and its optimizer's variables (built first) to a checkpoint's."""
    model.optimizer.build(model.trainable_variables)
    variables = model.optimizer.variables
    if len(saved["weights"]) != len(model.get_weights()) or len(saved["optimizer"]) != len(variables):
        raise ResumeError(f"--resume: checkpoint {path} holds {len(saved['weights'])} weight and {len(saved['optimizer'])} "
                          f"optimizer arrays, this model has {len(model.get_weights())} and {len(variables)}; leave out "
                          "--resume to start again from epoch 1")
    model.set_weights(saved["weights"])
    for variable, value in zip(variables, saved["optimizer"]):
        variable.assign(value)


def save_interrupted(model: keras.Model, best: tuple[float, list | None, int], epochs_done: int, config: SegmenterConfig,
                     out_dir: Path) -> Path | None:
    """Save the best epoch a run stopped by Ctrl-C reached (``best``: validation served Jaccard, weights, epoch) as
    ``INTERRUPTED_MODEL`` beside ``INTERRUPTED_NOTE``, which marks it unfinished, each written whole or not at all,
    and log one line saying where, which epoch, that the run did not finish and that ``--resume`` continues it from
    its checkpoint; returns the model's path (None when no epoch ended)."""
    from .model import float32_copy

    score, weights, epoch = best
    if weights is None:
        logger.warning("interrupted in epoch %d of %d, before any epoch ended: the run did not finish and nothing was "
                       "saved; a rerun starts again from epoch 1", epochs_done + 1, config.epochs)
        return None
    model.set_weights(weights)
    target, note = Path(out_dir) / INTERRUPTED_MODEL, Path(out_dir) / INTERRUPTED_NOTE
    copy = float32_copy(model, config.unet)
    write_atomic(target, lambda partial: copy.save(str(partial)),
                 target.with_name("segmenter_interrupted.partial.keras"))  # Keras saves only under a .keras name
    write_json_atomic(note, {
        "finished": False, "interrupted_after_epoch": epochs_done, "epochs": config.epochs, "saved_epoch": epoch,
        "val_served_jaccard": score, "model": target.name, "config": json.loads(json.dumps(asdict(config), default=str)),
        "note": "interrupted (Ctrl-C or SIGTERM): the best epoch so far at the selection threshold "
                f"{SELECTION_THRESHOLD:g}, not a finished run (no tuned threshold, no test figures); {RESUME_HINT} from "
                f"epoch {epochs_done + 1} (same --out, flags and data)",
        "checkpoint": CHECKPOINT,
    })
    logger.warning("interrupted after epoch %d of %d: the run did NOT finish; the best epoch so far (epoch %d, val served "
                   "Jaccard %.4f) is saved in %s (marked unfinished in %s; no threshold tuned), not as a finished run's "
                   "segmenter.keras; %s from epoch %d (its checkpoint is %s)", epochs_done, config.epochs, epoch, score,
                   target, note.name, RESUME_HINT, epochs_done + 1, Path(out_dir) / CHECKPOINT)
    return target


def train_segmenter(data: Path, out_dir: Path, config: SegmenterConfig = SegmenterConfig(),
                    extra: Sequence[Path] = (), staging: Path | None = None, resume: bool = False,
                    on_epoch: EpochHook | None = None, predict_masks: Sequence[Path] = ()) -> SegmenterRun:
    """Train on ``data`` (+ ``extra`` sources), keep the epoch with the best validation Jaccard, tune the
    threshold on validation, write metrics JSON, split manifest and curves PNG (into ``staging`` when given: the stage
    moves them into ``out_dir`` with the model once the run is done, so ``out_dir`` never holds two runs' files).

    As each epoch ends the run saves its resumable checkpoint in ``out_dir`` (:data:`CHECKPOINT`), then calls
    ``on_epoch(epochs done, model)``; ``resume`` continues from it when its settings and data match (ResumeError
    when not, or when there is none, before any image is read). A resumed run continues the weights, the optimizer
    (its moments and step: the learning-rate schedule goes on where it was), the best epoch and the history; its data
    order and augmentation draw from a stream seeded with ``seed + epochs done``, so it is not bit for bit the run
    that was not stopped (tf.data's shuffle and augmentation state are not saved). A finished run without
    ``staging`` removes the checkpoint; with it, the stage does once its outputs are in place.

    ``predict_masks``: the datasets whose masks the caller predicts once the run is done; they are read with ``data``
    (the run returns them) and, before any image is loaded, every image the run and that prediction will read is
    decoded once, unusable ones refused together (:func:`check_run_images`)."""
    import keras

    from .losses import bce_dice_loss, dice_coefficient
    from .model import build_resnet_unet

    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    refuse_file_out(Path(out_dir), "the segmenter's metrics, curves and model")
    checkpoint = Checkpointing(Path(out_dir) / CHECKPOINT, resume)  # a --resume with nothing to resume: told first
    check_resumable(checkpoint, config)
    sets = segmentation_sets(data, extra, config.seed)  # a wrong --data is told before --out is made
    predict_data = tuple(read_dataset(folder) for folder in predict_masks)  # and a wrong --predict-masks
    train = sets.train
    if config.max_train_images:
        rng = np.random.default_rng(config.seed)
        train = tuple(train[i] for i in sorted(rng.permutation(len(train))[: config.max_train_images]))
    check_run_images([*train, *sets.val, *(s for samples in sets.tests.values() for s in samples)], predict_data,
                     " ".join([f"--data {data}", *(f"--extra-data {folder}" for folder in extra)]))
    out_dir = prepare_out_dir(out_dir)
    logger.info("loading %d train + %d val images from %s", len(train), len(sets.val), [d.name for d in sets.datasets])
    x_train, y_train = load_segmentation_arrays(train)
    x_val, y_val = load_segmentation_arrays(sets.val)
    check_lesions(y_train, train, "training")
    val_empty = check_lesions(y_val, sets.val, "validation")
    fingerprint = run_fingerprint(config, array_digest(x_train, y_train, x_val, y_val), {
        "train": image_digests([named_image(s.source, s.image_id) for s in train], x_train, y_train),
        "val": image_digests([named_image(s.source, s.image_id) for s in sets.val], x_val, y_val)})
    bf16 = use_bfloat16(config.mixed_precision, "segmenter training")
    if bf16:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_resnet_unet(config.unet)
    steps = len(train) // config.batch_size
    if steps < 1:
        raise EmptyDatasetError(f"segmenter needs at least one full batch of {config.batch_size}; got {len(train)} images")
    model.compile(optimizer=keras.optimizers.Adam(_schedule(keras, config, steps)), loss=bce_dice_loss,
                  metrics=[dice_coefficient])
    history: dict[str, list[float]] = {}
    best: Best = (-1.0, None, 0)
    done, trained_before = 0, 0.0
    if resume:
        saved = _read_checkpoint(checkpoint.path)
        meta = saved["meta"]
        check_fingerprint(checkpoint.path, meta.get("fingerprint", {}), fingerprint)
        restore_checkpoint(model, saved, checkpoint.path)
        done, history, trained_before = int(meta["epochs_done"]), meta["history"], float(meta["train_seconds"])
        best = (float(meta["best_score"]), saved["best"] or None, int(meta["best_epoch"]))
        keras.utils.set_random_seed(config.seed + done)
        logger.info("resuming from checkpoint %s: %d of %d epochs done, best epoch so far %d (val served Jaccard %.4f)",
                    checkpoint.path, done, config.epochs, best[2], best[0])
    elif checkpoint.path.exists():
        logger.warning("%s holds the checkpoint of an unfinished run: this run starts at epoch 1 and replaces it (pass "
                       "--resume to continue that run instead)", checkpoint.path)
    load_seconds = time.perf_counter() - start
    fit_start = time.perf_counter()

    def save(trained: keras.Model, epochs_done: int, kept: Best) -> None:
        save_checkpoint(checkpoint.path, trained, fingerprint, epochs_done, kept, history,
                        trained_before + time.perf_counter() - fit_start)

    keep = _best_epoch_callback(keras, x_val, y_val, history, best, done, save, on_epoch)
    restore_sigterm = stop_on_sigterm()
    try:
        model.fit(_training_dataset(x_train, y_train, config, config.seed + done), epochs=config.epochs,
                  initial_epoch=done, verbose=config.verbose, callbacks=[keep])
    except KeyboardInterrupt as stop:
        if isinstance(stop, Terminated):
            logger.warning("%s: stopping the training as for Ctrl-C", stop)
        with sigterm_ignored():
            save_interrupted(model, keep.best, len(history.get("val_served_jaccard", [])), config, out_dir)
        raise
    finally:
        restore_sigterm()
    model.set_weights(keep.best[1])
    round_to_float16(model)
    prob = predict(model, x_val)
    threshold, scores = tune_served_threshold(y_val, prob)
    report = {
        "dataset": {**{d.name: d.report() for d in sets.datasets}, "train_images": len(train), "val_images": len(sets.val),
                    "val_source": sets.datasets[0].name, "val_empty_masks": val_empty},
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "params": int(model.count_params()),
        "precision": precision_name(bf16),
        "best_epoch": keep.best[2],
        "threshold": threshold,
        "default_threshold": DEFAULT_THRESHOLD,
        "val": scores[threshold],
        "val_at_default": served_metrics(y_val, prob, DEFAULT_THRESHOLD),
        "val_by_threshold": {f"{t:.2f}": s for t, s in scores.items()},
        "history": history,
        **({"resumed_after_epoch": done} if resume else {}),
    }
    for name, samples in sets.tests.items():
        x_test, y_test = load_segmentation_arrays(samples)
        report.setdefault("test", {})[name] = {**served_metrics(y_test, predict(model, x_test), threshold),
                                               "images": len(samples)}
    report["seconds"] = {"load": round(load_seconds, 1), "total": round(trained_before + time.perf_counter() - start, 1)}
    target = Path(staging) if staging is not None else out_dir
    # the split manifest goes with the figures, after the training: an --out never pairs one run's model with another's splits
    write_manifest({"train": train, "val": sets.val, **{f"test_{k}": v for k, v in sets.tests.items()}},
                   target / "segmenter_split.json")
    plot_curves(report["history"], target / "segmenter_curves.png", f"ResNet{config.unet.depth}-UNet w{config.unet.width:g}")
    (target / METRICS).write_text(json.dumps(report, indent=1))
    if staging is None:  # the run's outputs are in place: nothing is left to resume
        checkpoint.path.unlink(missing_ok=True)
    logger.info(
        "segmenter val (served masks, best epoch %d): dice %.3f jaccard %.3f thresholded jaccard %.3f at tuned "
        "threshold %.2f (at %.2f: jaccard %.3f)", keep.best[2], report["val"]["dice"], report["val"]["jaccard"],
        report["val"]["thresholded_jaccard"], threshold, DEFAULT_THRESHOLD, report["val_at_default"]["jaccard"],
    )
    return SegmenterRun(model, report, predict_data)
