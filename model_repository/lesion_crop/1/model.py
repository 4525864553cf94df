"""Triton adapter for ``lesion_crop``: SEG_PROB + WORK_IMAGE -> CLS_INPUT, MASK, BBOX, LESION_FRACTION, CROP."""
import json

import cv2
import numpy as np
import triton_python_backend_utils as pb_utils

from preprocess.contract import (
    BBOX, CLS_INPUT, CROP, DEFAULT_MARGIN, DEFAULT_THRESHOLD, LESION_FRACTION, MASK, SCALE, SEG_PROB, SEG_SIZE,
    WORK_IMAGE, WORK_SIZE,
)
from preprocess.crop import CropParams, crop_batch
from preprocess.errors import PreprocessError


def _error(message):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG))


def _parameter(config, name, default):
    return float(config.get("parameters", {}).get(name, {}).get("string_value", default))


def _rows(request):
    """Validated per-row inputs of one request: (prob, [work views], scales)."""
    prob = pb_utils.get_input_tensor_by_name(request, SEG_PROB.name).as_numpy()
    work = pb_utils.get_input_tensor_by_name(request, WORK_IMAGE.name).as_numpy()
    size = pb_utils.get_input_tensor_by_name(request, WORK_SIZE.name).as_numpy().reshape(-1, 2)
    scale = pb_utils.get_input_tensor_by_name(request, SCALE.name).as_numpy().reshape(-1)
    if not (len(prob) == len(work) == len(size) == len(scale)):
        raise PreprocessError(f"batch sizes differ: SEG_PROB {len(prob)}, WORK_IMAGE {len(work)}, "
                              f"WORK_SIZE {len(size)}, SCALE {len(scale)}")
    if np.any(size < 1) or np.any(size[:, 0] > work.shape[1]) or np.any(size[:, 1] > work.shape[2]):
        raise PreprocessError(f"WORK_SIZE {size.tolist()} exceeds WORK_IMAGE {list(work.shape[1:3])} or is empty")
    return prob, [work[i, : h, : w] for i, (h, w) in enumerate(size)], scale


class TritonPythonModel:
    """Crop every row of every request in one batch call; a malformed request fails alone."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        if "opencv_threads" in config.get("parameters", {}):
            cv2.setNumThreads(int(_parameter(config, "opencv_threads", 0)))
        self.params = CropParams(_parameter(config, "threshold", DEFAULT_THRESHOLD), _parameter(config, "margin", DEFAULT_MARGIN))
        self.outputs = (CLS_INPUT.name, MASK.name, BBOX.name, LESION_FRACTION.name, CROP.name)

    def execute(self, requests):
        parsed = []
        for request in requests:
            try:
                parsed.append(_rows(request))
            except PreprocessError as e:
                parsed.append(e)
        good = [p for p in parsed if not isinstance(p, Exception)]
        result = None
        if good:
            result = crop_batch(
                np.concatenate([p[0] for p in good]).reshape(-1, SEG_SIZE, SEG_SIZE),
                [view for p in good for view in p[1]],
                np.concatenate([p[2] for p in good]),
                self.params,
            )
        responses, offset = [], 0
        for p in parsed:
            if isinstance(p, Exception):
                responses.append(_error(f"lesion_crop: {p}"))
                continue
            n = len(p[1])
            arrays = (result.cls_input, result.mask, result.bbox, result.lesion_fraction, result.crop)
            responses.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor(name, np.ascontiguousarray(a[offset : offset + n])) for name, a in zip(self.outputs, arrays)]
            ))
            offset += n
        return responses
