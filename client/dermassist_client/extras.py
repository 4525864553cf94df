"""The client's optional extras and the command that installs one (the client is installed from the checkout)."""
from __future__ import annotations

EXTRAS = {"dicom": ("pydicom", "highdicom", "pynetdicom"), "fhir": ("fhir.resources",), "demo": ("gradio",)}
"""Each extra and the modules it brings."""


def install_command(extra: str) -> str:
    """How to install ``extra``: from the DermAssist checkout, not by a package index name (no index publishes the
    client, and a package of that name on one would be someone else's)."""
    return f"pip install './client[{extra}]' (from the DermAssist checkout)"
