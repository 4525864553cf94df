"""HAM10000-layout folders made of a few rows of the shared sample's metadata (images linked by each test)."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

METADATA = "HAM10000_metadata.csv"


def ham_rows(folder: Path) -> list[dict[str, str]]:
    """The metadata rows of a folder in the HAM10000 layout."""
    with (folder / METADATA).open(newline="") as f:
        return list(csv.DictReader(f))


def write_ham_metadata(folder: Path, rows: Sequence[dict[str, str]]) -> Path:
    """Write ``rows`` (with their own columns) as the folder's HAM10000 metadata; the folder is made if missing."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / METADATA).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder / METADATA
