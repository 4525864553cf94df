"""The canary: one real inference through the public ensemble, judged on its answer."""
from __future__ import annotations

import math
import struct

import numpy as np
from tritonclient.grpc import service_pb2

from preprocess.contract import ENSEMBLE_NAME, IMAGE, IMAGE_WIRE_DATATYPE, NUM_CLASSES, PROBABILITIES

from ..base.bytes_tensor import encode

CANARY_SIDE = 64
_SKIN_RGB, _LESION_RGB = (205, 160, 140), (70, 45, 35)


def canary_image(side: int = CANARY_SIDE) -> bytes:
    """A small 24-bit BMP: skin-coloured with a dark round lesion in the middle (no patient data)."""
    yy, xx = np.mgrid[0:side, 0:side]
    lesion = (yy - side / 2) ** 2 + (xx - side / 2) ** 2 <= (side / 4) ** 2
    rgb = np.where(lesion[..., None], np.array(_LESION_RGB, np.uint8), np.array(_SKIN_RGB, np.uint8))
    rows = rgb[::-1, :, ::-1].astype(np.uint8)  # BMP: bottom-up rows, BGR
    pad = (-side * 3) % 4
    pixels = b"".join(row.tobytes() + b"\0" * pad for row in rows)
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def canary_request(request_id: str, image: bytes | None = None) -> service_pb2.ModelInferRequest:
    """A one-row request of the ensemble asking for PROBABILITIES."""
    request = service_pb2.ModelInferRequest(model_name=ENSEMBLE_NAME, id=request_id)
    request.inputs.add(name=IMAGE.name, datatype=IMAGE_WIRE_DATATYPE, shape=[1, 1])
    request.outputs.add(name=PROBABILITIES.name)
    request.raw_input_contents.append(encode([canary_image() if image is None else image]))
    return request


def check_canary_answer(response: service_pb2.ModelInferResponse) -> str | None:
    """None when the answer is a valid probability vector, else what is wrong with it."""
    for index, output in enumerate(response.outputs):
        if output.name != PROBABILITIES.name:
            continue
        if index >= len(response.raw_output_contents):
            return f"{PROBABILITIES.name} came without raw contents"
        probs = np.frombuffer(response.raw_output_contents[index], dtype=np.float32)
        if probs.size != NUM_CLASSES:
            return f"{PROBABILITIES.name} has {probs.size} values, expected {NUM_CLASSES}"
        total = float(probs.sum())
        if not np.all(np.isfinite(probs)) or np.any(probs < 0) or not math.isclose(total, 1.0, abs_tol=1e-3):
            return f"{PROBABILITIES.name} is not a probability vector (sum {total:.4f})"
        return None
    return f"the answer has no {PROBABILITIES.name}"
