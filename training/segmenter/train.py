"""Train the ResNet-UNet, tune the threshold on validation, report metrics and export (TensorFlow only)."""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from preprocess.contract import DEFAULT_THRESHOLD

from ..errors import EmptyDatasetError, TrainingConfigError
from ..images import load_segmentation_arrays
from ..metrics import segmentation_metrics, tune_threshold
from ..plots import plot_curves
from ..readers import read_dataset
from ..records import Dataset, Sample
from ..splits import SplitConfig, split_samples, write_manifest
from .model import UNetConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmenterConfig:
    """Everything one segmenter run needs; validated on construction."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    epochs: int = 8
    batch_size: int = 16
    learning_rate: float = 2e-3
    brightness: bool = False
    max_train_images: int = 0
    seed: int = 0
    verbose: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise TrainingConfigError(f"epochs and batch size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not 0 < self.learning_rate < 1:
            raise TrainingConfigError(f"learning rate must lie in (0, 1), got {self.learning_rate}")
        if self.max_train_images < 0:
            raise TrainingConfigError(f"max train images must be >= 0 (0 = all), got {self.max_train_images}")


@dataclass(frozen=True)
class SegmenterRun:
    """A trained model and its report."""

    model: object
    report: dict


def segmentation_splits(dataset: Dataset, seed: int) -> dict[str, tuple[Sample, ...]]:
    """The dataset's own Training/Validation(/Test) folders, else a grouped seeded split of masked samples."""
    masked = tuple(s for s in dataset.samples if s.mask_path is not None)
    if not masked:
        raise EmptyDatasetError(
            f"dataset {dataset.name!r} at {dataset.root} has no image with a lesion mask; the segmenter needs masks "
            "(ISIC Task 1 / 2017 Part 1 folders or HAM10000_segmentations_lesion_tschandl)"
        )
    if "train" in dataset.splits and "val" in dataset.splits:
        return dict(dataset.splits)
    return split_samples(masked, SplitConfig(seed=seed))


def _augment_fn(brightness: bool, seed: int):
    import tensorflow as tf

    def augment(x, y):
        x = tf.cast(x, tf.float32) * (1.0 / 255.0)
        y = tf.cast(y, tf.float32)[..., None]
        both = tf.concat([x, y], axis=-1)
        both = tf.image.random_flip_left_right(both)
        both = tf.image.random_flip_up_down(both)
        both = tf.image.rot90(both, tf.random.uniform([], 0, 4, dtype=tf.int32))
        x, y = both[..., :3], both[..., 3:]
        if brightness:
            x = x * tf.random.uniform([], 0.7, 1.3) + tf.random.uniform([], -0.08, 0.08)
            x = tf.clip_by_value(x, 0.0, 1.0)
        return x, y

    return augment


def _dataset(xs: np.ndarray, ys: np.ndarray, config: SegmenterConfig, train: bool):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((xs, ys))
    if train:
        ds = ds.shuffle(len(xs), seed=config.seed, reshuffle_each_iteration=True)
        ds = ds.map(_augment_fn(config.brightness, config.seed), num_parallel_calls=2)
    else:
        ds = ds.map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, tf.cast(y, tf.float32)[..., None]))
    return ds.batch(config.batch_size).prefetch(2)


def predict(model, xs: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Probability maps (N, 256, 256) for uint8 seg inputs."""
    out = np.empty(xs.shape[:3], np.float32)
    for i in range(0, len(xs), batch_size):
        chunk = xs[i : i + batch_size].astype(np.float32) * np.float32(1.0 / 255.0)
        out[i : i + batch_size] = np.asarray(model(chunk, training=False))[..., 0]
    return out


def write_predicted_masks(model, data: Path, out_dir: Path, batch_size: int = 16) -> int:
    """Write ``<image_id>.png`` (256x256 probability x 255) for every image of a dataset, so the classifier
    can crop images that have no ground-truth mask (``--predicted-masks``); returns the count."""
    import cv2

    from ..images import load_prepared, seg_input_uint8

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = read_dataset(data).samples
    for i in range(0, len(samples), batch_size):
        chunk = samples[i : i + batch_size]
        xs = np.stack([seg_input_uint8(load_prepared(s.image_path)) for s in chunk])
        for s, prob in zip(chunk, predict(model, xs, batch_size)):
            cv2.imwrite(str(out_dir / f"{s.image_id}.png"), np.round(prob * 255).astype(np.uint8))
    logger.info("wrote %d predicted masks for %s to %s", len(samples), data, out_dir)
    return len(samples)


def train_segmenter(data: Path, out_dir: Path, config: SegmenterConfig = SegmenterConfig()) -> SegmenterRun:
    """Train on a segmentation dataset, tune the threshold on validation, write metrics JSON and curves PNG."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from .losses import bce_dice_loss, dice_coefficient
    from .model import build_resnet_unet

    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = read_dataset(data)
    splits = segmentation_splits(dataset, config.seed)
    train = splits["train"]
    if config.max_train_images:
        rng = np.random.default_rng(config.seed)
        train = tuple(train[i] for i in sorted(rng.permutation(len(train))[: config.max_train_images]))
    val = splits.get("val") or splits.get("test")
    if not train or not val:
        raise EmptyDatasetError(
            f"segmenter needs training and validation images; got {len(train)} train, {len(val or ())} val in {data}"
        )
    write_manifest({"train": train, "val": val, **({"test": splits["test"]} if "test" in splits else {})},
                   out_dir / "segmenter_split.json")
    logger.info("loading %d train + %d val images from %s", len(train), len(val), data)
    x_train, y_train = load_segmentation_arrays(train)
    x_val, y_val = load_segmentation_arrays(val)
    model = build_resnet_unet(config.unet)
    steps = config.epochs * int(np.ceil(len(train) / config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=bce_dice_loss, metrics=[dice_coefficient])
    load_seconds = time.perf_counter() - start
    history = model.fit(
        _dataset(x_train, y_train, config, train=True),
        validation_data=_dataset(x_val, y_val, config, train=False),
        epochs=config.epochs,
        verbose=config.verbose,
    ).history
    prob = predict(model, x_val)
    threshold, scores = tune_threshold(y_val, prob)
    report = {
        "dataset": {**dataset.report(), "train_images": len(train), "val_images": len(val)},
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "params": int(model.count_params()),
        "threshold": threshold,
        "default_threshold": DEFAULT_THRESHOLD,
        "val": scores[threshold],
        "val_at_default": segmentation_metrics(y_val, prob, DEFAULT_THRESHOLD),
        "history": {k: [float(v) for v in vals] for k, vals in history.items()},
        "seconds": {"load": round(load_seconds, 1), "total": round(time.perf_counter() - start, 1)},
    }
    if "test" in splits and splits["test"] is not val:
        x_test, y_test = load_segmentation_arrays(splits["test"])
        report["test"] = segmentation_metrics(y_test, predict(model, x_test), threshold)
    plot_curves(report["history"], out_dir / "segmenter_curves.png", f"ResNet{config.unet.depth}-UNet w{config.unet.width:g}")
    (out_dir / "segmenter_metrics.json").write_text(json.dumps(report, indent=1))
    logger.info(
        "segmenter val: dice %.3f jaccard %.3f thresholded jaccard %.3f at tuned threshold %.2f "
        "(at %.2f: dice %.3f, thresholded jaccard %.3f)",
        report["val"]["dice"], report["val"]["jaccard"], report["val"]["thresholded_jaccard"], threshold,
        DEFAULT_THRESHOLD, report["val_at_default"]["dice"], report["val_at_default"]["thresholded_jaccard"],
    )
    return SegmenterRun(model, report)
