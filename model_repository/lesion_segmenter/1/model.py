"""Triton adapter for ``lesion_segmenter``: the Keras ResNet-UNet SavedModel hosted with TensorFlow."""
import json
import os
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from dermassist.base.frameworks import place_tensorflow
from dermassist.base.repository import SAVEDMODEL_DIRNAME
from dermassist.base.steps import SavedModelStep
from preprocess.batching import batch_execute, input_rows, triton_responses
from preprocess.contract import SEG_INPUT, SEG_PROB, SEGMENTER_MODEL
from preprocess.params import config_parameters, thread_parameter


class TritonPythonModel:
    """Load the SavedModel once; run every request of a batch in one call."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the SavedModel once, on this instance's GPU when there is one; a device TensorFlow does not see, or a
        SavedModel it cannot load, fails the model's load with an error naming it and the fix."""
        import tensorflow as tf

        params = config_parameters(json.loads(args["model_config"]))
        place_tensorflow(tf, SEGMENTER_MODEL, args, thread_parameter(params, "intra_op_threads"),
                         thread_parameter(params, "inter_op_threads"))
        self.segment = SavedModelStep(tf, os.path.join(args["model_repository"], args["model_version"],
                                                       SAVEDMODEL_DIRNAME))

    def execute(self, requests: list[Any]) -> list[Any]:
        """Segment the images of every request in one call; a malformed request gets its own INVALID_ARGUMENT."""
        parsed = [input_rows(r, pb_utils, {"x": SEG_INPUT}) for r in requests]
        return triton_responses(batch_execute(parsed, self._compute), pb_utils, SEGMENTER_MODEL)

    def _compute(self, x: np.ndarray) -> dict[str, Any]:
        return {SEG_PROB.name: self.segment(x)}
