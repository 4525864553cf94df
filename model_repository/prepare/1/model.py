"""Triton adapter for ``prepare``: encoded bytes -> SEG_INPUT, WORK_IMAGE, WORK_SIZE, SCALE."""
import json

import cv2
import numpy as np
import triton_python_backend_utils as pb_utils

from preprocess.contract import IMAGE, SCALE, SEG_INPUT, WORK_IMAGE, WORK_SIZE
from preprocess.errors import InvalidImageError
from preprocess.prepare import prepare_images, stack_prepared


def _error(message):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG))


class TritonPythonModel:
    """Decode, validate and resize every image of every request in one pass."""

    def initialize(self, args):
        threads = json.loads(args["model_config"]).get("parameters", {}).get("opencv_threads", {})
        if threads.get("string_value"):
            cv2.setNumThreads(int(threads["string_value"]))
        self.outputs = (SEG_INPUT.name, WORK_IMAGE.name, WORK_SIZE.name, SCALE.name)

    def execute(self, requests):
        blobs = [pb_utils.get_input_tensor_by_name(r, IMAGE.name).as_numpy().reshape(-1) for r in requests]
        prepared = prepare_images([b for rows in blobs for b in rows])
        responses, offset = [], 0
        for rows in blobs:
            mine, offset = prepared[offset : offset + len(rows)], offset + len(rows)
            bad = [(i, r) for i, r in enumerate(mine) if isinstance(r, InvalidImageError)]
            if bad:
                responses.append(_error("; ".join(f"IMAGE row {i}: {e}" for i, e in bad)))
                continue
            batch = stack_prepared(mine)
            arrays = (batch.seg_input, batch.work_image, batch.work_size, batch.scale)
            responses.append(
                pb_utils.InferenceResponse([pb_utils.Tensor(n, np.ascontiguousarray(a)) for n, a in zip(self.outputs, arrays)])
            )
        return responses
