"""DermAssist image maths and tensor contract (numpy and OpenCV only, batch in, batch out)."""
from .contract import CLASS_CODES, CLASS_NAMES, CLASSES, NUM_CLASSES
from .crop import CropBatch, CropParams, crop_batch
from .decode import decode, decode_image
from .errors import InvalidImageError, InvalidTensorError, PreprocessError, StepSettingsError
from .prepare import PreparedBatch, PreparedImage, prepare_image, prepare_images, stack_prepared

__all__ = [
    "CLASSES", "CLASS_CODES", "CLASS_NAMES", "NUM_CLASSES",
    "CropBatch", "CropParams", "crop_batch",
    "decode", "decode_image",
    "InvalidImageError", "InvalidTensorError", "PreprocessError", "StepSettingsError",
    "PreparedBatch", "PreparedImage", "prepare_image", "prepare_images", "stack_prepared",
]
