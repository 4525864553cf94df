"""Version strings written into DICOM outputs (Software Versions) and FHIR (Device.version)."""
from __future__ import annotations

from importlib import metadata

from .result import LesionResult

CLIENT_DISTRIBUTION = "dermassist-client"


def client_version() -> str:
    """The installed dermassist-client version, or 'unknown' when run from a source tree."""
    try:
        return metadata.version(CLIENT_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def software_versions(result: LesionResult) -> tuple[str, str]:
    """(served model and version, client and version), e.g. ('dermassist 1', 'dermassist-client 0.1.0')."""
    return f"{result.model_name} {result.model_version}", f"{CLIENT_DISTRIBUTION} {client_version()}"
