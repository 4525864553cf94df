"""Version strings written into DICOM outputs (Software Versions) and FHIR (Device.version)."""
from __future__ import annotations

from importlib import metadata

from .result import LesionResult

CLIENT_DISTRIBUTION = "dermassist-client"
LO_CHARS = 64  # a DICOM Long String value (Software Versions is one per value)
ELLIPSIS = "..."  # where a value too long for it was shortened (ASCII: the outputs' character set may be the default)


def client_version() -> str:
    """The installed dermassist-client version, or 'unknown' when run from a source tree."""
    try:
        return metadata.version(CLIENT_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def software_versions(result: LesionResult) -> tuple[str, ...]:
    """Served model and version, the release and build that answered (when the server named them), and client and
    version, e.g. ('dermassist 1', 'dermassist-real-2026.12 version 1', 'build sha256:...', 'dermassist-client
    0.1.0'); each at most 64 characters, a DICOM LO value's limit."""
    served = [f"{result.model_name} {result.model_version}"]
    served += [text for text in (result.model_release, result.model_build and f"build {result.model_build}") if text]
    return tuple(long_string(text) for text in (*served, f"{CLIENT_DISTRIBUTION} {client_version()}"))


def long_string(text: str) -> str:
    """``text`` as one DICOM LO value: a backslash (the value separator) as '/', control characters as spaces, and,
    over 64 characters, shortened in the middle so its start and end (a release's ``version N``) stay."""
    clean = "".join("/" if c == "\\" else " " if ord(c) < 32 else c for c in text)
    if len(clean) <= LO_CHARS:
        return clean
    keep = LO_CHARS - len(ELLIPSIS)
    return clean[:keep // 2] + ELLIPSIS + clean[len(clean) - (keep - keep // 2):]
