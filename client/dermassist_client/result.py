"""``LesionResult``: one image's answer from the ensemble, frozen and read-only."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image

from .classes import (
    CLASSES,
    OUTPUT_ASSESSABLE,
    OUTPUT_BBOX,
    OUTPUT_CAM,
    OUTPUT_CROP,
    OUTPUT_LESION_FRACTION,
    OUTPUT_MASK,
    OUTPUT_NOTE,
    OUTPUT_OOD_SCORE,
    OUTPUT_PROBABILITIES,
    OUTPUT_REFER,
    OUTPUT_REFER_SCORE,
    LesionClass,
)
from .errors import ResultError


@dataclass(frozen=True)
class BBox:
    """Lesion box in original image pixels; ``x_max``/``y_max`` are exclusive."""

    x_min: int
    y_min: int
    x_max: int
    y_max: int

    @property
    def width(self) -> int:
        """Box width in pixels."""
        return self.x_max - self.x_min

    @property
    def height(self) -> int:
        """Box height in pixels."""
        return self.y_max - self.y_min

    def as_tuple(self) -> tuple[int, int, int, int]:
        """(x_min, y_min, x_max, y_max)."""
        return (self.x_min, self.y_min, self.x_max, self.y_max)


@dataclass(frozen=True, eq=False)
class LesionResult:
    """What the ensemble said about one image.

    ``top_class`` is the most probable of the eight classes, always set; ``label`` is the diagnosis: that class when
    one is given (``diagnosis_given``), None when the image was not assessable or no lesion was found, as the JSON's
    ``label``. ``original_size`` is (width, height) in pixels as displayed, PIL's order.
    ``mask`` is at segmenter resolution (256x256, 0/255); ``mask_at_original_size()`` resizes it.
    ``lesion_fraction`` 0 means no lesion was found and the whole image was classified.
    The triage fields (``refer``, ``refer_score``, ``assessable``, ``ood_score``, ``note``) are None
    (``note`` empty) only in a result not made from a served answer (a server that predates them refuses the SDK's
    request: ServerError); ``crop`` and ``cam`` only when asked for.
    ``request_id`` is the id the SDK sent with the request (all images of one request share it):
    the server's audit trail records it, so an answer can be traced end to end.
    ``model_release`` and ``model_build`` say which models made the answer (``dermassist serve`` sends them with every
    answer, and its audit line records them): the exported release's ``NAME version V`` (or where imported models
    came from), and ``sha256:`` and 16 hex digits of the served files; ``model_version`` is the Triton version,
    "1" for every export. None from a server that sends neither (a bare tritonserver).
    """

    top_class: LesionClass
    probabilities: Mapping[str, float]
    bbox: BBox
    lesion_fraction: float
    mask: np.ndarray
    original_size: tuple[int, int] | None
    model_name: str
    model_version: str
    crop: np.ndarray | None = None
    refer: bool | None = None
    refer_score: float | None = None
    assessable: bool | None = None
    ood_score: float | None = None
    note: str = ""
    cam: np.ndarray | None = None
    request_id: str = ""
    model_release: str | None = None
    model_build: str | None = None

    @property
    def lesion_found(self) -> bool:
        """Whether the segmenter found a lesion (otherwise the whole image was classified)."""
        return self.lesion_fraction > 0.0

    @property
    def label(self) -> LesionClass | None:
        """The diagnosis: the most probable class when ``diagnosis_given``, else None (``top_class`` is always set)."""
        return self.top_class if self.diagnosis_given else None

    @property
    def diagnosis_given(self) -> bool:
        """Whether the answer stands as a diagnosis: the image was assessable (or the server predates triage) and a
        lesion was found. Reports code the most likely class only then; the probabilities are sent either way."""
        return self.assessable is not False and self.lesion_found

    def mask_at_original_size(self) -> np.ndarray:
        """The mask resized (nearest neighbour) to the original image size: a (height, width) uint8 array of 0/255."""
        if self.original_size is None:
            raise ResultError(
                "the original image size is unknown (its header could not be read client-side); "
                "pass a path, an array or a PIL image, or resize `mask` yourself"
            )
        # Image.NEAREST: every Pillow this client supports (>= 9) has it; Image.Resampling came in 9.1
        resized = Image.fromarray(self.mask).resize(self.original_size, Image.NEAREST)  # type: ignore[attr-defined]
        return np.asarray(resized)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no mask or crop pixels). ``label`` and ``label_name`` are the diagnosis, None when
        none is given (``diagnosis_given`` false: not assessable, or no lesion); ``top_class`` and ``top_class_name``
        always name the most probable class, which is a diagnosis only when ``diagnosis_given``."""
        label = self.label
        return {
            "label": label.code if label else None,
            "label_name": label.name if label else None,
            "top_class": self.top_class.code,
            "top_class_name": self.top_class.name,
            "probabilities": dict(self.probabilities),
            "bbox": list(self.bbox.as_tuple()),
            "lesion_fraction": self.lesion_fraction,
            "lesion_found": self.lesion_found,
            "diagnosis_given": self.diagnosis_given,
            "original_size": list(self.original_size) if self.original_size else None,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_release": self.model_release,
            "model_build": self.model_build,
            "refer": self.refer,
            "refer_score": self.refer_score,
            "assessable": self.assessable,
            "ood_score": self.ood_score,
            "note": self.note,
            "request_id": self.request_id,
        }


REPORTED_DECIMALS = 6  # the served figures are float32 (about 7 significant digits): reports carry 6 decimals


def reported(value: float) -> float:
    """A served figure as the SR and the FHIR Bundle carry it: 0.62, not float32's 0.62000000476837."""
    return round(float(value), REPORTED_DECIMALS)


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


def _scalar(outputs: Mapping[str, np.ndarray], name: str, row: int, cast: type) -> Any:
    """One row's single value of an optional output, cast; None when the server did not send it."""
    array = outputs.get(name)
    if array is None:
        return None
    value = np.asarray(array[row]).reshape(-1)[0]
    if cast is str:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return cast(value)


def build_result(
    outputs: Mapping[str, np.ndarray], row: int, original_size: tuple[int, int] | None,
    model_name: str, model_version: str, request_id: str = "", release: str | None = None, build: str | None = None,
) -> LesionResult:
    """Build the result of batch row ``row`` from the ensemble's output arrays."""
    probs = np.asarray(outputs[OUTPUT_PROBABILITIES][row], dtype=np.float64)
    if probs.shape != (len(CLASSES),):
        raise ResultError(f"PROBABILITIES row must have {len(CLASSES)} values, got shape {probs.shape}")
    bbox = BBox(*(int(v) for v in outputs[OUTPUT_BBOX][row]))
    crop, cam = outputs.get(OUTPUT_CROP), outputs.get(OUTPUT_CAM)
    return LesionResult(
        top_class=CLASSES[int(np.argmax(probs))],
        probabilities=MappingProxyType({c.code: float(probs[c.index]) for c in CLASSES}),
        bbox=bbox,
        lesion_fraction=float(outputs[OUTPUT_LESION_FRACTION][row][0]),
        mask=_read_only(outputs[OUTPUT_MASK][row]),
        original_size=original_size,
        model_name=model_name,
        model_version=model_version,
        crop=None if crop is None else _read_only(crop[row]),
        refer=_scalar(outputs, OUTPUT_REFER, row, bool),
        refer_score=_scalar(outputs, OUTPUT_REFER_SCORE, row, float),
        assessable=_scalar(outputs, OUTPUT_ASSESSABLE, row, bool),
        ood_score=_scalar(outputs, OUTPUT_OOD_SCORE, row, float),
        note=_scalar(outputs, OUTPUT_NOTE, row, str) or "",
        cam=None if cam is None else _read_only(cam[row]),
        request_id=request_id,
        model_release=release,
        model_build=build,
    )
