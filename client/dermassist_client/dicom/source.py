"""Read a dermoscopy (or any 8-bit RGB photographic) DICOM instance into pixels plus its identifiers."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Union

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder
from pydicom.sr.coding import Code
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    DermoscopicPhotographyImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    SecondaryCaptureImageStorage,
    VLPhotographicImageStorage,
)
from pydicom.valuerep import DA, DT, TM

from .. import terminology as term
from ..classes import MAX_IMAGE_PIXELS
from ..files import path_kind
from .errors import (
    InvalidIdentifierError,
    MissingIdentifierError,
    NoPixelDataError,
    NotAPhotographError,
    UnreadableDicomError,
    UnsupportedTransferSyntaxError,
)
from .frames import check_pixel_data, jpeg_for_service

logger = logging.getLogger(__name__)

DicomInput = Union[str, os.PathLike, bytes, bytearray, Dataset]

#: Photometric interpretations of a colour photograph; YBR forms are converted to RGB on decoding.
COLOUR_PHOTOMETRICS = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"})
PHOTOGRAPH_KINDS = "dermoscopy (modality DMS), VL photographic or secondary-capture colour images"
#: Storage classes of a colour photograph: a CT, MR, video or endoscopy object is refused even with RGB pixels.
PHOTOGRAPH_CLASSES = frozenset({DermoscopicPhotographyImageStorage, VLPhotographicImageStorage,
                                SecondaryCaptureImageStorage, MultiFrameTrueColorSecondaryCaptureImageStorage})
#: Type 1 identifiers the SEG and SR reference: without them the results cannot be tied to the instance.
REQUIRED_UIDS = (("StudyInstanceUID", "(0020,000D)"), ("SeriesInstanceUID", "(0020,000E)"),
                 ("SOPInstanceUID", "(0008,0018)"))
#: Type 2 patient and study attributes the SEG and SR copy: they may be empty, never absent.
COPIED_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "ReferringPhysicianName", "StudyID", "AccessionNumber")
_TEMPORAL = {"DA": DA, "TM": TM, "DT": DT}
#: The service's limit, checked here before a DICOM's pixels are decoded.
MAX_PIXELS = MAX_IMAGE_PIXELS
PIXEL_DECODER_LOGGER = "pydicom.pixels.decoders.base"  # where pydicom logs a decoding plugin's failure
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def is_uid(value: str) -> bool:
    """Whether ``value`` is a DICOM UID: dot-separated numbers without leading zeros, at most 64 characters."""
    return len(value) <= 64 and _UID.fullmatch(value) is not None


#: The longest value from a data set a message shows (cut with "..."): a sender's value must not flood a log line.
MAX_SHOWN = 80


def shown(value: object) -> str:
    """A value that came from a DICOM sender, safe to put in a log line: as it is when it is printable ASCII, else
    its ``repr`` (a newline shows as ``\\n`` and cannot forge a line); longer than ``MAX_SHOWN``, cut."""
    text = str(value)
    cut = text[:MAX_SHOWN] + ("..." if len(text) > MAX_SHOWN else "")
    return cut if cut.isascii() and cut.isprintable() else repr(cut)


def one_line(text: str) -> str:
    """``text`` with every line break and other control character escaped (``\\n``, ``\\x1b``), so that whatever
    a sender put into it (a value quoted by a decoder's error) stays on one log line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
# PS3.5 6.2: pydicom also takes the retired ACR-NEMA forms ("2026.12.03", "12:30:00"), which a DICOM object may not carry
_TEMPORAL_FORMAT = {
    "DA": re.compile(r"\d{8}"),
    "TM": re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?"),
    "DT": re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?"),
}
# PS3.3 C.12.1.1.2: an empty first value of a Specific Character Set with code extensions is the default repertoire
DEFAULT_EXTENDED_REPERTOIRE = "ISO 2022 IR 6"
_CHARSET, _MODALITY = 0x00080005, 0x00080060


def is_dicom_temporal(vr: str, value: str) -> bool:
    """Whether ``value`` is a DICOM DA, TM or DT value (``vr``) in today's format that names a real date or time."""
    text = value.rstrip(" ")
    if not _TEMPORAL_FORMAT[vr].fullmatch(text):
        return False
    try:
        _TEMPORAL[vr](text)
    except (ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True, eq=False)
class DicomImage:
    """One DICOM photograph: its dataset (identifiers, geometry) and its pixels as HxWx3 uint8 RGB."""

    dataset: Dataset
    pixels: np.ndarray
    name: str
    jpeg: bytes | None = None  # the frame of a lossy JPEG instance, as it came (``for_service``)

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
    def anatomic_region(self) -> Code | None:
        """Where on the body the lesion is (``terminology.anatomic_region``), or None when the instance does not say."""
        return _code(term.anatomic_region(self.dataset))

    @property
    def laterality(self) -> Code | None:
        """Left, right or both (``terminology.laterality``), or None."""
        return _code(term.laterality(self.dataset))

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

    def for_service(self) -> bytes | Image.Image:
        """What the service is sent: a lossy JPEG frame as it came (``jpeg_for_service``: the service's strict decoder
        refuses damaged coded data, which pydicom's decoder fills in without a word, and takes the colour transform
        from the codestream, whatever Photometric Interpretation says), else the decoded pixels (``photograph``)."""
        if self.jpeg is None:
            return self.photograph()
        try:
            return jpeg_for_service(self.jpeg, self.icc_profile)
        except ValueError as e:  # an ICC profile past what a JPEG holds (16 MB): PNG carries any
            logger.info("%s: its JPEG frame is sent decoded, as PNG: %s", self.name, e)
            return self.photograph()

    @cached_property
    def output_source(self) -> Dataset:
        """The instance as its SEG and SR copy it: an absent Type 2 patient or study attribute present and empty, a
        date or time that is not a DICOM value emptied (logged), an absent Modality "OT".

        Made once per image (the SEG and the SR's three references share it); the elements are shared with the
        instance, not copied, and the instance itself stays as it came (it is stored as received).
        """
        out = Dataset({tag: element for tag, element in self.dataset.items()})
        out.file_meta = self.dataset.file_meta
        for keyword in COPIED_TYPE2:
            if keyword not in out:
                setattr(out, keyword, "")
        for tag in list(out.keys()):
            element = out[tag]  # a file's elements are read lazily: this converts the copy's, not the instance's
            if element.VR in _TEMPORAL and element.value not in (None, "") and not isinstance(element.value, list):
                if not is_dicom_temporal(element.VR, str(element.value)):  # the value may be a birth date: unlogged
                    logger.warning("%s: %s is not a DICOM %s value; its SEG and SR carry it empty", self.name,
                                   element.keyword or element.tag, element.VR)
                    out[tag] = DataElement(tag, element.VR, "")  # a new element: the instance keeps its own
        charset = out.get("SpecificCharacterSet")
        if charset is not None and not isinstance(charset, str) and len(charset) > 1 and not str(charset[0]).strip():
            out[_CHARSET] = DataElement(_CHARSET, "CS", [DEFAULT_EXTENDED_REPERTOIRE, *charset[1:]])  # what '' means
        if not out.get("Modality"):
            out[_MODALITY] = DataElement(_MODALITY, "CS", "OT")
        return out

    @property
    def transfer_syntax(self) -> UID:
        """Transfer syntax the pixels arrived in."""
        return UID(self.dataset.file_meta.TransferSyntaxUID)


def _code(site: term.SiteCode | None) -> Code | None:
    return None if site is None else Code(site.code, site.scheme, site.meaning)


def describe(ds: Dataset) -> str:
    """A short description of an instance for messages: modality, SOP class name and SOP instance UID (a damaged
    element among those is named as unreadable: the message about the instance must not fail itself)."""
    try:
        sop_class = ds.get("SOPClassUID")
        kind = shown(UID(sop_class).name) if sop_class else "unknown SOP class"
        uid = ds.get("SOPInstanceUID")
        modality = ds.get("Modality")
        return (f"{shown(modality) if modality else 'no modality'} {kind} instance "
                f"{shown(uid) if uid is not None else '(no SOP Instance UID)'}")
    except Exception:  # noqa: BLE001 - pydicom raises many types on a damaged element; image_from_dataset names it
        return "DICOM instance with unreadable identifying elements"


def check_elements(ds: Dataset, name: str) -> None:
    """Decode every element of ``ds`` (nested ones too) now, so that a damaged one (an unknown VR, a value of the
    wrong type or length) is an UnreadableDicomError naming it, not an error of whichever check meets it first."""
    tag = None
    try:
        for element in ds.iterall():
            tag = element.tag
    except Exception as e:  # pydicom decodes elements lazily and raises many types on damaged ones
        after = f" after element {tag}" if tag is not None else ""
        raise UnreadableDicomError(
            f"{name}: an element{after} cannot be decoded ({type(e).__name__}: {e}); the file is truncated or corrupt: "
            "send it again as the modality stored it"
        ) from e


def read_dicom(source: DicomInput, name: str | None = None) -> DicomImage:
    """Read and check one DICOM photograph from a path, bytes or a dataset (raises a ``DicomInputError``)."""
    if isinstance(source, Dataset):
        return image_from_dataset(source, name or describe(source))
    if isinstance(source, (bytes, bytearray)):
        label = name or f"<{len(source)} bytes of DICOM>"
        return image_from_dataset(_parse(io.BytesIO(bytes(source)), label), label)
    label = name or str(source)
    return image_from_dataset(_parse(Path(source), label), label)


def _meta_transfer_syntax(source: io.BytesIO | Path) -> str | None:
    """The transfer syntax UID the file meta information of a Part 10 file names, read without its data set."""
    from pydicom.filereader import _read_file_meta_info, read_file_meta_info, read_preamble

    if isinstance(source, Path):
        meta = read_file_meta_info(source)
    else:
        try:
            read_preamble(source, False)
            meta = _read_file_meta_info(source)
        finally:  # the full read starts from the top, whatever this one found
            source.seek(0)
    syntax = meta.get("TransferSyntaxUID")
    return None if syntax is None else str(syntax)


def _parse(source: io.BytesIO | Path, label: str) -> Dataset:
    kind = path_kind(source) if isinstance(source, Path) else None
    if kind is not None:  # a pipe would block, a device never end, a folder be called a corrupt file
        raise UnreadableDicomError(f"{label} is {kind}, not a regular file; expected a DICOM Part 10 file: pass "
                                   "the files themselves")
    try:
        syntax = _meta_transfer_syntax(source)
    except InvalidDicomError:
        syntax = None  # told below, by the full read
    except Exception as e:  # noqa: BLE001 - a file meta information pydicom cannot read: the full read says why
        logger.debug("the file meta information of %s cannot be read alone: %s", label, e)
        syntax = None
    if syntax == DeflatedExplicitVRLittleEndian:
        raise UnsupportedTransferSyntaxError(
            f"{label} is stored in the Deflated Explicit VR Little Endian transfer syntax, which DermAssist does not "
            "read: pydicom inflates the whole data set before anything can be checked (a few KB can inflate to "
            "gigabytes), as the DICOM node refuses it too; export it uncompressed or JPEG-compressed (e.g. `dcmconv "
            "+te` of DCMTK) and analyse that")
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


# The header elements image_from_dataset reads: each must hold one value (VM 1), the first five an integer.
_ONE_INTEGER = ("SamplesPerPixel", "BitsAllocated", "NumberOfFrames", "Rows", "Columns")
_ONE_TEXT = ("PhotometricInterpretation", "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID",
             "Modality")


def check_header_values(ds: Dataset, name: str) -> None:
    """Refuse a header element DermAssist reads that holds several values where DICOM allows one, or a count that is
    not an integer (a damaged file, or a modality that wrote it wrongly), naming the element."""
    for keyword in (*_ONE_INTEGER, *_ONE_TEXT):
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        tag = Tag(keyword)
        if isinstance(value, (MultiValue, list, tuple)):
            raise UnreadableDicomError(f"{name}: {keyword} {tag} holds {len(value)} values, expected one; the file is "
                                       "corrupt or was written wrongly: send it again as the modality stored it")
        if keyword in _ONE_INTEGER:
            try:
                int(value)
            except (TypeError, ValueError) as e:
                raise UnreadableDicomError(f"{name}: {keyword} {tag} is {str(value)[:40]!r}, expected an integer; the "
                                           "file is corrupt or was written wrongly: send it again as the modality "
                                           "stored it") from e


_decoding = threading.local()  # set while this thread decodes pixel data (``_decoder_failures_unlogged``)


def _drop_plugin_failure(record: logging.LogRecord) -> bool:
    """Keep a record of pydicom's decoder logger unless it is a plugin's failure (ERROR) while this thread decodes."""
    return record.levelno < logging.ERROR or not getattr(_decoding, "active", False)


@contextlib.contextmanager
def _decoder_failures_unlogged() -> Iterator[None]:
    """pydicom logs each decoding plugin's failure as an ERROR with its traceback, then raises one error holding every
    plugin's message, which becomes an UnreadableDicomError naming the file: the traceback on stderr said nothing
    more, before the clean refusal. The filter stays on the logger and drops only records of the thread decoding
    here (a node decodes several instances at once: a filter removed by one would let another's traceback through)."""
    plugin_logger = logging.getLogger(PIXEL_DECODER_LOGGER)
    if _drop_plugin_failure not in plugin_logger.filters:
        plugin_logger.addFilter(_drop_plugin_failure)
    _decoding.active = True
    try:
        yield
    finally:
        _decoding.active = False


def image_from_dataset(ds: Dataset, name: str) -> DicomImage:
    """Check that ``ds`` is a single-frame 8-bit colour photograph and decode its pixels to RGB."""
    check_elements(ds, name)
    check_header_values(ds, name)
    what = describe(ds)
    # a DICOM node names an instance by its description already ("CT ... instance 1.2.3 from STORESCU"): said once
    subject = name if name.startswith(what) else f"{name}: {what}"
    if "PixelData" not in ds:
        raise NoPixelDataError(
            f"{subject} has no Pixel Data (7FE0,0010): it is not an image, or its file was "
            f"cut off before the pixel data; send a complete image instance ({PHOTOGRAPH_KINDS})"
        )
    samples, photometric = ds.get("SamplesPerPixel"), ds.get("PhotometricInterpretation")
    declared_frames = ds.get("NumberOfFrames")  # absent or empty: one frame; 0 is no frame, not one
    bits, frames = ds.get("BitsAllocated"), 1 if declared_frames in (None, "") else int(declared_frames)
    if samples != 3 or photometric not in COLOUR_PHOTOMETRICS or bits != 8:
        raise NotAPhotographError(
            f"{subject} is not an RGB photograph ({shown(samples)} sample(s) per pixel, photometric "
            f"interpretation {shown(photometric)}, {shown(bits)} bits allocated); DermAssist analyses 8-bit colour "
            f"photographs: {PHOTOGRAPH_KINDS}"
        )
    if frames != 1:
        raise NotAPhotographError(
            f"{subject} has {frames} frames; DermAssist analyses single-frame photographs, one per instance"
        )
    sop_class = ds.get("SOPClassUID")
    if sop_class not in PHOTOGRAPH_CLASSES:
        kind = f"a {shown(UID(sop_class).name)} instance" if sop_class else "an instance without a SOP Class UID (0008,0016)"
        raise NotAPhotographError(
            f"{subject} is {kind}, not a photograph, although its pixels are RGB; DermAssist analyses "
            f"{PHOTOGRAPH_KINDS}: store the picture as one of those",
            comment="not a photograph storage class",
        )
    modality = ds.get("Modality")
    if sop_class == DermoscopicPhotographyImageStorage and modality != "DMS":  # the IOD defines DMS, its only value
        logger.warning("%s: a Dermoscopic Photography instance whose Modality is %s, where DICOM defines DMS; analysed, "
                       "and its SEG and SR carry %s as it came: check the sending modality's configuration", subject,
                       shown(modality) if modality else "absent", shown(modality) if modality else "OT")
    missing = [f"{keyword} {tag}" for keyword, tag in REQUIRED_UIDS if not ds.get(keyword)]
    if missing:
        raise MissingIdentifierError(
            f"{subject} has no {', '.join(missing)}; its segmentation and report must reference the "
            "instance, its series and its study: send the instance as the modality stored it",
        )
    malformed = [f"{keyword} {tag}" for keyword, tag in REQUIRED_UIDS if not is_uid(str(ds.get(keyword)))]
    if malformed:  # a UID names the spool's files: "1/../.." would write and delete outside it
        raise InvalidIdentifierError(
            f"{subject} has a {', '.join(malformed)} that is not a DICOM UID (digits and dots, at most 64 "
            "characters; PS3.5 9.1); send the instance as the modality stored it",
        )
    unsized = [f"{keyword} {Tag(keyword)}" for keyword in ("Rows", "Columns") if int(ds.get(keyword) or 0) < 1]
    if unsized:  # checked as integers (check_header_values): absent, empty or 0
        raise UnreadableDicomError(
            f"{subject} has no {' or '.join(unsized)} (absent, empty or 0): its pixel data cannot be laid out "
            "without them; send the instance as the modality stored it", comment="no Rows or Columns")
    pixel_count = int(ds.Rows) * int(ds.Columns)
    if pixel_count > MAX_PIXELS:  # checked before decoding: a few KB of JPEG-LS can declare 65535 x 65535
        raise NotAPhotographError(
            f"{subject} declares {ds.get('Rows')} x {ds.get('Columns')} pixels ({pixel_count / 1e6:.1f} "
            f"megapixels); DermAssist analyses at most {MAX_PIXELS / 1e6:.0f} megapixels: send a smaller rendition",
            comment="image too large",
        )
    transfer_syntax = _transfer_syntax(ds, name)
    _check_decoder(transfer_syntax, name)
    jpeg = check_pixel_data(ds, transfer_syntax, subject, MAX_PIXELS)  # the codestream's own size, before decoding it
    try:
        with _decoder_failures_unlogged():
            pixels = ds.pixel_array
    except Exception as e:  # decoder plugins raise many types on damaged data
        raise UnreadableDicomError(
            f"{subject}: its pixel data cannot be decoded ({type(e).__name__}: {e}); the file is "
            "truncated or corrupt: send it again"
        ) from e
    expected = (int(ds.Rows), int(ds.Columns), 3)
    if pixels.shape != expected or pixels.dtype != np.uint8:
        raise UnreadableDicomError(
            f"{subject}: its decoded pixels have shape {pixels.shape} dtype {pixels.dtype}; expected "
            f"{expected} uint8 from its Rows, Columns and Samples per Pixel: the header and the pixel data disagree"
        )
    pixels = np.ascontiguousarray(pixels)
    pixels.setflags(write=False)
    return DicomImage(dataset=ds, pixels=pixels, name=name, jpeg=jpeg)


def _transfer_syntax(ds: Dataset, name: str) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if not uid:
        raise UnreadableDicomError(
            f"{name}: no Transfer Syntax UID (0002,0010) in the file meta information; the pixel data cannot "
            "be interpreted: write the file as DICOM Part 10"
        )
    if not isinstance(uid, str):
        raise UnreadableDicomError(
            f"{name}: Transfer Syntax UID (0002,0010) holds {len(uid)} values, expected one; the file meta information "
            "is corrupt: send the file again as the modality stored it"
        )
    return UID(uid)


def _check_decoder(transfer_syntax: UID, name: str) -> None:
    label = (f"{transfer_syntax.name} ({transfer_syntax})" if transfer_syntax.is_transfer_syntax
             else shown(transfer_syntax))
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
