"""Reader for PH2 (Mendonca et al., EMBC 2013): dermoscopic images, official lesion masks, clinical diagnosis."""
from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

from preprocess.contract import CLASS_CODES

from ..errors import MissingFolderError, MissingImageError, UnknownLabelError
from ..records import Dataset, Sample
from .common import check_mask_size, keep_label

logger = logging.getLogger(__name__)

PH2_DIR = "PH2Dataset"
PH2_IMAGES = "PH2 Dataset images"
PH2_XLSX = "PH2_dataset.xlsx"
PH2_TXT = "PH2_dataset.txt"
PH2_IMAGE_SUFFIXES = (".bmp", ".jpg", ".png")
PH2_NAME = re.compile(r"^IMD\d{3}$")
# Clinical diagnosis -> (contract class code, split stratum). Both nevus kinds are NV for the classifier
# but are split separately so train, validation and test each hold atypical nevi.
DIAGNOSES = {
    "Common Nevus": ("NV", "common_nevus"),
    "Atypical Nevus": ("NV", "atypical_nevus"),
    "Melanoma": ("MEL", "melanoma"),
}
TXT_CODES = {"0": "Common Nevus", "1": "Atypical Nevus", "2": "Melanoma"}


def ph2_root(root: Path) -> Path | None:
    """The ``PH2Dataset`` folder at or under ``root``, or None when it is not a PH2 layout."""
    root = Path(root)
    for candidate in (root, root / PH2_DIR):
        if (candidate / PH2_IMAGES).is_dir():
            return candidate
    return None


def _xlsx_diagnoses(path: Path) -> dict[str, str]:
    """Image name -> clinical diagnosis from the official xlsx (the 'X' marks under the three columns)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:  # BadZipFile: empty, truncated, a CSV renamed
        raise UnknownLabelError(f"{path} cannot be read as an xlsx workbook ({e}); expected the official {PH2_XLSX}") from e
    rows = [tuple("" if v is None else str(v).strip() for v in row) for row in book.active.iter_rows(values_only=True)]
    book.close()
    for h, header in enumerate(rows):  # noqa: B007 - h, the header row, is read after the loop
        if "Image Name" in header:
            break
    else:
        raise UnknownLabelError(f"{path}: no header row with 'Image Name'; expected the official {PH2_XLSX} sheet")
    missing = [d for d in DIAGNOSES if d not in header]
    if missing:
        raise UnknownLabelError(
            f"{path}: diagnosis columns {missing} are missing from the header {list(filter(None, header))}; "
            f"expected 'Image Name' and the clinical diagnosis columns {list(DIAGNOSES)} marked with X"
        )
    name_col, cols = header.index("Image Name"), {d: header.index(d) for d in DIAGNOSES}
    out: dict[str, str] = {}
    seen: dict[str, tuple[int, int]] = {}
    for line, row in enumerate(rows[h + 1 :], start=h + 2):
        if not any(row):
            continue
        marked = [d for d, c in cols.items() if c < len(row) and row[c].upper() == "X"]
        name = _check_name(row[name_col], f"{path.name} row {line}")
        _keep(out, seen, name, _one(marked, f"{path.name} row {line} ({row[name_col]})"), line, str(path))
    return out


def _keep(out: dict[str, str], seen: dict[str, tuple[int, int]], name: str, diagnosis: str, line: int,
          where: str) -> None:
    """Record ``name``'s diagnosis; a repeat with the same one is harmless, one with another is refused (which is
    right cannot be known: the last had silently won)."""
    if keep_label(seen, name, list(DIAGNOSES).index(diagnosis), line, where):
        out[name] = diagnosis


def _txt_diagnoses(path: Path) -> dict[str, str]:
    """Image name -> clinical diagnosis from the official ``||``-separated text file (codes 0/1/2)."""
    out: dict[str, str] = {}
    seen: dict[str, tuple[int, int]] = {}
    header: list[str] | None = None
    for line, text in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        cells = [c.strip() for c in text.strip().strip("|").split("||")] if text.strip().startswith("||") else []
        if not cells:
            continue
        if header is None:
            if "Name" in cells and "Clinical Diagnosis" in cells:
                header = cells
            continue
        if not PH2_NAME.match(cells[header.index("Name")]):
            continue
        code = cells[header.index("Clinical Diagnosis")] if len(cells) > header.index("Clinical Diagnosis") else ""
        if code not in TXT_CODES:
            raise UnknownLabelError(
                f"{path.name} line {line}: clinical diagnosis {code!r} is unknown; expected 0 (common nevus), "
                "1 (atypical nevus) or 2 (melanoma)"
            )
        _keep(out, seen, cells[header.index("Name")], TXT_CODES[code], line, str(path))
    if header is None:
        raise UnknownLabelError(f"{path}: no header line with 'Name' and 'Clinical Diagnosis'; expected the official {PH2_TXT}")
    return out


def _check_name(name: str, where: str) -> str:
    if not PH2_NAME.match(name):
        raise UnknownLabelError(f"{where}: image name {name!r} is not a PH2 name; expected IMD followed by 3 digits")
    return name


def _one(marked: list[str], where: str) -> str:
    if len(marked) != 1:
        raise UnknownLabelError(
            f"{where}: expected exactly one clinical diagnosis marked X among {list(DIAGNOSES)}, got {marked or 'none'}"
        )
    return marked[0]


def read_diagnoses(folder: Path) -> tuple[Path, dict[str, str]]:
    """(file read, image name -> clinical diagnosis) from ``PH2_dataset.xlsx``, else ``PH2_dataset.txt``."""
    if (folder / PH2_XLSX).is_file():
        return folder / PH2_XLSX, _xlsx_diagnoses(folder / PH2_XLSX)
    if (folder / PH2_TXT).is_file():
        return folder / PH2_TXT, _txt_diagnoses(folder / PH2_TXT)
    raise MissingFolderError(f"{folder} has no {PH2_XLSX} or {PH2_TXT}; expected the official PH2 diagnosis file there")


def _find_image(case: Path) -> Path | None:
    for suffix in PH2_IMAGE_SUFFIXES:
        path = case / f"{case.name}_Dermoscopic_Image" / f"{case.name}{suffix}"
        if path.is_file():
            return path
    return None


def read_ph2(root: Path) -> Dataset:
    """Read PH2: every image listed in the diagnosis file must exist with its lesion mask (same size)."""
    folder = ph2_root(root)
    if folder is None:
        raise MissingFolderError(f"{root} has no '{PH2_DIR}/{PH2_IMAGES}/' folder; expected the official PH2 layout")
    source, diagnoses = read_diagnoses(folder)
    cases = {p.name: p for p in (folder / PH2_IMAGES).iterdir() if p.is_dir() and PH2_NAME.match(p.name)}
    samples: list[Sample] = []
    for name in sorted(diagnoses):
        case = cases.get(name)
        image = _find_image(case) if case else None
        mask = case / f"{name}_lesion" / f"{name}_lesion.bmp" if case else None
        if image is None or mask is None or not mask.is_file():
            what = "image" if image is None else "lesion mask"
            raise MissingImageError(
                f"{source.name} lists {name} but its {what} is absent under {folder / PH2_IMAGES / name}; expected "
                f"{name}_Dermoscopic_Image/{name}.bmp (or .jpg) and {name}_lesion/{name}_lesion.bmp: restore the files "
                "or remove the row"
            )
        check_mask_size(image, mask)
        code, stratum = DIAGNOSES[diagnoses[name]]
        samples.append(Sample(name, image, mask, CLASS_CODES.index(code), source="ph2", stratum=stratum))
    unlabelled = tuple(_find_image(cases[name]) or cases[name] for name in sorted(set(cases) - set(diagnoses)))
    if unlabelled:
        logger.warning("%s: %d image folder(s) have no diagnosis in %s and were left out", folder, len(unlabelled),
                       source.name)
    return Dataset("ph2", folder, tuple(samples), unlabelled_images=unlabelled)
