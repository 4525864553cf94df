"""Triton adapter for ``prepare``: encoded bytes -> SEG_INPUT, WORK_IMAGE, WORK_SIZE, SCALE, ORIGINAL_SIZE, QUALITY."""
import json
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from dermassist.base.steps import refuse_bad_rows
from preprocess.batching import Rows, batch_execute, input_rows, triton_responses
from preprocess.contract import IMAGE, ORIGINAL_SIZE, PREPARE_MODEL, QUALITY, SCALE, SEG_INPUT, WORK_IMAGE, WORK_SIZE
from preprocess.params import set_opencv_threads, step_params
from preprocess.prepare import prepare_images, stack_prepared
from preprocess.quality import QualityLimits, quality_batch


class TritonPythonModel:
    """Decode, validate, measure and resize every image of every request in one pass."""

    def initialize(self, args: dict[str, str]) -> None:
        """Read the quality limits once: config parameter > the version's tuned.json > default."""
        config = json.loads(args["model_config"])
        set_opencv_threads(config)
        self.limits = step_params(QualityLimits, args, config)

    def execute(self, requests: list[Any]) -> list[Any]:
        """Prepare every image of every request in one pass; a request with a bad image gets its own INVALID_ARGUMENT."""
        parsed = [input_rows(r, pb_utils, {"blobs": IMAGE}) for r in requests]
        return triton_responses(batch_execute(parsed, self._compute, self._finish), pb_utils, PREPARE_MODEL)

    @staticmethod
    def _compute(blobs: np.ndarray) -> dict[str, Any]:
        return {"prepared": prepare_images(list(blobs.reshape(-1)))}

    def _finish(self, rows: dict[str, Rows]) -> dict[str, Any]:
        """One request's outputs; a bad image refuses its whole request, naming every bad row."""
        batch = stack_prepared(refuse_bad_rows(list(rows["prepared"])))
        return {SEG_INPUT.name: batch.seg_input, WORK_IMAGE.name: batch.work_image, WORK_SIZE.name: batch.work_size,
                SCALE.name: batch.scale, ORIGINAL_SIZE.name: batch.original_size,
                QUALITY.name: quality_batch(batch.seg_input, self.limits)}
