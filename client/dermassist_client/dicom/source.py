"""Read a dermoscopy (or any 8-bit RGB photographic) DICOM instance into pixels plus its identifiers."""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from .errors import NoPixelDataError, NotAPhotographError, UnreadableDicomError, UnsupportedTransferSyntaxError

DicomInput = Union[str, os.PathLike, bytes, bytearray, Dataset]

#: Photometric interpretations of a colour photograph; YBR forms are converted to RGB on decoding.
COLOUR_PHOTOMETRICS = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"})
PHOTOGRAPH_KINDS = "dermoscopy (modality DMS), VL photographic or secondary-capture colour images"


@dataclass(frozen=True, eq=False)
class DicomImage:
    """One DICOM photograph: its dataset (identifiers, geometry) and its pixels as HxWx3 uint8 RGB."""

    dataset: Dataset
    pixels: np.ndarray
    name: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels: (Columns, Rows)."""
        return int(self.dataset.Columns), int(self.dataset.Rows)

    @property
    def pixel_spacing_mm(self) -> tuple[float, float] | None:
        """(row spacing, column spacing) in mm from Pixel Spacing, or None when the image is not calibrated."""
        spacing = self.dataset.get("PixelSpacing")
        if not spacing or len(spacing) != 2 or min(float(v) for v in spacing) <= 0:
            return None
        return float(spacing[0]), float(spacing[1])

    @property
    def icc_profile(self) -> bytes | None:
        """The instance's ICC Profile (0028,2000): what its RGB values mean, or None when it has none."""
        profile = self.dataset.get("ICCProfile")
        return bytes(profile) if profile else None

    def photograph(self) -> Image.Image:
        """The pixels as a PIL image carrying the ICC profile, so the service reads its colours as sRGB."""
        image, profile = Image.fromarray(self.pixels), self.icc_profile
        if profile:
            image.info["icc_profile"] = profile
        return image

    @property
    def transfer_syntax(self) -> UID:
        """Transfer syntax the pixels arrived in."""
        return UID(self.dataset.file_meta.TransferSyntaxUID)


def describe(ds: Dataset) -> str:
    """A short description of an instance for messages: modality, SOP class name and SOP instance UID."""
    sop_class = ds.get("SOPClassUID")
    kind = UID(sop_class).name if sop_class else "unknown SOP class"
    return f"{ds.get('Modality') or 'no modality'} {kind} instance {ds.get('SOPInstanceUID', '(no SOP Instance UID)')}"


def read_dicom(source: DicomInput, name: str | None = None) -> DicomImage:
    """Read and check one DICOM photograph from a path, bytes or a dataset (raises a ``DicomInputError``)."""
    if isinstance(source, Dataset):
        return image_from_dataset(source, name or describe(source))
    if isinstance(source, (bytes, bytearray)):
        label = name or f"<{len(source)} bytes of DICOM>"
        return image_from_dataset(_parse(io.BytesIO(bytes(source)), label), label)
    label = name or str(source)
    return image_from_dataset(_parse(Path(source), label), label)


def _parse(source: io.BytesIO | Path, label: str) -> Dataset:
    try:
        return pydicom.dcmread(source)
    except InvalidDicomError as e:
        raise UnreadableDicomError(
            f"{label} is not a DICOM file ({e}); expected a DICOM Part 10 file with 'DICM' at byte 128"
        ) from e
    except OSError as e:
        if isinstance(source, Path) and not source.exists():
            raise UnreadableDicomError(f"cannot read DICOM file {label}: {e.strerror or e}; check the path") from e
        raise UnreadableDicomError(f"{label} cannot be read ({e}); the file is truncated or corrupt") from e
    except Exception as e:  # pydicom's parser raises many types on damaged files
        raise UnreadableDicomError(
            f"{label} cannot be parsed as DICOM ({type(e).__name__}: {e}); the file is truncated or corrupt"
        ) from e


def image_from_dataset(ds: Dataset, name: str) -> DicomImage:
    """Check that ``ds`` is a single-frame 8-bit colour photograph and decode its pixels to RGB."""
    what = describe(ds)
    if "PixelData" not in ds:
        raise NoPixelDataError(
            f"{name}: {what} has no Pixel Data (7FE0,0010): it is not an image, or its file was "
            f"cut off before the pixel data; send a complete image instance ({PHOTOGRAPH_KINDS})"
        )
    samples, photometric = ds.get("SamplesPerPixel"), ds.get("PhotometricInterpretation")
    bits, frames = ds.get("BitsAllocated"), int(ds.get("NumberOfFrames") or 1)
    if samples != 3 or photometric not in COLOUR_PHOTOMETRICS or bits != 8:
        raise NotAPhotographError(
            f"{name}: {what} is not an RGB photograph ({samples} sample(s) per pixel, photometric "
            f"interpretation {photometric}, {bits} bits allocated); DermAssist analyses 8-bit colour "
            f"photographs: {PHOTOGRAPH_KINDS}"
        )
    if frames != 1:
        raise NotAPhotographError(
            f"{name}: {what} has {frames} frames; DermAssist analyses single-frame photographs, one per instance"
        )
    transfer_syntax = _transfer_syntax(ds, name)
    _check_decoder(transfer_syntax, name)
    try:
        pixels = ds.pixel_array
    except Exception as e:  # decoder plugins raise many types on damaged data
        raise UnreadableDicomError(
            f"{name}: the pixel data of {what} cannot be decoded ({type(e).__name__}: {e}); the file is "
            "truncated or corrupt: send it again"
        ) from e
    expected = (int(ds.Rows), int(ds.Columns), 3)
    if pixels.shape != expected or pixels.dtype != np.uint8:
        raise UnreadableDicomError(
            f"{name}: decoded pixels of {what} have shape {pixels.shape} dtype {pixels.dtype}; expected "
            f"{expected} uint8 from its Rows, Columns and Samples per Pixel: the header and the pixel data disagree"
        )
    pixels = np.ascontiguousarray(pixels)
    pixels.setflags(write=False)
    return DicomImage(dataset=ds, pixels=pixels, name=name)


def _transfer_syntax(ds: Dataset, name: str) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if not uid:
        raise UnreadableDicomError(
            f"{name}: no Transfer Syntax UID (0002,0010) in the file meta information; the pixel data cannot "
            "be interpreted: write the file as DICOM Part 10"
        )
    return UID(uid)


def _check_decoder(transfer_syntax: UID, name: str) -> None:
    label = f"{transfer_syntax.name} ({transfer_syntax})" if transfer_syntax.is_transfer_syntax else str(transfer_syntax)
    hint = "send it uncompressed or as JPEG baseline"
    try:
        decoder = get_decoder(transfer_syntax)
    except NotImplementedError as e:
        raise UnsupportedTransferSyntaxError(
            f"{name}: pixel data is encoded with transfer syntax {label}, which DermAssist cannot decode; {hint}",
            comment=f"unsupported transfer syntax {transfer_syntax}",
        ) from e
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise UnsupportedTransferSyntaxError(
            f"{name}: pixel data is encoded with transfer syntax {label}, and no decoder for it is installed "
            f"(any one of: {missing}); {hint}",
            comment=f"unsupported transfer syntax {transfer_syntax}",
        )
