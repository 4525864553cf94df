"""The DermAssist tensor contract: names, dtypes, shapes, classes and image constants.

This module is the single source of truth for everything ARCHITECTURE.md fixes. Triton configs,
``model.py`` adapters, training and tests read these values; nothing else restates them.
"""
from __future__ import annotations

from dataclasses import dataclass

ENSEMBLE_NAME = "dermassist"
PREPARE_MODEL = "prepare"
SEGMENTER_MODEL = "lesion_segmenter"
CROP_MODEL = "lesion_crop"
CLASSIFIER_MODEL = "lesion_classifier"
STEP_MODELS = (PREPARE_MODEL, SEGMENTER_MODEL, CROP_MODEL, CLASSIFIER_MODEL)
ALL_MODELS = STEP_MODELS + (ENSEMBLE_NAME,)

MAX_BATCH_SIZE = 32

SEG_SIZE = 256
CLS_SIZE = 224
WORK_MAX_SIDE = 1024
# A large JPEG is decoded at 1/2, 1/4 or 1/8 scale while its long side stays at least this.
REDUCED_DECODE_MIN_SIDE = 512
MIN_IMAGE_SIDE = 32
MAX_IMAGE_PIXELS = 50_000_000

DEFAULT_THRESHOLD = 0.35
DEFAULT_MARGIN = 0.10

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LesionClass:
    """One diagnosis class: index, short code, display name and source-dataset labels."""

    index: int
    code: str
    name: str
    ham_dx: str | None
    isic2019_column: str


CLASSES: tuple[LesionClass, ...] = (
    LesionClass(0, "AK", "Actinic keratosis", "akiec", "AK"),
    LesionClass(1, "BCC", "Basal cell carcinoma", "bcc", "BCC"),
    LesionClass(2, "DF", "Dermatofibroma", "df", "DF"),
    LesionClass(3, "MEL", "Melanoma", "mel", "MEL"),
    LesionClass(4, "NV", "Nevus", "nv", "NV"),
    LesionClass(5, "BKL", "Pigmented benign keratosis", "bkl", "BKL"),
    LesionClass(6, "SCC", "Squamous cell carcinoma", None, "SCC"),
    LesionClass(7, "VASC", "Vascular lesion", "vasc", "VASC"),
)
NUM_CLASSES = len(CLASSES)
CLASS_CODES = tuple(c.code for c in CLASSES)
CLASS_NAMES = tuple(c.name for c in CLASSES)


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a model's signature: name, Triton dtype and dims after the batch axis."""

    name: str
    dtype: str
    dims: tuple[int, ...]


# Public contract of the ensemble.
IMAGE = TensorSpec("IMAGE", "TYPE_STRING", (1,))
PROBABILITIES = TensorSpec("PROBABILITIES", "TYPE_FP32", (NUM_CLASSES,))
MASK = TensorSpec("MASK", "TYPE_UINT8", (SEG_SIZE, SEG_SIZE))
BBOX = TensorSpec("BBOX", "TYPE_INT32", (4,))
LESION_FRACTION = TensorSpec("LESION_FRACTION", "TYPE_FP32", (1,))
# Added output (optional to request): the RGB crop the classifier saw, for display.
CROP = TensorSpec("CROP", "TYPE_UINT8", (CLS_SIZE, CLS_SIZE, 3))

# Internal tensors between the steps.
SEG_INPUT = TensorSpec("SEG_INPUT", "TYPE_FP32", (SEG_SIZE, SEG_SIZE, 3))
WORK_IMAGE = TensorSpec("WORK_IMAGE", "TYPE_UINT8", (-1, -1, 3))
# Valid (height, width) of each WORK_IMAGE row: rows of one request are zero-padded to a common size.
WORK_SIZE = TensorSpec("WORK_SIZE", "TYPE_INT32", (2,))
SCALE = TensorSpec("SCALE", "TYPE_FP32", (1,))
SEG_PROB = TensorSpec("SEG_PROB", "TYPE_FP32", (SEG_SIZE, SEG_SIZE, 1))
CLS_INPUT = TensorSpec("CLS_INPUT", "TYPE_FP32", (3, CLS_SIZE, CLS_SIZE))

ENSEMBLE_INPUTS = (IMAGE,)
ENSEMBLE_OUTPUTS = (PROBABILITIES, MASK, BBOX, LESION_FRACTION, CROP)

STEP_SIGNATURES: dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]] = {
    PREPARE_MODEL: ((IMAGE,), (SEG_INPUT, WORK_IMAGE, WORK_SIZE, SCALE)),
    SEGMENTER_MODEL: ((SEG_INPUT,), (SEG_PROB,)),
    CROP_MODEL: ((SEG_PROB, WORK_IMAGE, WORK_SIZE, SCALE), (CLS_INPUT, MASK, BBOX, LESION_FRACTION, CROP)),
    CLASSIFIER_MODEL: ((CLS_INPUT,), (PROBABILITIES,)),
    ENSEMBLE_NAME: (ENSEMBLE_INPUTS, ENSEMBLE_OUTPUTS),
}

NUMPY_DTYPES = {
    "TYPE_STRING": "object",
    "TYPE_FP32": "float32",
    "TYPE_UINT8": "uint8",
    "TYPE_INT32": "int32",
}


def libtorch_name(name: str) -> str:
    """Tensor name the native PyTorch backend needs (``<name>__<index>``, one input/output)."""
    return f"{name}__0"
