"""Who wrote a DermAssist SEG or SR: the equipment attributes and series numbers, validated once."""
from __future__ import annotations

import socket
from dataclasses import dataclass, field

from .errors import DicomError

MAX_LO = 64  # DICOM LO value representation: at most 64 characters


def _host() -> str:
    return (socket.gethostname() or "unknown-host")[:MAX_LO]


@dataclass(frozen=True)
class OutputIdentity:
    """Equipment written into every output (Manufacturer, Device Serial Number ...) and their series numbers.

    The model name and version come from each result; ``device_serial_number`` defaults to the host name
    so a site can tell which DermAssist node wrote an object.
    """

    manufacturer: str = "DermAssist"
    device_serial_number: str = field(default_factory=_host)
    institution_name: str | None = None
    segmentation_series_number: int = 9901
    report_series_number: int = 9902

    def __post_init__(self) -> None:
        for name in ("manufacturer", "device_serial_number", "institution_name"):
            value = getattr(self, name)
            if value is not None and not (0 < len(value) <= MAX_LO and value.isprintable() and "\\" not in value):
                raise DicomError(f"{name} must be 1 to {MAX_LO} printable characters without '\\', got {value!r}")
        for name in ("segmentation_series_number", "report_series_number"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 0 < value < 2**31):
                raise DicomError(f"{name} must be a positive integer below 2**31, got {value!r}")


