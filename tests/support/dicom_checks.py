"""dciodvfy (Debian's dicom3tools) as a checker, and synthetic results for the DICOM and FHIR unit tests."""
from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.uid import SegmentationStorage

from dermassist_client.classes import CLASSES
from dermassist_client.result import BBox, LesionResult

#: The only dciodvfy warning DermAssist's outputs carry: its private coding scheme (declared in the SR's
#: Coding Scheme Identification Sequence, which dciodvfy does not consult).
EXPECTED_WARNINGS = frozenset({
    "Warning - Unrecognized defined term <99DERMASSIST> for value 1 of attribute <Coding Scheme Designator>",
})


@dataclass(frozen=True)
class Verdict:
    """dciodvfy's errors and distinct warnings for one file."""

    errors: list[str]
    warnings: set[str]
    output: str


def dciodvfy(path: Path) -> Verdict:
    """Run dciodvfy on ``path``."""
    binary = shutil.which("dciodvfy")
    if binary is None:
        raise FileNotFoundError("dciodvfy not found: apt-get install -y --no-install-recommends dicom3tools")
    done = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=120)
    lines = (done.stdout + done.stderr).splitlines()
    return Verdict(errors=[line for line in lines if line.startswith("Error")],
                   warnings={line for line in lines if line.startswith("Warning")}, output=done.stdout + done.stderr)


def ellipse_mask(size: int = 256, centre: tuple[float, float] = (0.45, 0.55), radii: tuple[float, float] = (0.2, 0.3)):
    """A 0/255 uint8 elliptical lesion mask at segmenter resolution."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    inside = ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2 <= 1
    return np.where(inside, 255, 0).astype(np.uint8)


def picture_size(photo: Any) -> tuple[int, int]:
    """(width, height) of what a DICOM instance sends the service (``DicomImage.for_service``): a PIL image, or the
    bytes of a JPEG frame."""
    if isinstance(photo, (bytes, bytearray)):
        with Image.open(io.BytesIO(photo)) as im:
            return im.size
    return photo.size


def synthetic_result(original_size: tuple[int, int], top: str = "MEL", triage: bool = True, lesion: bool = True,
                     note: str = "image too blurred: sharpness 0.4 of the minimum", assessable: bool = False,
                     ) -> LesionResult:
    """A result as the served ensemble gives it, with the triage outputs (not assessable unless ``assessable``,
    then with no note) or without (an older server)."""
    probs = np.full(len(CLASSES), 0.02)
    probs[[c.code for c in CLASSES].index(top)] = 1.0 - 0.02 * (len(CLASSES) - 1)
    mask = ellipse_mask() if lesion else np.zeros((256, 256), np.uint8)
    fraction = float((mask > 0).mean()) if lesion else 0.0
    width, height = original_size
    return LesionResult(
        top_class=next(c for c in CLASSES if c.code == top),
        probabilities=MappingProxyType({c.code: float(probs[c.index]) for c in CLASSES}),
        bbox=BBox(int(0.25 * width), int(0.25 * height), int(0.85 * width), int(0.65 * height)) if lesion
        else BBox(0, 0, width, height),
        lesion_fraction=fraction, mask=mask, original_size=original_size,
        model_name="dermassist", model_version="3",
        refer=True if triage else None, refer_score=0.81 if triage else None,
        assessable=assessable if triage else None, ood_score=0.62 if triage else None,
        note=note if triage and not assessable else "",
    )


def check_seg_and_sr(seg_path: Path, sr_path: Path, size: tuple[int, int], result: LesionResult) -> pydicom.Dataset:
    """Both files pass dciodvfy (but for EXPECTED_WARNINGS) and the SEG holds the served mask resized to the
    source image's ``size`` (width, height); returns the SEG read back."""
    for path in (seg_path, sr_path):
        verdict = dciodvfy(path)
        assert verdict.errors == [], verdict.output
        assert verdict.warnings <= EXPECTED_WARNINGS, verdict.warnings - EXPECTED_WARNINGS
    seg = pydicom.dcmread(seg_path)
    expected = np.asarray(Image.fromarray(result.mask).resize(size, Image.NEAREST)) > 0
    assert seg.SOPClassUID == SegmentationStorage and expected.any()
    assert np.array_equal(seg.pixel_array.astype(bool), expected)
    return seg
