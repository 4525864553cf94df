"""What a run evaluates: the labelled images of a folder (one split of a manifest when given), and every label row
and file of its image folders that the figures cannot cover, with the reason."""
from __future__ import annotations

import json
import logging
import mimetypes
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath
from typing import Any

from .config import IMAGE_SUFFIXES, EvaluationConfig, EvaluationError

logger = logging.getLogger(__name__)

# Files an image folder may hold that are no image (DOCUMENT_SUFFIXES, SYSTEM_FILES: the readers' own, so the readers
# and this report tell a picture in another format from a note the same way). Every other file there that the
# layout's reader did not take is listed in images.csv with the reason it was not evaluated.
def select_samples(config: EvaluationConfig) -> tuple[str, list]:
    """(dataset name, samples) of the folder, restricted to one split of a manifest when given."""
    name, samples, _, _ = read_selection(config)
    return name, samples


def read_selection(config: EvaluationConfig) -> tuple[str, list, dict, dict]:
    """(dataset name, samples, what the folder holds or its labels name that the run cannot evaluate, facts of the
    labels a reader should know): images listed but absent on disk (with the diagnosis their row gives), images on disk
    in a format the service does not accept (labelled or not) and other files of the image folders no reader took,
    rows listed again with the same label (read once), UNK rows and images without a label; with HAM10000, how many
    ``akiec`` images were counted as AK. With a split manifest, only what belongs to its split."""
    from training.readers import read_dataset

    dataset = read_dataset(config.data)
    data = Path(config.data)
    kept = {s.image_path for s in dataset.samples}
    unlabelled = list(dataset.unlabelled_images)
    ham_rows = _ham_rows(data) if dataset.name == "ham10000" else None
    from preprocess.contract import CLASS_CODES

    truths = {_nfc(listed): CLASS_CODES[label] for listed, label in dataset.missing_labels.items()}
    unknown = list(dataset.unknown_images)
    taken = kept | set(unlabelled) | set(unknown) | {s.mask_path for s in dataset.samples if s.mask_path is not None}
    leftover = files_not_read(image_folders(dataset.name, data, [*kept, *unlabelled, *unknown]), taken,
                              skip=Path(config.out) / config.name)
    in_other_format = match_listed(dataset.missing_images, leftover)
    absent = [a for a in dataset.missing_images if a not in in_other_format]
    labelled_other = [{"image": listed, "path": relative_path(path, data), "truth": truths.get(_nfc(listed)),
                       "reason": format_reason(path)} for listed, path in in_other_format.items()]
    not_read = [{"path": relative_path(path, data), "reason": format_reason(path)}
                for path in leftover if path not in in_other_format.values()]
    not_evaluated: dict[str, Any] = {
        "absent_on_disk": absent, "near_misses": dict(dataset.near_misses),
        "absent_truth": {a: truths[_nfc(a)] for a in absent if _nfc(a) in truths},
        "not_accepted_labelled": labelled_other,  # on disk, named by a label row, in a format the service does not accept
        "not_read_files": not_read,  # on disk in an image folder, named by no label row, no image the reader takes
        "listed_again": list(dataset.duplicate_rows), "unknown_label_rows": dataset.skipped_unknown,
        "unknown_label_images": [str(p) for p in unknown],  # on disk, its label row says UNK: left out
        # on disk, named by no label row: left out, or (ISIC 2017) in the segmentation figures only
        "unlabelled_images": [str(p) for p in unlabelled if p not in kept],
        "segmentation_only": [str(p) for p in unlabelled if p in kept]}
    samples = list(dataset.samples)
    if config.split_manifest is not None:
        try:
            manifest = json.loads(Path(config.split_manifest).read_text())
        except (OSError, ValueError) as e:
            raise EvaluationError(f"split manifest {config.split_manifest} cannot be read as JSON ({e}); expected the "
                                  "<name>_split.json a training run writes") from e
        splits = sorted(k for k, v in manifest.items() if isinstance(v, list)) if isinstance(manifest, dict) else []
        if config.split not in splits:
            raise EvaluationError(f"split manifest {config.split_manifest} has no split {config.split!r}; it holds "
                                  f"{', '.join(map(repr, splits)) or 'no split'}: pass --split with one of them")
        try:
            rows = {row["image_id"]: row for row in manifest[config.split]}
        except (KeyError, TypeError) as e:
            raise EvaluationError(f"split manifest {config.split_manifest}: split {config.split!r} is not a list of "
                                  f"image ids ({e}); expected {{'{config.split}': [{{'image_id': ...}}, ...]}}") from e
        overlap = split_overlap(manifest, config.split)
        if overlap:
            raise EvaluationError(f"split manifest {config.split_manifest}: {overlap}; expected disjoint splits: use the "
                                  "manifest the training run wrote, unedited")
        wanted = set(rows)
        samples = [s for s in samples if s.image_id in wanted]
        in_split = {_nfc(w) for w in wanted}
        not_evaluated.update(manifest_mismatches(rows, samples, data, absent, in_other_format))
        not_evaluated["absent_on_disk"] = [a for a in absent if _listed_keys(a) & in_split]
        not_evaluated["not_accepted_labelled"] = [e for e in not_evaluated["not_accepted_labelled"]
                                                  if _listed_keys(e["image"]) & in_split]
    if not samples:
        raise EvaluationError(f"no image of {config.data} is selected (split {config.split!r} of "
                              f"{config.split_manifest}); check that the manifest belongs to this dataset")
    samples, not_evaluated["same_picture"] = distinct_pictures(samples, data)
    return dataset.name, samples, not_evaluated, ({"ham_akiec": akiec_facts(ham_rows, samples)} if ham_rows is not None
                                                  else {})


def split_overlap(manifest: dict, split: str) -> str | None:
    """What makes a manifest's ``split`` unfit to be evaluated: an image it shares with another split (an edited
    manifest had scored a training image as test), else None."""
    ids = {row["image_id"] for row in manifest[split]}
    for other, rows in manifest.items():
        if other == split or not isinstance(rows, list):
            continue
        shared = sorted(ids & {row.get("image_id") for row in rows if isinstance(row, dict)})
        if shared:
            return (f"{len(shared)} image(s) of split {split!r} are in split {other!r} too (e.g. {shared[0]}), so the "
                    f"{split} figures would include pictures the models were {'trained' if other == 'train' else 'tuned'} on")
    return None


def manifest_mismatches(rows: dict[str, dict], samples: Sequence, data: Path, absent: Iterable[str],
                        in_other_format: dict) -> dict[str, list]:
    """Where a manifest's split and the folder disagree (an edited manifest, or one of other labels): its rows that
    name an image of this folder that was not read (``manifest_rows_not_found``; rows of a pooled manifest's other
    sources, whose paths lie outside this folder, are not counted), and the images whose label there differs from the
    folder's (``manifest_label_differs``: the figures use the folder's). Each is logged as a WARNING. A row is this
    folder's when its path, as the manifest spells it, lies where the manifest's rows of the images read lie
    (``_manifest_home``; the folder's name, or where it lies now, tells nothing: review 16, finding 6)."""
    read = {s.image_id for s in samples}
    accounted = {_nfc(a) for a in absent} | {_nfc(k) for k in in_other_format}
    home = _manifest_home(rows, samples, data)
    not_found = sorted(i for i, row in rows.items() if i not in read and _nfc(i) not in accounted
                       and (home is None or not isinstance(row.get("image"), str)
                            or PurePath(row["image"]).is_relative_to(home)))
    differs = [{"image": s.image_id, "manifest": rows[s.image_id].get("label"), "data": s.code} for s in samples
               if rows[s.image_id].get("label") not in (None, s.code)]
    if not_found:
        logger.warning("%d image id(s) of the split manifest name no image read from %s, e.g. %s: they are not "
                       "evaluated; check that the manifest belongs to this folder", len(not_found), data, not_found[0])
    if differs:
        logger.warning("%d image(s) are labelled otherwise in the split manifest than in %s, e.g. %s (%s there, %s "
                       "here): the figures use the folder's labels; the manifest belongs to other labels", len(differs),
                       data, differs[0]["image"], differs[0]["manifest"], differs[0]["data"])
    return {"manifest_rows_not_found": not_found, "manifest_label_differs": differs}


def _manifest_home(rows: dict[str, dict], samples: Sequence, data: Path) -> PurePath | None:
    """The evaluated folder as the manifest spells it: a row's path of an image read, less that image's path inside
    the folder (a row of a sub-folder with no image read, a missing sibling, is still the folder's: review 17, 4);
    else the common parent of those rows' paths; None when neither can be told."""
    root = Path(data).resolve()
    stored = []
    for sample in samples:
        path = rows.get(sample.image_id, {}).get("image")
        if not isinstance(path, str):
            continue
        stored.append(path)
        try:
            inside = Path(sample.image_path).resolve().relative_to(root).parts
        except ValueError:
            continue
        parts = PurePath(path).parts
        if len(parts) > len(inside) and parts[-len(inside):] == inside:
            return PurePath(*parts[: -len(inside)])
    try:
        return PurePath(os.path.commonpath([str(PurePath(p).parent) for p in stored])) if stored else None
    except ValueError:
        return None


def distinct_pictures(samples: Sequence, data: Path) -> tuple[list, list[dict]]:
    """The samples with each file's bytes once (the first of each set of byte-identical files, in reading order), and
    an entry for every other copy: its name, path, label and the file it repeats (a picture exported under two names
    would otherwise count twice, and its intervals read as two lesions'). Copies whose labels disagree all stay out,
    marked ``conflict`` (one label is wrong, and which is not known here). A file that cannot be read stays in: the
    service refuses it by name."""
    import hashlib

    groups: dict[str, list] = {}
    for sample in samples:
        try:
            digest = hashlib.sha256(Path(sample.image_path).read_bytes()).hexdigest()
        except OSError:
            digest = f"unread {id(sample)}"  # a group of its own
        groups.setdefault(digest, []).append(sample)
    conflicting = {id(s) for group in groups.values() if len({s.code for s in group}) > 1 for s in group}
    kept, copies = [], []  # the groups are in the order of their first files: kept stays in reading order
    for group in groups.values():
        first = group[0]
        for sample in group:
            if id(sample) in conflicting:  # one of the labels is wrong: neither may count
                others = ", ".join(f"{relative_path(o.image_path, data)} ({o.code or 'no label'})" for o in group
                                   if o is not sample)
                copies.append({"image": sample.image_id, "path": relative_path(sample.image_path, data),
                               "truth": sample.code, "conflict": True,
                               "reason": f"the same file as {others}, labelled otherwise: one label is wrong; fix it "
                                         "and run again"})
            elif sample is first:
                kept.append(sample)
            else:
                copies.append({"image": sample.image_id, "path": relative_path(sample.image_path, data),
                               "truth": sample.code,
                               "reason": f"the same file as {relative_path(first.image_path, data)}: counted once"})
    return kept, copies


def _nfc(name: str) -> str:
    """A name trimmed and in Unicode normal form C (the readers' ``nfc``): how label rows and file names are compared
    (macOS stores file names decomposed)."""
    from training.readers.common import nfc

    return nfc(str(name).strip())


def _cell_name(cell: str) -> str:
    """The file name a label cell gives (its last part: a cell may hold a path), in Unicode normal form C."""
    return re.split(r"[\\/]", _nfc(cell))[-1]


def _listed_keys(listed: str) -> set[str]:
    """The names a label cell may mean a file by: its file name, and that without an image extension
    (``P001.jpg`` -> ``P001``), in Unicode normal form C."""
    name = _cell_name(listed)
    return {name, Path(name).stem} if Path(name).suffix.lower() in IMAGE_SUFFIXES else {name}


AKIEC = "akiec"  # HAM10000's actinic keratoses and intraepithelial carcinoma (SCC in situ): one dx code


def _ham_rows(data: Path) -> list[tuple[str, str]] | None:
    """(image as listed, dx in lower case) of every row of a HAM10000 metadata file, for the count of its ``akiec``
    images; None (logged) when the file cannot be read again. The reader has read it and logged what it found
    already: its logger is quiet meanwhile."""
    from training.errors import TrainingError
    from training.readers.ham import HAM_METADATA, read_ham_metadata

    reader_log = logging.getLogger("training.readers")
    level = reader_log.level
    reader_log.setLevel(logging.ERROR)
    try:
        return [(row["image_id"], " ".join(row["dx"].split()).lower()) for _, row in read_ham_metadata(data / HAM_METADATA)]
    except (TrainingError, OSError, KeyError, TypeError, ValueError) as e:
        logger.warning("%s cannot be read again (%s): the report gives no count of the akiec images", data / HAM_METADATA,
                       e)
        return None
    finally:
        reader_log.setLevel(level)


def akiec_facts(ham_rows: Sequence[tuple[str, str]] | None, samples: Sequence) -> dict[str, int]:
    """How many evaluated images a HAM10000 metadata (``ham_rows``) labels ``akiec``, how many of them were counted as
    AK (the contract maps akiec to AK, though HAM10000's akiec also holds intraepithelial carcinoma) and how many took
    an ISIC 2019 AK or SCC label instead, as the reader labelled them; {} when the metadata could not be read again."""
    from preprocess.contract import CLASS_CODES

    if ham_rows is None:
        return {}
    akiec = {key for listed, dx in ham_rows if dx == AKIEC for key in _listed_keys(listed)}
    ak = CLASS_CODES.index("AK")
    labels = [s.label for s in samples if {_nfc(s.image_path.name), _nfc(s.image_id)} & akiec]
    return {"images": len(labels), "counted_as_ak": sum(label == ak for label in labels),
            "relabelled_by_isic2019": sum(label != ak for label in labels)}


#: The dataset name of the generic layout (a ``labels.csv`` naming images that lie anywhere under the data folder).
LABELS_CSV_LAYOUT = "labels_csv"


def image_folders(dataset: str, data: Path, images: Iterable[Path]) -> list[tuple[Path, bool]]:
    """The folders of ``data`` the layout keeps its images in, each with whether its subfolders count: HAM10000's
    ``HAM10000_images*`` and ISIC 2019's input folder with their subfolders (their readers read those), the whole data
    folder for the generic ``labels.csv`` layout (its reader reads every image under it), and the folder of each image
    the reader listed (``images``), alone."""
    from training.readers.ham import HAM_IMAGE_PREFIX
    from training.readers.isic2019 import ISIC2019_IMAGES

    data = Path(data)
    whole: list[Path] = []
    if dataset == "ham10000":
        whole = sorted(p for p in data.iterdir() if p.is_dir() and p.name.startswith(HAM_IMAGE_PREFIX))
    elif dataset == "isic2019" and (data / ISIC2019_IMAGES).is_dir():
        whole = [data / ISIC2019_IMAGES]
    elif dataset == LABELS_CSV_LAYOUT:
        whole = [data]
    alone = sorted({Path(p).parent for p in images})
    return [(f, True) for f in whole] + [(f, False) for f in alone
                                         if not any(f == w or f.is_relative_to(w) for w in whole)]


def files_not_read(folders: Iterable[tuple[Path, bool]], taken: set[Path], skip: Path | None = None) -> list[Path]:
    """Every file of ``folders`` (with their subfolders where marked) that is not in ``taken`` (the images, unlabelled
    images and masks the reader listed), sorted; hidden files, label sheets and notes (DOCUMENT_SUFFIXES), the
    operating systems' own files (SYSTEM_FILES) and anything under ``skip`` (the report folder, should --out lie in the
    data folder) are left out."""
    from training.readers.common import DOCUMENT_SUFFIXES, SYSTEM_FILES

    found: set[Path] = set()
    skipped = Path(skip).resolve() if skip is not None else None
    for folder, deep in folders:
        for p in folder.rglob("*") if deep else folder.iterdir():
            if (p.is_file() and p not in taken and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                    and p.suffix.lower() not in DOCUMENT_SUFFIXES and p.name.lower() not in SYSTEM_FILES
                    and (skipped is None or not p.resolve().is_relative_to(skipped))):
                found.add(p)
    return sorted(found)


def match_listed(listed: Iterable[str], files: Sequence[Path]) -> dict[str, Path]:
    """For each label cell that named no image the reader took: the file of ``files`` it names
    (:class:`training.readers.common.NamedFiles`, as the readers find a picture in a format not accepted)."""
    from training.readers.common import NamedFiles

    named = NamedFiles(files)
    return {cell: path for cell in listed if (path := named.find(cell)) is not None}


def format_reason(path: Path) -> str:
    """Why a file in an image folder that the reader did not take is not evaluated, and what to do: a format the
    service does not accept (by its content or its extension: HEIC, GIF, WebP...: convert it; a JPEG, PNG, BMP or TIFF
    under another extension, e.g. .jfif: rename it), an image file the layout does not read by its name, or no image."""
    from preprocess.decode import other_format, sniff_format
    from preprocess.errors import PreprocessError

    suffix = path.suffix.lower() or "no extension"
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ("an image file the layout's reader does not read (its name is not one the layout gives its images, or "
                "it lies where the layout keeps no images): rename or move it as the layout expects")
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError as e:
        return f"the file cannot be read ({e.strerror or e})"
    try:
        inside: str | None = sniff_format(head)
    except PreprocessError:
        inside = None
    if inside is not None:
        return (f"not an accepted image format ({suffix}, though its content is a {inside}); rename it to "
                f"{path.stem}{'.jpg' if inside == 'JPEG' else '.' + inside.lower()}")
    if other_format(head) is not None or (mimetypes.guess_type(path.name)[0] or "").startswith("image/"):
        return f"not an accepted image format ({suffix}); convert it to JPEG or PNG"
    return f"not an image file ({suffix})"


def image_files(folder: Path) -> list[Path]:
    """Every image file under a folder, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def relative_path(path: Path | str, folder: Path | None) -> str:
    """``path`` below ``folder`` when it lies there (the report names the folder), else as given."""
    try:
        return str(Path(path).relative_to(folder)) if folder is not None else str(path)
    except ValueError:
        return str(path)
