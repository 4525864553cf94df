"""Triton adapter for ``lesion_classifier`` in the embedded profile: TorchScript on the CPU."""
import json
import os

import triton_python_backend_utils as pb_utils

from dermassist.base.frameworks import import_torch
from dermassist.base.repository import TORCHSCRIPT_FILENAME
from preprocess.batching import batch_execute, input_rows, triton_responses
from preprocess.contract import CAM, CLASSIFIER_MODEL, CLS_INPUT, OOD_SCORE, PROBABILITIES
from preprocess.params import bool_parameter, choice_parameter, config_parameters, thread_parameter

OMP_WAIT_POLICIES = ("ACTIVE", "PASSIVE")  # what OpenMP's OMP_WAIT_POLICY accepts


class TritonPythonModel:
    """Load the TorchScript module once; classify every request of a batch in one call."""

    def initialize(self, args):
        """Load the TorchScript classifier once (threads and OpenMP waits from the config's parameters)."""
        params = config_parameters(json.loads(args["model_config"]))
        policy = choice_parameter(params, "omp_wait_policy", OMP_WAIT_POLICIES)
        optimize = bool_parameter(params, "optimize_for_cpu", False)
        threads = thread_parameter(params, "intra_op_threads")
        if policy:  # read by OpenMP when torch loads it: instances sharing cores wait without spinning
            os.environ["OMP_WAIT_POLICY"] = policy
        torch = import_torch()

        if threads > 0:
            torch.set_num_threads(threads)
        path = os.path.join(args["model_repository"], args["model_version"], TORCHSCRIPT_FILENAME)
        model = torch.jit.load(path, map_location="cpu").eval()
        if optimize:
            model = torch.jit.optimize_for_inference(torch.jit.freeze(model))
        self.model = model
        self.torch = torch

    def execute(self, requests):
        """Classify the crops of every request in one call; a malformed request gets its own INVALID_ARGUMENT."""
        parsed = [input_rows(r, pb_utils, {"x": CLS_INPUT}) for r in requests]
        return triton_responses(batch_execute(parsed, self._compute), pb_utils, CLASSIFIER_MODEL)

    def _compute(self, x):
        with self.torch.inference_mode():
            probs, ood, cam = self.model(self.torch.from_numpy(x))
        return {PROBABILITIES.name: probs.numpy(), OOD_SCORE.name: ood.numpy(), CAM.name: cam.numpy()}
