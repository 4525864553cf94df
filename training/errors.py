"""Exceptions of the ``training`` package: one root, narrow subclasses.

Messages name the object, what was expected, what was found and how to fix it.
"""
from __future__ import annotations

import math

from dermassist.base.errors import DermAssistError


class TrainingError(DermAssistError):
    """Root of every error raised by ``training``."""


class DatasetError(TrainingError):
    """A dataset folder cannot be read as one of the accepted layouts."""


class MissingFolderError(DatasetError):
    """A folder or file the layout requires does not exist."""


class UnknownLayoutError(DatasetError):
    """A folder matches none of the accepted dataset layouts."""


class MaskMismatchError(DatasetError):
    """An image has no mask, a mask has no image, or a mask differs in size from its image."""


class MissingImageError(DatasetError):
    """A ground truth lists an image (or its mask) that is not on disk."""


class UnreadableImageError(DatasetError):
    """An image or mask file of a dataset cannot be decoded (truncated, not an image)."""


class DuplicateImageError(DatasetError):
    """One image id names two files, or two label rows that disagree."""


class UnknownLabelError(DatasetError):
    """A diagnosis code or one-hot row does not map to a contract class."""


class LabelEncodingError(UnknownLabelError):
    """A label CSV is not in UTF-8 (e.g. saved by Excel in the Windows code page)."""


class EmptyDatasetError(DatasetError):
    """A dataset (or one split of it) holds no usable sample."""


class SplitError(TrainingError):
    """A split cannot be made with the requested fractions."""


class TrainingConfigError(TrainingError):
    """A training setting (flag, environment variable or default) is invalid."""


class ResumeError(TrainingConfigError):
    """``--resume`` cannot continue a run: its checkpoint is missing, unreadable, or of another config or data."""


class StageError(TrainingError):
    """A pipeline stage subprocess failed; the message carries its log tail."""


class ExportError(TrainingError):
    """A model could not be exported, or the exported copy disagrees with the eager model."""


class ModelArchitectureError(ExportError):
    """A model handed to export/import is not the architecture the contract expects."""


class ImportModelError(TrainingError):
    """A model file handed to ``dermassist import`` is missing or not the expected architecture."""


def check_setting_range(value: float, names: str, lo: float, hi: float = math.inf, *, lo_open: bool = False,
                        hi_open: bool = False, meaning: str = "", default: object = None) -> None:
    """Refuse (TrainingConfigError) a float setting that is not a finite number in its range; ``names`` is how an
    operator sets it (``"--lr / DERMASSIST_CLS_LR"``), ``meaning`` what it is, ``default`` the value to suggest."""
    in_range = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and in_range:
        return
    if math.isinf(hi):
        bounds = f"{'>' if lo_open else '>='} {lo:g}"
    else:
        bounds = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    fix = f"pass a value {bounds}" + (f", e.g. the default {default:g}" if isinstance(default, (int, float)) else "")
    raise TrainingConfigError(f"{names} must be a finite number {bounds}{f' ({meaning})' if meaning else ''}, "
                              f"got {value!r}; {fix}")
