"""Version strings written into DICOM outputs (Software Versions) and FHIR (Device.version)."""
from __future__ import annotations

from importlib import metadata

from .result import LesionResult

CLIENT_DISTRIBUTION = "dermassist-client"
LO_CHARS = 64  # a DICOM Long String value (Software Versions is one per value)


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
    return tuple(text[:LO_CHARS] for text in (*served, f"{CLIENT_DISTRIBUTION} {client_version()}"))
