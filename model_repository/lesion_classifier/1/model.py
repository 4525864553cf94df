"""Triton adapter for ``lesion_classifier`` in the embedded profile: TorchScript on the CPU."""
import json
import os
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from dermassist.base.frameworks import import_torch
from dermassist.base.repository import TORCHSCRIPT_FILENAME
from dermassist.base.steps import TorchScriptStep
from preprocess.batching import batch_execute, input_rows, triton_responses
from preprocess.contract import CAM, CLASSIFIER_MODEL, CLS_INPUT, OOD_SCORE, PROBABILITIES
from preprocess.params import classifier_cpu_settings, config_parameters


class TritonPythonModel:
    """Load the TorchScript module once; classify every request of a batch in one call."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the TorchScript classifier once (threads and OpenMP waits from the config's parameters); a file torch
        cannot load fails the model's load with a RepositoryError naming it and the fix."""
        settings = classifier_cpu_settings(config_parameters(json.loads(args["model_config"])))
        if settings.omp_wait_policy:  # read by OpenMP when torch loads it: instances sharing cores wait without spinning
            os.environ["OMP_WAIT_POLICY"] = settings.omp_wait_policy
        torch = import_torch()

        if settings.intra_op_threads > 0:
            torch.set_num_threads(settings.intra_op_threads)
        path = os.path.join(args["model_repository"], args["model_version"], TORCHSCRIPT_FILENAME)
        self.classify = TorchScriptStep(torch, path, settings.optimize_for_cpu)

    def execute(self, requests: list[Any]) -> list[Any]:
        """Classify the crops of every request in one call; a malformed request gets its own INVALID_ARGUMENT."""
        parsed = [input_rows(r, pb_utils, {"x": CLS_INPUT}) for r in requests]
        return triton_responses(batch_execute(parsed, self._compute), pb_utils, CLASSIFIER_MODEL)

    def _compute(self, x: np.ndarray) -> dict[str, Any]:
        probs, ood, cam = self.classify(x)
        return {PROBABILITIES.name: probs, OOD_SCORE.name: ood, CAM.name: cam}
