"""Export a Keras segmenter as the served TensorFlow SavedModel (TensorFlow process only)."""
from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dermassist.base.repository import segmenter_artifact, segmenter_keras_copy
from preprocess.contract import SAVEDMODEL_OUTPUT, SEG_SIZE

from ..errors import ExportError, ModelArchitectureError
from .parity import check_parity

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)

SEG_IN_SHAPE = (SEG_SIZE, SEG_SIZE, 3)
SEG_OUT_SHAPE = (SEG_SIZE, SEG_SIZE, 1)


@dataclass(frozen=True)
class SegmenterExport:
    """What the export wrote and how closely the SavedModel matched Keras."""

    savedmodel: Path
    keras_copy: Path
    max_abs_diff: float


def check_segmenter_architecture(model: keras.Model) -> None:
    """Raise ModelArchitectureError unless the model maps (N,256,256,3) to (N,256,256,1)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelArchitectureError(
            f"segmenter must have one input and one output, got {len(model.inputs)} and {len(model.outputs)}"
        )
    in_shape, out_shape = tuple(model.inputs[0].shape[1:]), tuple(model.outputs[0].shape[1:])
    if in_shape != SEG_IN_SHAPE or out_shape != SEG_OUT_SHAPE:
        raise ModelArchitectureError(
            f"segmenter must map {SEG_IN_SHAPE} to {SEG_OUT_SHAPE} (sigmoid probabilities), "
            f"got {in_shape} -> {out_shape}"
        )


def check_probabilities(eager: np.ndarray) -> None:
    """Raise ModelArchitectureError unless the segmenter's finite outputs on the probe images lie in [0, 1]: the
    contract serves sigmoid probabilities, and a model ending in logits would be thresholded as if it gave them
    (non-finite outputs are left to the parity check, which names them)."""
    finite = np.asarray(eager)[np.isfinite(eager)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if low < 0.0 or high > 1.0:
        shape = ", ".join(map(str, SEG_OUT_SHAPE))
        raise ModelArchitectureError(
            f"segmenter outputs must be sigmoid probabilities in [0, 1] of shape (N, {shape}), got values from "
            f"{low:.3g} to {high:.3g} on random images in [0, 1]: its last layer gives "
            "logits or scores; add a sigmoid (activation='sigmoid' on the last layer, or keras.layers.Activation("
            "'sigmoid') after it) and save the model again; not written")


def load_savedmodel_fn(path: Path) -> tuple[Callable[..., Any], str]:
    """Load a SavedModel's ``serving_default`` and return (callable, input name)."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    (input_name,) = fn.structured_input_signature[1].keys()
    return fn, input_name


def export_segmenter(model: keras.Model, repository: Path, *, seed: int = 0) -> SegmenterExport:
    """Write ``model`` as SavedModel (+ ``.keras`` copy) into the repository after a parity check."""
    check_segmenter_architecture(model)
    x = np.random.default_rng(seed).random((2, *SEG_IN_SHAPE), dtype=np.float32)
    eager = np.asarray(model(x, training=False))
    check_probabilities(eager)
    target, keras_copy = segmenter_artifact(repository), segmenter_keras_copy(repository)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staged = Path(tmp) / target.name
        try:
            model.export(str(staged), verbose=False)
            fn, input_name = load_savedmodel_fn(staged)
            exported = fn(**{input_name: x})[SAVEDMODEL_OUTPUT].numpy()
        except (ValueError, TypeError, KeyError, OSError) as e:
            raise ExportError(f"SavedModel export of the segmenter failed: {e}") from e
        diff = check_parity("segmenter SavedModel", eager, exported)
        shutil.rmtree(target, ignore_errors=True)
        staged.rename(target)
    model.save(str(keras_copy))
    logger.info("segmenter exported to %s (max |SavedModel - Keras| = %.2e)", target, diff)
    return SegmenterExport(target, keras_copy, diff)
