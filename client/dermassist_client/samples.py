"""The small synthetic sample images bundled with the package (for the demo page)."""
from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def sample_paths() -> list[Path]:
    """Paths of the bundled sample JPEGs, sorted by name."""
    return sorted(SAMPLES_DIR.glob("*.jpg"))
