"""Errors of the DICOM extra: one root under the client's root, narrow subclasses per kind of input fault."""
from __future__ import annotations

import re

from ..errors import DermAssistClientError


class DicomError(DermAssistClientError):
    """Root of every error of the DICOM extra."""


class DicomInputError(DicomError):
    """A DICOM object cannot be analysed.

    ``status`` is the C-STORE failure status a DICOM node answers with, and ``comment`` the short reason
    (at most 64 characters) it puts in the response's Error Comment; the message has the full story.
    """

    status = 0xC000
    comment = "cannot understand the data set"

    def __init__(self, message: str, comment: str | None = None) -> None:
        super().__init__(message)
        if comment:
            self.comment = comment[:64]


class UnreadableDicomError(DicomInputError):
    """The bytes are not a readable DICOM object (not DICOM at all, or truncated)."""

    status = 0xC000
    comment = "unreadable DICOM: truncated or corrupt"


class NotAPhotographError(DicomInputError):
    """The object is not an 8-bit RGB photograph (e.g. a monochrome CT slice, a report, a multi-frame video)."""

    status = 0xC001
    comment = "not a single-frame 8-bit colour photograph"


class MissingIdentifierError(DicomInputError):
    """The object lacks a Study, Series or SOP Instance UID, which its SEG and SR must reference."""

    status = 0xC000
    comment = "no Study, Series or SOP Instance UID"


class InvalidIdentifierError(DicomInputError):
    """A Study, Series or SOP Instance UID is not a DICOM UID (digits and dots, at most 64 characters)."""

    status = 0xC000
    comment = "a Study, Series or SOP Instance UID is malformed"


class NoPixelDataError(DicomInputError):
    """The object has no Pixel Data."""

    status = 0xC002
    comment = "no Pixel Data"


class UnsupportedTransferSyntaxError(DicomInputError):
    """The pixel data is compressed with a transfer syntax no installed decoder can read."""

    status = 0xC003
    comment = "unsupported transfer syntax"


class DicomOutputError(DicomError):
    """A SEG, SR or FHIR output could not be built from a result."""

    @classmethod
    def header_refused(cls, what: str, image_name: str, e: Exception) -> DicomOutputError:
        """The refusal of a SEG or SR the instance's header does not allow (highdicom's error), without the header
        values it quotes: a patient's name, sex or birth date must not reach a log (privacy audit, H1)."""
        return cls(f"cannot build the {what} of {image_name} ({type(e).__name__}: {without_quoted_values(str(e))}); the "
                   "instance's header does not meet its storage class: check it with dciodvfy")


def without_quoted_values(text: str) -> str:
    """``text`` with everything from a line's first quote to its last, single or double (``'Jane-F'``, ``"Doe^Jane"``,
    and a value holding a quote, ``'O'Brien'`` or ``'say "hi"'``, whole) replaced by ``'...'``: a value is never
    paired with the wrong quote."""
    return re.sub(r"['\"][^\n]*['\"]", "'...'", text)


class PacsError(DicomError):
    """The PACS could not be reached, refused the association, or answered a C-STORE with a failure."""
