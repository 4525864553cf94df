"""Who wrote a DermAssist SEG or SR: the equipment attributes and series numbers, validated once."""
from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import DicomError

if TYPE_CHECKING:
    from pydicom.uid import UID

MAX_LO = 64  # DICOM LO value representation: at most 64 characters
MAX_UID_ROOT = 40  # a UID has at most 64 characters: the rest (24 or more digits) makes each one unique
DEFAULT_UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's (PYDICOM_ROOT_UID): no pydicom import for the command line
UID_ROOT_HELP = ("your organisation's DICOM UID root, which every UID of the SEG and SR starts with, ending with a dot "
                 f"(e.g. 1.2.840.99999.7.; default pydicom's, {DEFAULT_UID_ROOT})")
_UID_ROOT = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*\.")


def _host() -> str:
    return (socket.gethostname() or "unknown-host")[:MAX_LO]


@dataclass(frozen=True)
class OutputIdentity:
    """Equipment written into every output (Manufacturer, Device Serial Number ...) and their series numbers.

    The model name and version come from each result; ``device_serial_number`` defaults to the host name
    so a site can tell which DermAssist node wrote an object. ``uid_root``: the site's (or vendor's) UID root that
    every UID of the outputs starts with, ending with a dot (e.g. "1.2.840.99999.7."); pydicom's by default.
    """

    manufacturer: str = "DermAssist"
    device_serial_number: str = field(default_factory=_host)
    institution_name: str | None = None
    segmentation_series_number: int = 9901
    report_series_number: int = 9902
    uid_root: str = DEFAULT_UID_ROOT

    def __post_init__(self) -> None:
        for name in ("manufacturer", "device_serial_number", "institution_name"):
            value = getattr(self, name)
            if value is not None and not (0 < len(value) <= MAX_LO and value.isprintable() and "\\" not in value):
                raise DicomError(f"{name} must be 1 to {MAX_LO} printable characters without '\\', got {value!r}")
        for name in ("segmentation_series_number", "report_series_number"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 0 < value < 2**31):
                raise DicomError(f"{name} must be a positive integer below 2**31, got {value!r}")


        if not (isinstance(self.uid_root, str) and len(self.uid_root) <= MAX_UID_ROOT
                and _UID_ROOT.fullmatch(self.uid_root)):
            raise DicomError(f"uid_root must be a DICOM UID root: digits and dots, no leading zero in a part, ending "
                             f"with a dot, at most {MAX_UID_ROOT} characters (e.g. 1.2.840.99999.7.), got "
                             f"{self.uid_root!r}; pass your organisation's root")

    def new_uid(self, entropy: list[str] | None = None) -> UID:
        """A new UID under ``uid_root`` (the same one for the same ``entropy``, as pydicom's generate_uid)."""
        from pydicom.uid import generate_uid

        return generate_uid(prefix=self.uid_root, entropy_srcs=entropy)
