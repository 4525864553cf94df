"""Triton adapter for ``lesion_crop``: SEG_PROB + WORK_IMAGE (its size, scale, the original's size) -> CLS_INPUT, MASK,
BBOX, LESION_FRACTION, CROP, OTHER_LESION_FRACTION."""
import json
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from preprocess.batching import Rows, batch_execute, input_rows, triton_responses
from preprocess.contract import (
    BBOX,
    CLS_INPUT,
    CROP,
    CROP_MODEL,
    LESION_FRACTION,
    MASK,
    ORIGINAL_SIZE,
    OTHER_LESION_FRACTION,
    SCALE,
    SEG_PROB,
    SEG_SIZE,
    WORK_IMAGE,
    WORK_SIZE,
)
from preprocess.crop import CropParams, crop_batch
from preprocess.errors import PreprocessError
from preprocess.params import set_opencv_threads, step_params
from preprocess.prepare import unpad_work_images

INPUTS = {"prob": SEG_PROB, "work": WORK_IMAGE, "size": WORK_SIZE, "scale": SCALE, "original": ORIGINAL_SIZE}


def _rows(request: Any) -> dict[str, Rows] | PreprocessError:
    """Per-row inputs of one request: probability maps, each work image out of its padding, scales, original sizes;
    or the PreprocessError that says which input is malformed (row counts across inputs: ``input_rows``)."""
    rows = input_rows(request, pb_utils, INPUTS)
    if isinstance(rows, PreprocessError):
        return rows
    try:
        work = unpad_work_images(rows["work"], rows["size"])
    except PreprocessError as e:
        return e
    return {"prob": rows["prob"].reshape(-1, SEG_SIZE, SEG_SIZE), "work": work, "scale": rows["scale"].reshape(-1),
            "original_sizes": rows["original"]}


class TritonPythonModel:
    """Crop every row of every request in one batch call; a malformed request fails alone."""

    def initialize(self, args: dict[str, str]) -> None:
        """Read the crop settings once: config parameter > the version's tuned.json > default."""
        config = json.loads(args["model_config"])
        set_opencv_threads(config)
        self.params = step_params(CropParams, args, config)

    def execute(self, requests: list[Any]) -> list[Any]:
        """Crop every row of every request in one call; a malformed request gets its own INVALID_ARGUMENT."""
        return triton_responses(batch_execute([_rows(r) for r in requests], self._compute), pb_utils, CROP_MODEL)

    def _compute(self, prob: np.ndarray, work: list[np.ndarray], scale: np.ndarray, original_sizes: np.ndarray) -> dict[str, Any]:
        out = crop_batch(prob, work, scale, self.params, original_sizes)
        return {CLS_INPUT.name: out.cls_input, MASK.name: out.mask, BBOX.name: out.bbox,
                LESION_FRACTION.name: out.lesion_fraction, CROP.name: out.crop,
                OTHER_LESION_FRACTION.name: out.other_fraction}
