"""The public contract of the ``dermassist`` ensemble as the client sees it (names, classes, sizes).

A client-side copy of the server's contract: the client never imports the server packages. A test
in ``tests/client`` asserts it equals ``preprocess.contract``.
"""
from __future__ import annotations

from dataclasses import dataclass

MODEL_NAME = "dermassist"
MAX_BATCH_SIZE = 32
MAX_IMAGE_PIXELS = 50_000_000  # the largest picture the server decodes (width x height as stored)
SEG_SIZE = 256
CROP_SIZE = 224

INPUT_IMAGE = "IMAGE"
INPUT_DATATYPE = "BYTES"  # KServe's name of the contract's TYPE_STRING
OUTPUT_PROBABILITIES = "PROBABILITIES"
OUTPUT_MASK = "MASK"
OUTPUT_BBOX = "BBOX"
OUTPUT_LESION_FRACTION = "LESION_FRACTION"
OUTPUT_CROP = "CROP"
OUTPUT_REFER = "REFER"
OUTPUT_REFER_SCORE = "REFER_SCORE"
OUTPUT_ASSESSABLE = "ASSESSABLE"
OUTPUT_OOD_SCORE = "OOD_SCORE"
OUTPUT_NOTE = "NOTE"
OUTPUT_CAM = "CAM"
CORE_OUTPUTS = (OUTPUT_PROBABILITIES, OUTPUT_MASK, OUTPUT_BBOX, OUTPUT_LESION_FRACTION)
TRIAGE_OUTPUTS = (OUTPUT_REFER, OUTPUT_REFER_SCORE, OUTPUT_ASSESSABLE, OUTPUT_OOD_SCORE, OUTPUT_NOTE)
IMAGE_OUTPUTS = (OUTPUT_CROP, OUTPUT_CAM)  # sent only when asked for: the crop and its class activation map
# Response parameters `dermassist serve` adds to every answer: the release that made it and a digest of what is served.
RELEASE_PARAMETER = "dermassist_release"
BUILD_PARAMETER = "dermassist_build"


@dataclass(frozen=True)
class LesionClass:
    """One diagnosis class: index in ``PROBABILITIES``, short code and display name."""

    index: int
    code: str
    name: str


CLASSES: tuple[LesionClass, ...] = (
    LesionClass(0, "AK", "Actinic keratosis"),
    LesionClass(1, "BCC", "Basal cell carcinoma"),
    LesionClass(2, "DF", "Dermatofibroma"),
    LesionClass(3, "MEL", "Melanoma"),
    LesionClass(4, "NV", "Nevus"),
    LesionClass(5, "BKL", "Pigmented benign keratosis"),
    LesionClass(6, "SCC", "Squamous cell carcinoma"),
    LesionClass(7, "VASC", "Vascular lesion"),
)
CLASS_CODES = tuple(c.code for c in CLASSES)
# The classes whose calibrated probabilities add up to REFER_SCORE, in the order the score's meaning names them.
REFER_CLASSES = ("MEL", "BCC", "SCC", "AK")
