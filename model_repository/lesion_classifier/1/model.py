"""Triton adapter for ``lesion_classifier`` in the embedded profile: TorchScript on the CPU."""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

from preprocess.contract import CLS_INPUT, CLS_SIZE, PROBABILITIES


def _parameter(config, name, default=""):
    return config.get("parameters", {}).get(name, {}).get("string_value", default)


class TritonPythonModel:
    """Load the TorchScript module once; classify every request of a batch in one call."""

    def initialize(self, args):
        import sys

        config = json.loads(args["model_config"])
        policy = _parameter(config, "omp_wait_policy")
        if policy:  # read by OpenMP when torch loads it: instances sharing cores wait without spinning
            os.environ["OMP_WAIT_POLICY"] = policy
        sys.modules.setdefault("triton", None)  # torch must not load the triton compiler here
        import torch

        threads = int(_parameter(config, "intra_op_threads", "0"))
        if threads > 0:
            torch.set_num_threads(threads)
        path = os.path.join(args["model_repository"], args["model_version"], "model.pt")
        model = torch.jit.load(path, map_location="cpu").eval()
        if _parameter(config, "optimize_for_cpu").lower() == "true":
            model = torch.jit.optimize_for_inference(torch.jit.freeze(model))
        self.model = model
        self.torch = torch
        self.expected = (3, CLS_SIZE, CLS_SIZE)

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, CLS_INPUT.name).as_numpy() for r in requests]
        good = [a for a in arrays if a.shape[1:] == self.expected]
        probs = None
        if good:
            with self.torch.inference_mode():
                probs = self.model(self.torch.from_numpy(np.concatenate(good))).numpy()
        responses, offset = [], 0
        for a in arrays:
            if a.shape[1:] != self.expected:
                message = f"lesion_classifier: CLS_INPUT must be (N, 3, {CLS_SIZE}, {CLS_SIZE}), got {a.shape}"
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)))
                continue
            out = np.ascontiguousarray(probs[offset : offset + len(a)], dtype=np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(PROBABILITIES.name, out)]))
            offset += len(a)
        return responses
