"""Helpers shared by the readers: image listing, header sizes, mask pairing and one-hot label rows."""
from __future__ import annotations

import csv
import io
import logging
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import (
    DuplicateImageError,
    LabelEncodingError,
    MaskMismatchError,
    MissingFolderError,
    UnknownLabelError,
    UnreadableImageError,
)
from ..records import Dataset, Sample

if TYPE_CHECKING:
    from preprocess.decode import Header

logger = logging.getLogger(__name__)

IMAGE_ID = re.compile(r"^(ISIC_\d{7})$")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")  # what the service accepts
#: Files an image folder may hold that are no image: label sheets, notes, the operating systems' own files.
DOCUMENT_SUFFIXES = (".csv", ".xlsx", ".xls", ".ods", ".txt", ".md", ".json", ".xml", ".html", ".yaml", ".yml")
SYSTEM_FILES = ("thumbs.db", "desktop.ini")
#: How many file names a reader's warning lists before it gives a count of the rest.
SHOWN_NAMES = 5
#: Encoding of the label CSVs: UTF-8, with or without the byte-order mark spreadsheet programs write.
CSV_ENCODING = "utf-8-sig"
#: The start of an absolute path in a label cell: a drive (``C:\``), a network share or a root (``\`` or ``/``).
ABSOLUTE_PATH = re.compile(r"^([A-Za-z]:[\\/]|[\\/])")


def nfc(name: str) -> str:
    """``name`` in Unicode normal form C, the form a keyboard types: macOS stores file names decomposed (NFD: ``e`` +
    a combining diaeresis for ``ë``), so the same name can come in two byte sequences that look identical; labels and
    file names are compared in this form, and files are still opened by their real paths."""
    return unicodedata.normalize("NFC", name)


def image_key(path: Path) -> str:
    """The id an image file is known by: its stem in Unicode normal form C (``list_images``' keys)."""
    return nfc(path.stem)


def without_image_suffix(name: str) -> str:
    """``name`` without an image file extension (``ISIC_0000002.jpg`` is ``ISIC_0000002``; ``notes.txt`` stays)."""
    return PurePosixPath(name).stem if PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES else name


def image_stem(cell: str) -> str:
    """The image id a label cell names: stripped, in normal form C, without an image file extension."""
    return without_image_suffix(nfc(cell.strip()))


def csv_delimiter(header_line: str) -> str:
    """``;`` for a header written by a spreadsheet set to a European locale (``lesion_id;image_id;dx``: semicolons and no
    comma), else ``,``."""
    return ";" if ";" in header_line and "," not in header_line else ","


#: A label CSV's rows: (line number, {column: cell}).
Rows = list[tuple[int, dict[str, str]]]


def looks_utf16(data: bytes) -> bool:
    """Whether a label file's bytes are UTF-16: its byte-order mark, or, without one, a zero in at least a third of its
    first bytes (ASCII text in UTF-16; UTF-8 text holds no zero byte but where a cell holds a NUL)."""
    head = data[:400]
    return data[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(head) >= 8 and head.count(0) * 3 >= len(head))


def read_csv(path: Path) -> tuple[list[str], Rows]:
    """(header, [(line number, row), ...]) of a label CSV in UTF-8 (with or without a byte-order mark); rows with
    every cell empty (a spreadsheet's trailing ``,,,,,,``) are skipped, missing cells read as empty. Cells are
    separated by commas, or by semicolons where the header has semicolons and no comma (Excel's "CSV" in a European
    locale).

    A file in another encoding is a LabelEncodingError rather than a guess: cp1252 would decode nearly any bytes,
    so a Mac Roman or Latin-9 file would be read with wrong names instead of refused.
    """
    path = Path(path)
    data = path.read_bytes()
    if looks_utf16(data):
        raise LabelEncodingError(
            f"label file {path} is in UTF-16 (every other byte is zero, as in Excel's \"Unicode Text\"); expected "
            "UTF-8: open it and save it again as \"CSV UTF-8 (Comma delimited)\"")
    try:
        text = data.decode(CSV_ENCODING)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise LabelEncodingError(
            f"label file {path} is not UTF-8: byte 0x{data[e.start]:02x} on line {line} is not a UTF-8 character "
            "(it was probably saved by Excel as plain \"CSV\", in the Windows code page); expected UTF-8: open it "
            "and save it again as \"CSV UTF-8 (Comma delimited)\"") from e
    delimiter = csv_delimiter(text.lstrip().split("\n", 1)[0])
    if delimiter != ",":
        logger.info("%s: the header is separated by %r (a spreadsheet set to a European locale): read as such", path,
                    delimiter)
    reader = csv.DictReader(io.StringIO(text, newline=""), restval="", delimiter=delimiter)
    rows = []
    for row in reader:
        if any((value or "").strip() for key, value in row.items() if key is not None):
            rows.append((reader.line_num, {k: v or "" for k, v in row.items() if k is not None}))
    return list(reader.fieldnames or []), rows


def separator_hint(header: Sequence[str]) -> str:
    """For a missing-column message: a note when the header was not split where the file's author meant (a cell
    holding ``;`` beside a comma: semicolons and commas mixed), with how to save the file again; else ""."""
    if not any(";" in c for c in header):
        return ""
    return (" (the header holds ';' as well as ',': the file looks separated by semicolons, as Excel writes \"CSV\" in "
            "a European locale; save it again as \"CSV UTF-8 (Comma delimited)\" or remove the commas from the header)")


def canonical_columns(path: Path, header: Sequence[str], rows: Rows, names: Iterable[str]) -> tuple[list[str], Rows]:
    """``header`` and ``rows`` with every column that spells one of ``names`` in another case or with spaces around it
    (``Image_ID``, `` dx``) renamed to that name; two columns spelling one name is an UnknownLabelError naming both."""
    wanted = {name.lower(): name for name in names}
    renamed: dict[str, str] = {}
    for column in header:
        name = wanted.get(column.strip().lower())
        if name is None:
            continue
        twin = next((c for c, n in renamed.items() if n == name), None)
        if twin is not None:
            raise UnknownLabelError(f"{path}: columns {twin!r} and {column!r} both name {name!r}; expected one such column: "
                                    "remove or rename one")
        renamed[column] = name
    if all(c == n for c, n in renamed.items()):
        return list(header), rows
    logger.info("%s: columns %s read as %s", path, list(renamed), list(renamed.values()))
    return ([renamed.get(c, c) for c in header],
            [(line, {renamed.get(k, k): v for k, v in row.items()}) for line, row in rows])


def accepted_formats() -> str:
    """The image formats the readers (and the service) take, for messages: ``JPEG, PNG, BMP or TIFF (.jpg, ...)``."""
    return f"JPEG, PNG, BMP or TIFF ({', '.join(IMAGE_SUFFIXES)})"


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` when it is a folder, else raise MissingFolderError naming ``what``."""
    if not path.is_dir():
        raise MissingFolderError(f"{what} folder {path} does not exist; expected it in the dataset layout")
    return path


def list_images(*folders: Path, any_name: bool = False) -> dict[str, Path]:
    """Map image ids (file stems, in Unicode normal form C: ``image_key``) to their image files in one or more folders
    and their subfolders.

    Hidden files (macOS's ``._P001.jpg`` copies of a file's attributes) are skipped. Only ``ISIC_<7 digits>`` stems
    count (superpixel and other files are skipped) unless ``any_name``, for layouts whose label CSV names the images
    (a site's own names, e.g. ``P001``). One id naming two files (``x.jpg`` and
    ``x.png``, the same name in two subfolders or two folders, or one name stored in two Unicode forms) is a
    DuplicateImageError: which one is labelled cannot be known.
    """
    out: dict[str, Path] = {}
    found: list[Path] = []
    for folder in folders:
        found += [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        found += sorted(p for p in folder.rglob("*") if p.parent != folder and p.is_file() and not p.name.startswith("."))
    for p in found:
        if p.suffix.lower() in IMAGE_SUFFIXES and (any_name or IMAGE_ID.match(p.stem)):
            key = image_key(p)
            if key in out:
                same = out[key].name != p.name and nfc(out[key].name) == nfc(p.name)
                why = " (the two names are the same letters stored in two Unicode forms)" if same else ""
                raise DuplicateImageError(
                    f"image id {key} names two files, {out[key]} and {p}{why}; expected one file per id: "
                    "remove or rename one"
                )
            out[key] = p
    return out


def shown_names(names: Sequence[str], limit: int = SHOWN_NAMES) -> str:
    """The first ``limit`` of ``names``, comma-separated, then "and N more" for the rest (for a warning)."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def keep_label(labels: dict[str, tuple[int, int]], image_id: str, label: int, line: int, where: str) -> bool:
    """Record ``image_id``'s label from CSV ``line``; False when an earlier row gave it the same label (the repeat is
    to be skipped), DuplicateImageError when it gave another one (which is right cannot be known)."""
    if image_id not in labels:
        labels[image_id] = (label, line)
        return True
    first_label, first_line = labels[image_id]
    if first_label != label:
        raise DuplicateImageError(
            f"{where}: lines {first_line} and {line} both list {image_id}, with different diagnoses; expected one row "
            "per image: keep the row with the right diagnosis and remove the other"
        )
    return False


@dataclass(frozen=True)
class LabelRow:
    """One label row of a layout whose CSV names its images (HAM10000, labels.csv): its CSV line, the image cell as
    written, the contract class index and the lesion id (empty when unknown)."""

    line: int
    listed: str
    label: int
    lesion_id: str = ""


def warn_left_out(log: logging.Logger, root: Path, labels_file: str, index: ImageIndex, missing: Sequence[str],
                  near: Mapping[str, str], unlabelled: Sequence[Path]) -> None:
    """The WARNINGs for what a label file's rows and the image folder did not match, each naming the files (five,
    then a count): rows whose picture is on disk in a format not accepted, rows whose picture is absent (with the file
    each nearly names), and pictures no row names."""
    other_format = {image_id: found for image_id in missing if (found := index.other_format(image_id)) is not None}
    absent = [image_id for image_id in missing if image_id not in other_format]
    if other_format:
        log.warning("%s: %d image(s) listed in %s are on disk in a format not accepted and were left out: %s; expected "
                    "%s: convert them to JPEG or PNG (and name the new files in %s where a row gives the extension)",
                    root, len(other_format), labels_file,
                    shown_names([index.shown(p) for p in other_format.values()]), accepted_formats(), labels_file)
    if absent:
        log.warning("%s: %d image(s) listed in %s are absent on disk and were left out: %s", root, len(absent),
                    labels_file, shown_names([f"{i} ({near[i]})" if i in near else i for i in absent]))
    if unlabelled:
        log.warning("%s: %d image(s) on disk have no row in %s and were left out: %s", root, len(unlabelled),
                    labels_file, shown_names([index.shown(p) for p in unlabelled]))


def labelled_dataset(name: str, root: Path, rows: Iterable[LabelRow], index: ImageIndex, labels_file: str,
                     masks: Mapping[str, Path] | None = None, relabel: Callable[[str, int], int] | None = None,
                     log: logging.Logger = logger) -> Dataset:
    """The dataset of label rows matched to the image files of ``index``: a row naming no file is counted (with the
    file it nearly names, ``near_misses``), a file no row names is counted (``unlabelled_images``), a row repeated
    with the same label is read once and one repeated with another label is refused (``keep_label``);
    ``relabel(image_id, label)`` may refine a row's label (HAM10000's akiec by an ISIC 2019 row); each kind of
    skipped row is logged once, with an example."""
    samples: list[Sample] = []
    missing: list[str] = []
    repeated: list[str] = []
    labels: dict[str, tuple[int, int]] = {}
    near: dict[str, str] = {}
    for row in rows:
        listed = nfc(row.listed.strip())
        path = index.find(listed)
        image_id = image_key(path) if path is not None else listed
        label = relabel(image_id, row.label) if relabel is not None else row.label
        if not keep_label(labels, image_id, label, row.line, labels_file):
            repeated.append(image_id)
            continue
        if path is None:
            missing.append(image_id)
            if (hint := index.near_miss(listed)) is not None:
                near[image_id] = hint
            continue
        samples.append(Sample(image_id, path, (masks or {}).get(image_id), label, row.lesion_id.strip(), name))
    missing_labels = {image_id: labels[image_id][0] for image_id in missing}
    unlabelled = tuple(p for image_id, p in sorted(index.images.items()) if image_id not in labels)
    warn_left_out(log, root, labels_file, index, missing, near, unlabelled)
    if repeated:
        log.warning("%s: %d image(s) listed again in %s with the same diagnosis were read once, e.g. %s", root,
                    len(repeated), labels_file, repeated[0])
    return Dataset(name, root, tuple(samples), missing_images=tuple(missing), duplicate_rows=tuple(repeated),
                   unlabelled_images=unlabelled, near_misses=near, missing_labels=missing_labels)


def list_masks(folder: Path, suffix: str) -> dict[str, Path]:
    """Map image ids to mask files named ``<id><suffix>`` (e.g. ``_segmentation.png``); image files in the folder
    named otherwise (``<id>_mask.png``) are not masks of any image, and a WARNING names the folder, the pattern and one
    of them."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    masks = {p.name[: -len(suffix)]: p for p in files if p.name.endswith(suffix)}
    other = [p.name for p in files if not p.name.endswith(suffix) and p.suffix.lower() in IMAGE_SUFFIXES]
    if other:
        logger.warning("%s: %d of %d image file(s) are not named `<image_id>%s` and were not read as masks, e.g. %s; "
                       "rename them to `<image_id>%s` (the id of their image) for their images to get a mask",
                       folder, len(other), len(other) + len(masks), suffix, other[0], suffix)
    return masks


def _lower_suffix(name: str) -> str:
    """``name`` (a file name or a ``/`` path) in normal form C with its extension in lower case."""
    path = PurePosixPath(nfc(name))
    return path.with_suffix(path.suffix.lower()).as_posix() if path.suffix else path.as_posix()


def _one_file_each(pairs: list[tuple[str, Path]]) -> dict[str, Path]:
    """key -> file for the keys one file answers (a file may give one key twice: its name and its path)."""
    files: dict[str, set[Path]] = {}
    for key, p in pairs:
        files.setdefault(key, set()).add(p)
    return {key: next(iter(found)) for key, found in files.items() if len(found) == 1}


class NamedFiles:
    """Files looked up by what a label cell names when it names no image a reader took: by the file's name or its stem
    (the cell may hold a path, whose last part counts; ``P001.jpg`` also names ``P001.heic``), in Unicode normal form
    C, upper/lower case ignored when nothing matches exactly; the first file in the order given wins a tie. What the
    readers (``ImageIndex.other_format``) and ``dermassist evaluate`` both use to say a picture is there in a format
    not accepted, not absent."""

    def __init__(self, files: Iterable[Path]) -> None:
        self._exact: dict[str, Path] = {}
        self._folded: dict[str, Path] = {}
        for p in files:
            for key in (nfc(p.name), image_key(p)):
                self._exact.setdefault(key, p)
                self._folded.setdefault(key.casefold(), p)

    def find(self, cell: str) -> Path | None:
        """The file ``cell`` names, else None."""
        name = re.split(r"[\\/]", nfc(cell.strip()))[-1]
        for key in (name, without_image_suffix(name)):
            found = self._exact.get(key) or self._folded.get(key.casefold())
            if found is not None:
                return found
        return None


class ImageIndex:
    """The image files of a layout whose data folder is ``root``, looked up by what a label cell names.

    A cell names a file by its name, with or without the extension (``P001.jpg`` or ``P001``), or by its path
    relative to ``root`` with ``/`` or ``\\`` (``HAM10000_images_part_1/P001.jpg``). Either form also names the file
    whose image extension differs only in case (``P001.jpg`` names ``P001.JPG``, as Windows and macOS take them for
    one file), unless two files answer it so (``P001.jpg`` and ``P001.JPG`` both there, the cell ``P001.Jpg``): then
    it names neither, rather than one by chance. Names are compared in Unicode
    normal form C (``nfc``), and the file keeps its real path. An absolute path (``C:\\...``, ``/mnt/...``) matches
    nothing, as it breaks when the folder is copied or moved: ``near_miss`` says which file to name instead.
    """

    def __init__(self, images: Mapping[str, Path], root: Path) -> None:
        self.images = dict(images)
        self.root = Path(root)
        self._other: NamedFiles | None = None  # files in a format not accepted (read when asked)
        self._by_name = {nfc(p.name): p for p in self.images.values()}
        self._by_relative: dict[str, Path] = {}
        lowered: list[tuple[str, Path]] = []
        for p in self.images.values():
            lowered.append((_lower_suffix(p.name), p))
            if p.is_relative_to(self.root):
                relative = p.relative_to(self.root)
                self._by_relative[nfc(relative.as_posix())] = p
                self._by_relative[nfc(relative.with_suffix("").as_posix())] = p
                lowered.append((_lower_suffix(relative.as_posix()), p))
        # a name or path whose extension differs only in case (P001.JPG listed as P001.jpg): one file on Windows and
        # macOS; a key two files answer names neither
        self._by_lower_suffix = _one_file_each(lowered)

    def other_format(self, listed: str) -> Path | None:
        """For a label cell that names no accepted image: the file under ``root`` it names, by its name or its stem
        (the cell may be a path; upper/lower case ignored when nothing matches exactly), that is stored in a format the
        service does not accept (``.heic``, ``.webp``, ``.gif``...: no ``IMAGE_SUFFIXES`` extension; a note or label
        sheet, ``DOCUMENT_SUFFIXES``, and the operating systems' own files are no picture); else None."""
        if self._other is None:
            self._other = NamedFiles(sorted(
                p for p in self.root.rglob("*") if p.suffix.lower() not in (*IMAGE_SUFFIXES, *DOCUMENT_SUFFIXES)
                and p.name.lower() not in SYSTEM_FILES
                and not any(part.startswith(".") for part in p.relative_to(self.root).parts) and p.is_file()))
        return self._other.find(listed)

    def shown(self, path: Path) -> str:
        """``path`` as a message shows it: relative to the data folder."""
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)

    def find(self, listed: str) -> Path | None:
        """The file a label cell names (see the class), or None."""
        listed = nfc(listed.strip())
        if "/" in listed or "\\" in listed:
            if ABSOLUTE_PATH.match(listed):
                return None
            relative = PurePosixPath(listed.replace("\\", "/"))
            found = self._by_relative.get(relative.as_posix())
            listed = relative.as_posix()
        else:
            found = self._by_name.get(listed) or self.images.get(listed)
        if found is None and PurePosixPath(listed).suffix.lower() in IMAGE_SUFFIXES:
            found = self._by_lower_suffix.get(_lower_suffix(listed))
        return found

    def _near_name(self, listed: str) -> tuple[Path, str] | None:
        """(file, how the name differs) for a bare name that differs from a file's only in case or extension."""
        lowered = listed.lower()
        for p in self.images.values():
            if lowered in (nfc(p.name).lower(), image_key(p).lower()):
                return p, "the names differ only in upper/lower case"
        if Path(listed).suffix.lower() in IMAGE_SUFFIXES:
            stem = nfc(Path(listed).stem).lower()
            for p in self.images.values():
                if image_key(p).lower() == stem:
                    return p, "the extension differs"
        return None

    def near_miss(self, listed: str) -> str | None:
        """For a label cell that names no file: the file it nearly names, as a phrase for a message (``on disk as
        P004.jpg: the names differ only in upper/lower case``): a name differing only in case or extension, or a path
        (absolute, or relative but not from the data folder) whose last part names a file; else None."""
        listed = nfc(listed.strip())
        if "/" not in listed and "\\" not in listed:
            near = self._near_name(listed)
            return None if near is None else f"on disk as {near[0].name}: {near[1]}"
        name = re.split(r"[\\/]", listed)[-1]
        p, differs = self.find(name), ""
        if p is None:
            near = self._near_name(name)
            if near is None:
                return None
            p, differs = near[0], f" ({near[1]})"
        held = ("an absolute path" if ABSOLUTE_PATH.match(listed) else
                "a path that does not lead to the file from the data folder")
        return (f"on disk as {self.shown(p)}{differs}: the label holds {held}; a label names the file (or its path from "
                f"the data folder): write {p.name}")


def image_header(path: Path) -> Header:
    """What ``prepare`` reads from an image file's header (``preprocess.decode.Header``): the size it is shown and
    served at and the EXIF orientation the decoder applies (a JPEG's, or a PNG's eXIf chunk; 1 for a TIFF, which its
    decoder turns, its header size already turned)."""
    from preprocess.decode import parse_header, sniff_format
    from preprocess.errors import InvalidImageError

    try:
        data = Path(path).read_bytes()
        return parse_header(data, sniff_format(data))
    except (OSError, InvalidImageError) as e:
        raise UnreadableImageError(f"dataset file {path} cannot be read as an image ({e}); replace the file or remove "
                                   "it from the dataset") from e


def displayed_mask(mask: np.ndarray, image: Path) -> np.ndarray:
    """A lesion mask in the frame its image is shown and served in (EXIF orientation applied).

    A mask the size of the image's stored pixels is turned the way the image is turned (a square image, or an
    orientation that keeps the sides, has both frames of one size: its mask is taken as drawn on the stored pixels,
    as the file holds them); any other mask is returned as it is, for the caller's size check.
    """
    from preprocess.decode import apply_orientation

    orientation = image_header(image).orientation
    if orientation != 1 and (mask.shape[1], mask.shape[0]) == image_size(image):
        return apply_orientation(mask, orientation)
    return mask


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header."""
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (OSError, ValueError, Image.DecompressionBombError) as e:  # UnidentifiedImageError is an OSError
        raise UnreadableImageError(f"dataset file {path} cannot be read as an image ({e}); replace the file or remove "
                                   "it from the dataset") from e


def check_mask_size(image: Path, mask: Path) -> None:
    """Raise MaskMismatchError when a mask is the size of neither frame of its image: as stored, or as displayed
    after its EXIF orientation (the two differ for an image stored turned by 90 degrees)."""
    isize, msize = image_size(image), image_size(mask)
    shown = image_header(image).size
    if msize not in (isize, shown):
        turned = f" (shown {shown[0]}x{shown[1]} after its EXIF orientation)" if shown != isize else ""
        raise MaskMismatchError(
            f"mask {mask.name} is {msize[0]}x{msize[1]} but its image {image.name} is {isize[0]}x{isize[1]}{turned}; "
            "masks must have the size of their image: re-export the mask at the image size"
        )


def pair_masks(images: dict[str, Path], masks: dict[str, Path], where: str, strict: bool) -> dict[str, Path]:
    """Pair each image with its mask; with ``strict`` every image needs a mask and every mask an image."""
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise MaskMismatchError(
            f"{where}: {len(orphans)} mask(s) have no image, e.g. {orphans[0]}; expected every mask to "
            "have an image of the same id: add the image or remove the mask"
        )
    if strict:
        lonely = sorted(set(images) - set(masks))
        if lonely:
            raise MaskMismatchError(
                f"{where}: {len(lonely)} image(s) have no mask, e.g. {lonely[0]}; expected one "
                "`<id>_segmentation.png` per image: add the mask or remove the image"
            )
    for image_id, mask in masks.items():
        check_mask_size(images[image_id], mask)
    return masks


def _decimal_point(value: str) -> str:
    """``1,0`` as ``1.0``: a spreadsheet in a European locale writes a decimal comma in the semicolon-separated CSV it
    saves (a comma inside a value can only come from such a file: a comma-separated one would have split it)."""
    text = value.strip()
    return text.replace(",", ".") if re.fullmatch(r"[+-]?\d*,\d+", text) else text


def one_hot_set(value: str | None, path: Path, line: int, image: str | None, column: str) -> bool:
    """Whether a one-hot ground-truth cell is set: 1 (1.0, 1,0) or 0 (empty counts as 0); anything else (0.5, 100,
    -1, inf, nan, yes) is an UnknownLabelError naming the file, the line, the image and the column (a soft or
    percentage value had been read as set from 0.5 up)."""
    text = _decimal_point((value or "").strip() or "0")
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if number not in (0.0, 1.0):
        raise UnknownLabelError(f"{path} line {line} ({image}): column {column} holds {value!r}; expected 1 or 0 "
                                "(a one-hot ground truth; empty counts as 0): fix the row or remove it")
    return number == 1.0


def hot_columns(row: Mapping[str, str], columns: Iterable[str], path: Path, line: int) -> list[str]:
    """The class columns of a one-hot ground-truth CSV row that are set (``one_hot_set``)."""
    return [c for c in columns if one_hot_set(row[c], path, line, row.get("image"), c)]
