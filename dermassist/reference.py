"""The in-process reference pipeline: the served ensemble's four steps in one Python process.

It loads the same artifacts the server does (the segmenter SavedModel with TensorFlow, the
classifier TorchScript with torch) and calls the same ``preprocess`` functions, so its outputs
are what ``dermassist`` must return (integration tests compare them), and its per-image timings
are the baseline ``dermassist bench`` sets the served figures against.

torch is imported before TensorFlow (TensorFlow first, then anything that loads torch's
``triton`` compiler package, segfaults), and torch is told that package is absent.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from preprocess.contract import BBOX, CLASSIFIER_MODEL, LESION_FRACTION, MASK, PROBABILITIES, SEG_SIZE, STEP_MODELS
from preprocess.crop import CropParams, crop_batch
from preprocess.errors import InvalidImageError
from preprocess.prepare import PreparedImage, prepare_images

from .errors import DermAssistError
from .export_segmenter import SAVEDMODEL_OUTPUT
from .repository import SOURCE_REPOSITORY, classifier_artifact, model_parameters, require_artifacts, segmenter_artifact

logger = logging.getLogger(__name__)

STEPS = STEP_MODELS  # the per-step timings are keyed by the ensemble's step models


class ReferenceError(DermAssistError):
    """The reference pipeline cannot load its artifacts or run an input."""


class ReferenceArtifactsMissing(ReferenceError):
    """The model repository lacks the trained artifacts (run ``make models``)."""


class ReferenceInputError(ReferenceError):
    """An input image is invalid (the served ensemble rejects it with INVALID_ARGUMENT too)."""


@dataclass(frozen=True)
class StepTimes:
    """Wall-clock seconds each step took for one call of ``run_timed``."""

    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Sum over the steps."""
        return float(sum(self.seconds.values()))


def _import_frameworks():
    """Import torch, then TensorFlow (order matters, see module docstring)."""
    sys.modules.setdefault("triton", None)
    import torch  # noqa: F401  (must precede tensorflow)
    import tensorflow as tf

    return torch, tf


class ReferencePipeline:
    """prepare -> lesion_segmenter -> lesion_crop -> lesion_classifier, in this process.

    ``ReferencePipeline(repository).run([jpeg_bytes, ...])`` returns a dict of numpy arrays keyed
    by PROBABILITIES/MASK/BBOX/LESION_FRACTION with one row per input, like the ensemble.
    """

    def __init__(
        self,
        repository: Path = SOURCE_REPOSITORY,
        crop_params: CropParams = CropParams(),
        torch_threads: int = 0,
        tf_intra_op_threads: int = 0,
    ) -> None:
        self.repository = Path(repository)
        require_artifacts(self.repository, ReferenceArtifactsMissing, "pass --repository to a repository with exported models")
        self.crop_params = crop_params
        torch, tf = _import_frameworks()
        if torch_threads > 0:
            torch.set_num_threads(torch_threads)
        if tf_intra_op_threads > 0:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(tf_intra_op_threads)
            except RuntimeError:  # TF already initialised in this process: keep its setting
                logger.debug("TensorFlow threads already fixed; intra-op setting ignored")
        self._torch, self._tf = torch, tf
        started = time.perf_counter()
        seg = tf.saved_model.load(str(segmenter_artifact(self.repository)))
        self._seg_fn = seg.signatures["serving_default"]
        self._seg_keep = seg  # the signature needs its object alive
        (self._seg_input,) = self._seg_fn.structured_input_signature[1].keys()
        classifier = torch.jit.load(str(classifier_artifact(self.repository)), map_location="cpu").eval()
        if model_parameters(self.repository, CLASSIFIER_MODEL).get("optimize_for_cpu", "").lower() == "true":
            classifier = torch.jit.optimize_for_inference(torch.jit.freeze(classifier))  # as the embedded step does
        self._classifier = classifier
        self.load_s = time.perf_counter() - started
        logger.info("reference pipeline loaded from %s in %.1f s", self.repository, self.load_s)

    def _prepare(self, images: Sequence[bytes]) -> list[PreparedImage]:
        prepared = prepare_images(list(images))
        bad = [(i, r) for i, r in enumerate(prepared) if isinstance(r, InvalidImageError)]
        if bad:
            raise ReferenceInputError("; ".join(f"IMAGE row {i}: {e}" for i, e in bad))
        return prepared  # type: ignore[return-value]

    def _segment(self, seg_input: np.ndarray) -> np.ndarray:
        out = self._seg_fn(**{self._seg_input: self._tf.constant(seg_input)})[SAVEDMODEL_OUTPUT]
        return out.numpy().astype(np.float32, copy=False)

    def _classify(self, cls_input: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            probs = self._classifier(self._torch.from_numpy(np.ascontiguousarray(cls_input)))
        return probs.numpy().astype(np.float32, copy=False)

    def run_timed(self, images: Sequence[bytes]) -> tuple[dict[str, np.ndarray], StepTimes]:
        """Run a batch of encoded images; return the contract outputs and per-step seconds."""
        if len(images) == 0:
            raise ReferenceInputError("run needs at least one encoded image, got an empty list")
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        prepared = self._prepare(images)
        seg_input = np.stack([p.seg_input for p in prepared]).astype(np.float32, copy=False)
        t1 = time.perf_counter()
        seg_prob = self._segment(seg_input)
        t2 = time.perf_counter()
        crops = crop_batch(
            seg_prob.reshape(-1, SEG_SIZE, SEG_SIZE),
            [p.work_image for p in prepared],
            np.array([p.scale for p in prepared], dtype=np.float32),
            self.crop_params,
        )
        t3 = time.perf_counter()
        probs = self._classify(crops.cls_input)
        t4 = time.perf_counter()
        times.update(zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)))
        outputs = {
            PROBABILITIES.name: probs,
            MASK.name: crops.mask,
            BBOX.name: crops.bbox,
            LESION_FRACTION.name: crops.lesion_fraction,
        }
        return outputs, StepTimes(times)

    def run(self, images: Sequence[bytes]) -> dict[str, np.ndarray]:
        """Run a batch of encoded images; return PROBABILITIES/MASK/BBOX/LESION_FRACTION arrays."""
        return self.run_timed(images)[0]
