"""The real example images bundled with the package (for the demo page) and their attribution.

Each file is named ``ham10000_<ISIC id>_<diagnosis>.jpg``; the name is the one place that says which
image is which. ``samples/ATTRIBUTION.md`` travels with them (the licence requires it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import DermAssistClientError

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
ATTRIBUTION_FILE = SAMPLES_DIR / "ATTRIBUTION.md"
DATASET = "HAM10000"
CITATION = ('Tschandl P., Rosendahl C., Kittler H., "The HAM10000 dataset, a large collection of multi-source '
            'dermatoscopic images of common pigmented skin lesions", Sci. Data 5, 180161 (2018)')
DOI_URL = "https://doi.org/10.1038/sdata.2018.161"
LICENCE = "CC BY-NC-SA 4.0"
LICENCE_URL = "https://creativecommons.org/licenses/by-nc-sa/4.0/"

_NAME = re.compile(r"ham10000_(ISIC_\d{7})_([a-z]+(?:_[a-z]+)*)\.jpg")


@dataclass(frozen=True)
class Sample:
    """One bundled example image: its path, ISIC id and reference diagnosis."""

    path: Path
    isic_id: str
    diagnosis: str

    @property
    def label(self) -> str:
        """What the page shows for it, e.g. ``Melanoma (ISIC_0033902)``."""
        return f"{self.diagnosis.capitalize()} ({self.isic_id})"


def parse_sample(path: Path) -> Sample:
    """The sample a bundled file is, from its name ``ham10000_<ISIC id>_<diagnosis>.jpg``."""
    match = _NAME.fullmatch(path.name)
    if match is None:
        raise DermAssistClientError(
            f"bundled sample {path.name} is not named ham10000_ISIC_<7 digits>_<diagnosis>.jpg "
            f"(lower case, words joined by _); rename it so the page can say which image it is"
        )
    return Sample(path, match.group(1), match.group(2).replace("_", " "))


def samples() -> list[Sample]:
    """The bundled example images, sorted by file name."""
    return [parse_sample(path) for path in sample_paths()]


def sample_paths() -> list[Path]:
    """Paths of the bundled sample JPEGs, sorted by name."""
    return sorted(SAMPLES_DIR.glob("*.jpg"))


def attribution_markdown(bundled: list[Sample]) -> str:
    """The attribution the page shows under the examples: which image is which, the citation and the licence."""
    which = "; ".join(f"{s.isic_id}: {s.diagnosis}" for s in bundled)
    return (f"Example images from {DATASET} ({which}; diagnoses as published with the dataset): "
            f"{CITATION}, [{DOI_URL}]({DOI_URL}). Licence: [{LICENCE}]({LICENCE_URL}), non-commercial use "
            f"with attribution. The released models never trained on these images.")
