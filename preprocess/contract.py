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
TRIAGE_MODEL = "triage"
STEP_MODELS = (PREPARE_MODEL, SEGMENTER_MODEL, CROP_MODEL, CLASSIFIER_MODEL, TRIAGE_MODEL)
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
DEFAULT_COLOUR_CONSTANCY = 0.0  # lesion_crop's shades-of-grey norm p; 0 = crops keep the camera's colours
# Triage defaults, used only when the release ships no tuned artifact (and no Triton parameter overrides it).
DEFAULT_REFER_THRESHOLD = 0.20
DEFAULT_OOD_LIMIT = 1.0
# REFER_SCORE sums the calibrated probabilities of the malignant and pre-malignant classes.
REFER_CLASSES = ("MEL", "BCC", "SCC", "AK")
# Parameters (KServe response parameters, strings) the gRPC front of `dermassist serve` adds to every answer, so an
# integrator's audit trail can tell which models made it: the release's name and version as `dermassist models`
# exported it, and a digest of everything served (weights, tuned values, configs, the Python steps' code).
RELEASE_PARAMETER = "dermassist_release"
BUILD_PARAMETER = "dermassist_build"

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
# Melanoma: the class the REFER threshold is chosen for (its sensitivity) and the reports single out.
MELANOMA = "MEL"
MELANOMA_INDEX = CLASS_CODES.index(MELANOMA)


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a model's signature: name, Triton dtype and dims after the batch axis."""

    name: str
    dtype: str
    dims: tuple[int, ...]


# Public contract of the ensemble.
IMAGE = TensorSpec("IMAGE", "TYPE_STRING", (1,))
# A Triton config dtype's name on the wire (KServe's datatype of a gRPC or HTTP tensor).
WIRE_DATATYPES = {"TYPE_STRING": "BYTES", "TYPE_BOOL": "BOOL", "TYPE_FP32": "FP32", "TYPE_UINT8": "UINT8",
                  "TYPE_INT32": "INT32"}
#: IMAGE's datatype on the wire: KServe's name of TYPE_STRING.
IMAGE_WIRE_DATATYPE = WIRE_DATATYPES[IMAGE.dtype]
#: How a refusal names each bad image of a request (``IMAGE row 2: <why>``, joined by "; "): the SDK finds the rows by
#: it, and the guard's front sends them as BAD_ROWS_METADATA too.
BAD_ROW_FORMAT = IMAGE.name + " row {row}: "
#: The trailing metadata key of the front's INVALID_ARGUMENT that names bad images: their rows, e.g. ``0,2``.
BAD_ROWS_METADATA = "dermassist-bad-rows"
PROBABILITIES = TensorSpec("PROBABILITIES", "TYPE_FP32", (NUM_CLASSES,))
MASK = TensorSpec("MASK", "TYPE_UINT8", (SEG_SIZE, SEG_SIZE))
BBOX = TensorSpec("BBOX", "TYPE_INT32", (4,))
LESION_FRACTION = TensorSpec("LESION_FRACTION", "TYPE_FP32", (1,))
# Added output (optional to request): the RGB crop the classifier saw, for display.
CROP = TensorSpec("CROP", "TYPE_UINT8", (CLS_SIZE, CLS_SIZE, 3))
# Triage outputs: the referral decision, its calibrated score, the assessability gate and its note.
REFER = TensorSpec("REFER", "TYPE_BOOL", (1,))
REFER_SCORE = TensorSpec("REFER_SCORE", "TYPE_FP32", (1,))
ASSESSABLE = TensorSpec("ASSESSABLE", "TYPE_BOOL", (1,))
OOD_SCORE = TensorSpec("OOD_SCORE", "TYPE_FP32", (1,))
NOTE = TensorSpec("NOTE", "TYPE_STRING", (1,))
# Added output (optional to request): class activation map of the top class over CROP, 0..255.
CAM = TensorSpec("CAM", "TYPE_UINT8", (CLS_SIZE, CLS_SIZE))

# Internal tensors between the steps.
SEG_INPUT = TensorSpec("SEG_INPUT", "TYPE_FP32", (SEG_SIZE, SEG_SIZE, 3))
WORK_IMAGE = TensorSpec("WORK_IMAGE", "TYPE_UINT8", (-1, -1, 3))
# Valid (height, width) of each WORK_IMAGE row: rows of one request are zero-padded to a common size.
WORK_SIZE = TensorSpec("WORK_SIZE", "TYPE_INT32", (2,))
SCALE = TensorSpec("SCALE", "TYPE_FP32", (1,))
# (height, width) of the original picture as displayed (EXIF orientation applied): the frame BBOX is in. SCALE alone
# cannot give it back exactly (work sides are whole pixels), and a box reaching the edge would fall pixels short.
ORIGINAL_SIZE = TensorSpec("ORIGINAL_SIZE", "TYPE_INT32", (2,))
# Image-quality measures of each row: sharpness, under-exposure, over-exposure, colour and seam (several pictures
# put together), each scaled so >= 1.0 is acceptable (exposure has two sides so the note can say "too dark" or
# "too bright").
QUALITY = TensorSpec("QUALITY", "TYPE_FP32", (5,))
SEG_PROB = TensorSpec("SEG_PROB", "TYPE_FP32", (SEG_SIZE, SEG_SIZE, 1))
CLS_INPUT = TensorSpec("CLS_INPUT", "TYPE_FP32", (3, CLS_SIZE, CLS_SIZE))
# The classifier's and the crop step's answers on their way to triage, which passes them on as the public
# PROBABILITIES, OOD_SCORE and LESION_FRACTION. Triton 2.51 prunes the steps a request does not need, and
# its pruning counts a tensor that is both an ensemble output and a step input twice: a request for
# some of the outputs then fails with "unexpected deadlock". So no public output feeds another step.
CLS_PROBABILITIES = TensorSpec("CLS_PROBABILITIES", "TYPE_FP32", (NUM_CLASSES,))
CLS_OOD_SCORE = TensorSpec("CLS_OOD_SCORE", "TYPE_FP32", (1,))
CROP_LESION_FRACTION = TensorSpec("CROP_LESION_FRACTION", "TYPE_FP32", (1,))
# Share of the segmenter grid covered by the largest lesion-like area other than the one classified (0: none):
# from the crop step to triage, which tells a picture of two lesions (only one of them was assessed).
OTHER_LESION_FRACTION = TensorSpec("OTHER_LESION_FRACTION", "TYPE_FP32", (1,))

# Name Keras gives the output of an exported SavedModel's serving signature, whatever its layer is called.
SAVEDMODEL_OUTPUT = "output_0"

ENSEMBLE_INPUTS = (IMAGE,)
# Outputs are only ever appended; CROP and CAM are sent only when a client asks for them. CROP stays fifth, where it
# was served before the triage outputs were appended after it (ARCHITECTURE.md's table lists it with CAM, near the
# end): moving it would reorder a served output, which the contract forbids. Clients read outputs by name.
ENSEMBLE_OUTPUTS = (PROBABILITIES, MASK, BBOX, LESION_FRACTION, CROP, REFER, REFER_SCORE, ASSESSABLE, OOD_SCORE, NOTE, CAM)
ON_REQUEST_OUTPUTS = (CROP, CAM)

STEP_SIGNATURES: dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]] = {
    PREPARE_MODEL: ((IMAGE,), (SEG_INPUT, WORK_IMAGE, WORK_SIZE, SCALE, ORIGINAL_SIZE, QUALITY)),
    SEGMENTER_MODEL: ((SEG_INPUT,), (SEG_PROB,)),
    CROP_MODEL: ((SEG_PROB, WORK_IMAGE, WORK_SIZE, SCALE, ORIGINAL_SIZE),
                 (CLS_INPUT, MASK, BBOX, LESION_FRACTION, CROP, OTHER_LESION_FRACTION)),
    CLASSIFIER_MODEL: ((CLS_INPUT,), (PROBABILITIES, OOD_SCORE, CAM)),
    TRIAGE_MODEL: ((CLS_PROBABILITIES, CLS_OOD_SCORE, QUALITY, CROP_LESION_FRACTION, OTHER_LESION_FRACTION),
                   (REFER, REFER_SCORE, ASSESSABLE, NOTE, PROBABILITIES, OOD_SCORE, LESION_FRACTION)),
    ENSEMBLE_NAME: (ENSEMBLE_INPUTS, ENSEMBLE_OUTPUTS),
}
# Step outputs the ensemble routes under another tensor name (see CLS_PROBABILITIES above).
ENSEMBLE_ROUTES: dict[tuple[str, str], TensorSpec] = {
    (CLASSIFIER_MODEL, PROBABILITIES.name): CLS_PROBABILITIES,
    (CLASSIFIER_MODEL, OOD_SCORE.name): CLS_OOD_SCORE,
    (CROP_MODEL, LESION_FRACTION.name): CROP_LESION_FRACTION,
}


def ensemble_tensor(model: str, name: str) -> str:
    """Name of the ensemble tensor that carries step ``model``'s output ``name``."""
    route = ENSEMBLE_ROUTES.get((model, name))
    return route.name if route is not None else name

NUMPY_DTYPES = {
    "TYPE_STRING": "object",
    "TYPE_BOOL": "bool",
    "TYPE_FP32": "float32",
    "TYPE_UINT8": "uint8",
    "TYPE_INT32": "int32",
}


def libtorch_name(name: str, index: int = 0) -> str:
    """Tensor name the native PyTorch backend needs: ``<name>__<index>``, the index being the position of
    the tensor among the module's inputs or outputs."""
    return f"{name}__{index}"
