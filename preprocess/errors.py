"""Exceptions of the ``preprocess`` package: one root, narrow subclasses."""
from __future__ import annotations


class PreprocessError(ValueError):
    """Root of every error raised by ``preprocess``."""


class InvalidImageError(PreprocessError):
    """The encoded input cannot be served; the message says why and what to send instead."""


class EmptyImageError(InvalidImageError):
    """The input holds no bytes."""


class NotAnImageError(InvalidImageError):
    """The bytes are not a JPEG, PNG, BMP or TIFF image."""


class UnsupportedFormatError(NotAnImageError):
    """The bytes are a known format that is not accepted (WebP, GIF, HEIC, JPEG 2000, DICOM, PDF)."""


class TruncatedImageError(InvalidImageError):
    """The bytes start like an image but the file is cut short or corrupt."""


class MultiPictureImageError(InvalidImageError):
    """The file holds more than one full-size picture (a multi-page TIFF, an animated PNG)."""


class ImageTooSmallError(InvalidImageError):
    """A side is below the minimum the pipeline can segment."""


class ImageTooLargeError(InvalidImageError):
    """The header declares more pixels than the service accepts."""


class InvalidTensorError(PreprocessError):
    """A tensor handed to the image maths has the wrong shape, dtype or range."""


class StepSettingsError(PreprocessError):
    """A step's setting is invalid: a Triton config parameter, a value of its tuned-values artifact, or a value its
    parameters class refuses (a step that cannot start, never a bad request)."""


class ColourProfileError(InvalidImageError):
    """The image embeds an ICC colour profile that cannot be read, so its colours cannot be interpreted."""
