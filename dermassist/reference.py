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
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from preprocess.contract import (
    ASSESSABLE,
    BBOX,
    CAM,
    CLASSIFIER_MODEL,
    CROP,
    CROP_MODEL,
    LESION_FRACTION,
    MASK,
    NOTE,
    OOD_SCORE,
    PREPARE_MODEL,
    PROBABILITIES,
    REFER,
    REFER_SCORE,
    SEG_SIZE,
    STEP_MODELS,
    TRIAGE_MODEL,
)
from preprocess.crop import CropParams, crop_batch
from preprocess.errors import PreprocessError
from preprocess.params import EXPORT_AGAIN, ClassifierCpuSettings, classifier_cpu_settings
from preprocess.prepare import PreparedImage, prepare_images
from preprocess.quality import QualityLimits, quality_batch
from preprocess.triage import TriageParams, triage_batch

from .base.errors import DermAssistError
from .base.frameworks import import_torch
from .base.repository import (
    SOURCE_REPOSITORY,
    classifier_artifact,
    model_config_path,
    model_parameters,
    require_artifacts,
    segmenter_artifact,
    step_settings,
)
from .base.steps import SavedModelStep, TorchScriptStep, refuse_bad_rows

logger = logging.getLogger(__name__)

STEPS = STEP_MODELS  # the per-step timings are keyed by the ensemble's step models


class ReferencePipelineError(DermAssistError):
    """The reference pipeline cannot load its artifacts or run an input."""


class ReferenceArtifactsMissing(ReferencePipelineError):
    """The model repository lacks the trained artifacts (run ``make models``)."""


class ReferenceInputError(ReferencePipelineError):
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
    torch = import_torch()  # before tensorflow
    import tensorflow as tf

    return torch, tf


def classifier_settings(repository: Path) -> ClassifierCpuSettings:
    """The classifier config's CPU settings, read as its adapter reads them (``classifier_cpu_settings``): a config the
    adapter would refuse is refused here too."""
    try:
        return classifier_cpu_settings(model_parameters(repository, CLASSIFIER_MODEL))
    except PreprocessError as e:
        raise ReferencePipelineError(f"{model_config_path(repository, CLASSIFIER_MODEL)}: {e}") from e


def wait_as_served(policy: str) -> str:
    """Give OpenMP the served classifier's wait policy (``OMP_WAIT_POLICY``), as its adapter does, where torch has not
    loaded OpenMP yet and the environment sets none; the policy this process's torch then waits with ("" for OpenMP's
    own, or unknown once torch was loaded first). The bench's in-process baseline spun where the served step waits
    passively: up to 3x slower with its cores shared (performance audit B1)."""
    chosen = os.environ.get("OMP_WAIT_POLICY", "")
    if policy and not chosen and "torch" not in sys.modules:
        os.environ["OMP_WAIT_POLICY"] = chosen = policy
    elif policy and not chosen:
        logger.debug("torch was loaded first: OpenMP keeps its own wait policy (the served classifier's: %s)", policy)
    return chosen


class ReferencePipeline:
    """prepare -> lesion_segmenter -> lesion_crop -> lesion_classifier, in this process.

    ``ReferencePipeline(repository).run([jpeg_bytes, ...])`` returns a dict of numpy arrays keyed by
    every ensemble output name, one row per input, like the ensemble. The steps' tuned values are read
    from the repository as the server reads them.
    """

    def __init__(
        self,
        repository: Path = SOURCE_REPOSITORY,
        torch_threads: int = 0,
        tf_intra_op_threads: int = 0,
    ) -> None:
        self.repository = Path(repository)
        require_artifacts(self.repository, ReferenceArtifactsMissing, "pass --repository to a repository with exported models")
        self.crop_params = step_settings(self.repository, CROP_MODEL, CropParams)
        self.quality_limits = step_settings(self.repository, PREPARE_MODEL, QualityLimits)
        self.triage_params = step_settings(self.repository, TRIAGE_MODEL, TriageParams)
        classifier = classifier_settings(self.repository)
        optimize = classifier.optimize_for_cpu
        self.omp_wait_policy = wait_as_served(classifier.omp_wait_policy)
        torch, tf = _import_frameworks()
        threads = torch_threads or classifier.intra_op_threads  # the served step's count: the same sums, the same bits
        if threads > 0:
            torch.set_num_threads(threads)
        self.torch_threads = torch.get_num_threads()
        if tf_intra_op_threads > 0:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(tf_intra_op_threads)
            except RuntimeError:  # TF already initialised in this process: keep its setting
                logger.debug("TensorFlow threads already fixed; intra-op setting ignored")
        self._torch, self._tf = torch, tf
        started = time.perf_counter()
        self._segment = SavedModelStep(tf, segmenter_artifact(self.repository), ReferencePipelineError)
        self._classify = TorchScriptStep(torch, classifier_artifact(self.repository), optimize, ReferencePipelineError)
        self.load_s = time.perf_counter() - started
        logger.info("reference pipeline loaded from %s in %.1f s", self.repository, self.load_s)

    def _prepare(self, images: Sequence[bytes]) -> list[PreparedImage]:
        return refuse_bad_rows(prepare_images(list(images)), ReferenceInputError)

    def classifier_without_extras(self) -> Callable[[Any], Any]:
        """The served classifier's own ``probabilities`` method: its layers and temperature without the OOD score and
        CAM, the same probabilities for less work."""
        try:
            return self._classify.module.probabilities
        except AttributeError as e:
            raise ReferencePipelineError(
                f"{classifier_artifact(self.repository)}: expected a TorchScript with a `probabilities` method, found an "
                f"export from before it had one; {EXPORT_AGAIN}"
            ) from e

    def triage_extras_ms(self, images: Sequence[bytes], passes: int = 1) -> dict[str, float]:
        """Milliseconds per image the triage outputs add outside the triage step: the quality measures in
        ``prepare``, and the classifier's OOD score and CAM (its whole TorchScript against the same layers called without
        them, both unfrozen; the frozen module served has no submodules left to call)."""
        prepared = self._prepare(images)
        seg_input = np.stack([p.seg_input for p in prepared]).astype(np.float32, copy=False)
        crops = crop_batch(self._segment(seg_input).reshape(-1, SEG_SIZE, SEG_SIZE), [p.work_image for p in prepared],
                           np.array([p.scale for p in prepared], dtype=np.float32), self.crop_params)
        rows = [np.ascontiguousarray(crops.cls_input[i : i + 1]) for i in range(len(prepared))]
        whole, bare = self._classify.module, self.classifier_without_extras()
        timings: dict[str, list[float]] = {"quality": [], "classifier_full": [], "classifier_bare": []}

        def timed(name: str, call: Callable[[Any], object], args: Sequence[Any]) -> None:
            for arg in args:
                t0 = time.perf_counter()
                call(arg)
                timings[name].append(time.perf_counter() - t0)

        tensors = [self._torch.from_numpy(row) for row in rows]
        with self._torch.inference_mode():
            whole(tensors[0]), bare(tensors[0])  # warm both before timing
            for k in range(passes):
                timed("quality", lambda seg: quality_batch(seg[None], self.quality_limits), seg_input)
                # each in its own loop, in alternating order: calling one right after the other on the same
                # input lets the second find the weights in cache and hides the difference
                order = (("classifier_full", whole), ("classifier_bare", bare))
                for name, call in order if k % 2 == 0 else order[::-1]:
                    timed(name, call, tensors)
        ms = {k: 1000.0 * float(np.median(v)) for k, v in timings.items()}  # medians: one slow call moves nothing
        return {"quality": ms["quality"], "classifier_extras": max(0.0, ms["classifier_full"] - ms["classifier_bare"])}

    def run_timed(self, images: Sequence[bytes]) -> tuple[dict[str, np.ndarray], StepTimes]:
        """Run a batch of encoded images; return the contract outputs and per-step seconds."""
        if len(images) == 0:
            raise ReferenceInputError("run needs at least one encoded image, got an empty list")
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        prepared = self._prepare(images)
        seg_input = np.stack([p.seg_input for p in prepared]).astype(np.float32, copy=False)
        quality = quality_batch(seg_input, self.quality_limits)
        t1 = time.perf_counter()
        seg_prob = self._segment(seg_input)
        t2 = time.perf_counter()
        crops = crop_batch(
            seg_prob.reshape(-1, SEG_SIZE, SEG_SIZE),
            [p.work_image for p in prepared],
            np.array([p.scale for p in prepared], dtype=np.float32),
            self.crop_params,
            np.array([p.original_size for p in prepared], dtype=np.int32),
        )
        t3 = time.perf_counter()
        probs, ood, cam = self._classify(crops.cls_input)
        t4 = time.perf_counter()
        triage = triage_batch(probs, ood, quality, crops.lesion_fraction, crops.other_fraction, self.triage_params)
        t5 = time.perf_counter()
        times.update(zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)))
        outputs = {
            PROBABILITIES.name: probs, MASK.name: crops.mask, BBOX.name: crops.bbox,
            LESION_FRACTION.name: crops.lesion_fraction, CROP.name: crops.crop, REFER.name: triage.refer,
            REFER_SCORE.name: triage.refer_score, ASSESSABLE.name: triage.assessable, OOD_SCORE.name: triage.ood_score,
            NOTE.name: triage.note, CAM.name: cam,
        }
        return outputs, StepTimes(times)

    def run(self, images: Sequence[bytes]) -> dict[str, np.ndarray]:
        """Run a batch of encoded images; return every ensemble output as arrays, one row per image."""
        return self.run_timed(images)[0]
