"""Triton adapter for ``lesion_segmenter``: the Keras ResNet-UNet SavedModel hosted with TensorFlow."""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

from preprocess.contract import SEG_INPUT, SEG_PROB, SEG_SIZE


def _parameter(config, name, default):
    return int(config.get("parameters", {}).get(name, {}).get("string_value", default))


class TritonPythonModel:
    """Load the SavedModel once; run every request of a batch in one call."""

    def initialize(self, args):
        import tensorflow as tf

        config = json.loads(args["model_config"])
        gpus = tf.config.list_physical_devices("GPU")
        if args.get("model_instance_kind") == "GPU" and gpus:
            device = gpus[int(args["model_instance_device_id"])]
            tf.config.set_visible_devices(device, "GPU")
            tf.config.experimental.set_memory_growth(device, True)
        tf.config.threading.set_intra_op_parallelism_threads(_parameter(config, "intra_op_threads", 0))
        tf.config.threading.set_inter_op_parallelism_threads(_parameter(config, "inter_op_threads", 0))
        path = os.path.join(args["model_repository"], args["model_version"], "model.savedmodel")
        self.fn = tf.saved_model.load(path).signatures["serving_default"]
        (self.input_name,) = self.fn.structured_input_signature[1].keys()
        self.tf = tf
        self.expected = (SEG_SIZE, SEG_SIZE, 3)

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, SEG_INPUT.name).as_numpy() for r in requests]
        good = [a for a in arrays if a.shape[1:] == self.expected]
        probs = None
        if good:
            probs = self.fn(**{self.input_name: self.tf.constant(np.concatenate(good))})["output_0"].numpy()
        responses, offset = [], 0
        for a in arrays:
            if a.shape[1:] != self.expected:
                message = f"lesion_segmenter: SEG_INPUT must be (N, {SEG_SIZE}, {SEG_SIZE}, 3), got {a.shape}"
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)))
                continue
            out = probs[offset : offset + len(a)].astype(np.float32, copy=False)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(SEG_PROB.name, np.ascontiguousarray(out))]))
            offset += len(a)
        return responses
