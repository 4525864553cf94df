"""Triton adapter for ``lesion_segmenter``: the Keras ResNet-UNet SavedModel hosted with TensorFlow."""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

from dermassist.base.frameworks import SAVEDMODEL_SIGNATURE, load_savedmodel
from dermassist.base.repository import SAVEDMODEL_DIRNAME
from preprocess.batching import batch_execute, input_rows, triton_responses
from preprocess.contract import SAVEDMODEL_OUTPUT, SEG_INPUT, SEG_PROB, SEGMENTER_MODEL
from preprocess.errors import PreprocessError
from preprocess.params import config_parameters, thread_parameter


class TritonPythonModel:
    """Load the SavedModel once; run every request of a batch in one call."""

    def initialize(self, args):
        """Load the SavedModel once, on this instance's GPU when there is one; a device TensorFlow does not see, or a
        SavedModel it cannot load, fails the model's load with an error naming it and the fix."""
        import tensorflow as tf

        params = config_parameters(json.loads(args["model_config"]))
        gpus = tf.config.list_physical_devices("GPU")
        if args.get("model_instance_kind") == "GPU":
            if not gpus:  # it would run on the host's CPU at CPU speed, with nothing said
                raise PreprocessError(
                    f"{SEGMENTER_MODEL}: its instance is KIND_GPU (device {args.get('model_instance_device_id')}) but "
                    f"TensorFlow {tf.__version__} sees no GPU (built with CUDA: {tf.test.is_built_with_cuda()}); "
                    "install a CUDA build of TensorFlow that matches the host's driver (the GPU image's "
                    "tensorflow[and-cuda]), or serve the embedded profile on a host without a GPU")
            index = int(args["model_instance_device_id"])
            if index >= len(gpus):  # gpus[index] would be a bare IndexError
                raise PreprocessError(
                    f"{SEGMENTER_MODEL}: its instance is KIND_GPU on device {index} but TensorFlow {tf.__version__} "
                    f"sees {len(gpus)} GPU(s), numbered from 0; give the instance group a device TensorFlow sees "
                    "(`gpus: [...]` in config.pbtxt), or make that GPU visible (CUDA_VISIBLE_DEVICES)")
            device = gpus[index]
            tf.config.set_visible_devices(device, "GPU")
            tf.config.experimental.set_memory_growth(device, True)
        tf.config.threading.set_intra_op_parallelism_threads(thread_parameter(params, "intra_op_threads"))
        tf.config.threading.set_inter_op_parallelism_threads(thread_parameter(params, "inter_op_threads"))
        path = os.path.join(args["model_repository"], args["model_version"], SAVEDMODEL_DIRNAME)
        self.fn = load_savedmodel(tf, path).signatures[SAVEDMODEL_SIGNATURE]
        (self.input_name,) = self.fn.structured_input_signature[1].keys()
        self.tf = tf

    def execute(self, requests):
        """Segment the images of every request in one call; a malformed request gets its own INVALID_ARGUMENT."""
        parsed = [input_rows(r, pb_utils, {"x": SEG_INPUT}) for r in requests]
        return triton_responses(batch_execute(parsed, self._compute), pb_utils, SEGMENTER_MODEL)

    def _compute(self, x):
        out = self.fn(**{self.input_name: self.tf.constant(x)})[SAVEDMODEL_OUTPUT].numpy()
        return {SEG_PROB.name: out.astype(np.float32, copy=False)}
