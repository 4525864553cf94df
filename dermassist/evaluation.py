"""Site validation through the SERVED ensemble: ``dermassist evaluate``.

A labelled folder in any accepted layout (optionally one split of a manifest) goes through a running
DermAssist (``--url``) or an embedded one started for the run, with the thin client SDK, exactly as a
hospital's integration would call it. The report gives segmentation Dice/Jaccard where masks exist;
accuracy, balanced accuracy, macro F1, per-class recall, melanoma ROC AUC, ECE with a reliability
diagram; REFER sensitivity and specificity; the share not assessable; and, with ``--ood``, how well
OOD_SCORE tells a folder of non-dermoscopic images from the labelled ones. Beside the figures, every
image's answer (``images.csv``) and the images a clinician should look at first: the melanomas REFER
missed and the images that came back not assessable.

For a sign-off the report says when (UTC) and against which server it ran, the model version and the REFER threshold
in force (known when evaluate served the repository itself), what its referral figures count, and what its figures
leave out: every labelled image not evaluated (with its diagnosis) and every other file of the image folders, with
the reason. An earlier report is cleared only once the service answers and is ready.
"""
from __future__ import annotations

import csv
import errno
import json
import logging
import mimetypes
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .base.errors import DermAssistError
from .base.settings import Settings
from .remote import RemoteSettings

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
BATCH = 8
REVIEW_ROWS = 25  # rows of each review list in report.md; images.csv has them all
ATTRIBUTION = {
    "isic2018_task3": "ISIC 2018 Task 3 (Codella et al., arXiv:1902.03368; Tschandl et al., HAM10000, Sci. Data 5, "
                      "180161, 2018), CC BY-NC 4.0",
    "ph2": "PH2 (Mendonca et al., IEEE EMBC 2013), free for research use with this citation",
    "isic2017": "ISIC 2017 Challenge (Codella et al., ISBI 2018), ISIC Archive, CC-0",
    "ham10000": "HAM10000 (Tschandl, Rosendahl, Kittler, Sci. Data 5, 180161, 2018), CC BY-NC-SA 4.0; lesion masks "
                "Tschandl et al., Nat. Med. 2020",
    "isic2019": "ISIC 2019 Challenge (BCN20000: Combalia et al. 2019; HAM10000), CC BY-NC",
}
PUBLIC_ID = re.compile(r"^ISIC_\d{7}$")  # how the ISIC archive names its images (PH2's layout admits only its own)
#: Every file a report writes; a new run removes these (and only these) from the folder before it sends an image.
REPORT_FILES = ("report.json", "report.md", "images.csv", "confusion.png", "melanoma_roc.png", "per_class_recall.png",
                "reliability.png", "ood_scores.png")
FITTED_SPLITS = ("train", "val")  # the splits of a release's manifest the model was fitted or tuned on
#: Files an image folder may hold that are no image: label sheets, notes, the operating systems' own files. Every other
#: file there that the layout's reader did not take is listed in images.csv with the reason it was not evaluated.
DOCUMENT_SUFFIXES = (".csv", ".xlsx", ".xls", ".ods", ".txt", ".md", ".json", ".xml", ".html", ".yaml", ".yml")
SYSTEM_FILES = ("thumbs.db", "desktop.ini")
#: Seconds the check that a DermAssist at --url answers may take (its retries included), before anything is cleared.
READY_TIMEOUT_S = 30.0
NO_DIAGNOSIS = {
    "isic2017": "no ISIC-2017_<Split>_Part3_GroundTruth.csv lies beside the image folders, so no image has a diagnosis: "
                "add the Part 3 ground truth for diagnosis figures",
    "isic2018": "the ISIC 2018 Task 1 segmentation layout carries lesion masks but no diagnosis (ISIC 2018 Task 3 has them)",
    "isic2016": "the ISBI 2016 Part 1 segmentation layout carries lesion masks but no diagnosis",
}


class EvaluationError(DermAssistError):
    """The evaluation cannot run: no images, a bad split manifest, or a server that cannot be reached."""


@dataclass(frozen=True)
class EvaluationConfig(Settings, RemoteSettings):
    """What to evaluate and where the report goes; validated on construction (``resolve``: flags >
    DERMASSIST_EVALUATE_* > defaults)."""

    env_prefix = "DERMASSIST_EVALUATE_"
    config_error = EvaluationError

    data: Path
    name: str = ""
    out: Path = Path("reports/evaluate")
    repository: Path | None = None
    split_manifest: Path | None = None
    split: str = "test"
    ood: Path | None = None

    def __post_init__(self) -> None:
        if not Path(self.data).is_dir():
            raise EvaluationError(f"--data {self.data} is not a folder; expected a dataset in an accepted layout")
        if self.ood is not None and not Path(self.ood).is_dir():
            raise EvaluationError(f"--ood {self.ood} is not a folder; expected a folder of non-dermoscopic images")
        if self.split_manifest is not None and not Path(self.split_manifest).is_file():
            raise EvaluationError(f"--split-manifest {self.split_manifest} does not exist; expected a split JSON "
                                  "written by training (e.g. training/release/splits/classifier_split.json)")
        if self.name and (Path(self.name).name != self.name or self.name in (".", "..") or "\\" in self.name):
            raise EvaluationError(f"--name {self.name!r} is not a plain folder name; expected a name without / or \\ "
                                  "that is not . or .. (the report goes to OUT/NAME/): pass e.g. --name site_a, and "
                                  "--out for the folder above it")
        if self.url:  # refused before anything is read, sent or cleared (a scheme, no port, a bad port)
            from dermassist_client import ClientConfig, ClientConfigError

            try:
                ClientConfig(url=self.url)
            except ClientConfigError as e:
                raise EvaluationError(f"--url {self.url!r} is not the address of a DermAssist: {e}; expected the HOST:PORT "
                                      "of its gRPC port, without http:// or grpc:// (e.g. --url 10.0.0.5:8001): pass "
                                      "--url HOST:PORT") from e
        if not self.name:  # the folder's own name, also for `--data .`
            object.__setattr__(self, "name", Path(self.data).resolve().name
                               + (f"_{self.split}" if self.split_manifest else ""))
        self.check_tls(EvaluationError, "they are for a running DermAssist served over TLS (the embedded server "
                                        "started without --url is local plaintext)")


@dataclass
class Answers:
    """What the service said about each image that it answered, and which images it refused."""

    paths: list[Path] = field(default_factory=list)
    results: list = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


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
    taken = kept | set(unlabelled) | {s.mask_path for s in dataset.samples if s.mask_path is not None}
    leftover = files_not_read(image_folders(dataset.name, data, [*kept, *unlabelled]), taken,
                              skip=Path(config.out) / config.name)
    in_other_format = match_listed(dataset.missing_images, leftover)
    absent = [a for a in dataset.missing_images if a not in in_other_format]
    labelled_other = [{"image": listed, "path": _relative(path, data), "truth": truths.get(_nfc(listed)),
                       "reason": format_reason(path)} for listed, path in in_other_format.items()]
    not_read = [{"path": _relative(path, data), "reason": format_reason(path)}
                for path in leftover if path not in in_other_format.values()]
    not_evaluated: dict[str, Any] = {
        "absent_on_disk": absent, "near_misses": dict(dataset.near_misses),
        "absent_truth": {a: truths[_nfc(a)] for a in absent if _nfc(a) in truths},
        "not_accepted_labelled": labelled_other,  # on disk, named by a label row, in a format the service does not accept
        "not_read_files": not_read,  # on disk in an image folder, named by no label row, no image the reader takes
        "listed_again": list(dataset.duplicate_rows), "unknown_label_rows": dataset.skipped_unknown,
        # on disk, named by no label row: left out, or (ISIC 2017) in the segmentation figures only
        "unlabelled_images": [str(p) for p in unlabelled if p not in kept],
        "segmentation_only": [str(p) for p in unlabelled if p in kept]}
    samples = list(dataset.samples)
    if config.split_manifest is not None:
        try:
            manifest = json.loads(Path(config.split_manifest).read_text())
            wanted = {row["image_id"] for row in manifest[config.split]}
        except (ValueError, KeyError, TypeError) as e:
            raise EvaluationError(f"split manifest {config.split_manifest} has no split {config.split!r} of image ids "
                                  f"({e}); expected {{'{config.split}': [{{'image_id': ...}}, ...]}}") from e
        samples = [s for s in samples if s.image_id in wanted]
        in_split = {_nfc(w) for w in wanted}
        not_evaluated["absent_on_disk"] = [a for a in absent if _listed_keys(a) & in_split]
        not_evaluated["not_accepted_labelled"] = [e for e in not_evaluated["not_accepted_labelled"]
                                                  if _listed_keys(e["image"]) & in_split]
    if not samples:
        raise EvaluationError(f"no image of {config.data} is selected (split {config.split!r} of "
                              f"{config.split_manifest}); check that the manifest belongs to this dataset")
    return dataset.name, samples, not_evaluated, ({"ham_akiec": akiec_facts(ham_rows, samples)} if ham_rows is not None
                                                  else {})


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


def akiec_caveat(facts: Mapping[str, int]) -> str:
    """The report's word on HAM10000's akiec: counted as AK, may hold SCC in situ, and how to tell them apart."""
    from training.readers.ham import HAM_METADATA
    from training.readers.isic2019 import ISIC2019_GROUND_TRUTH

    counted, other = facts.get("counted_as_ak"), facts.get("relabelled_by_isic2019")
    took = f"; {other} took the AK or SCC label of {ISIC2019_GROUND_TRUTH} beside the metadata" if other else ""
    count = ("" if counted is None else " (no evaluated image here is labelled akiec)" if not counted and not other
             else f" ({_plural(counted, 'evaluated image')}{took})")
    return (f"the HAM10000 layout was read: its diagnosis `akiec` was counted as AK (actinic keratosis), as the contract "
            f"maps it{count}. HAM10000's `akiec` also holds intraepithelial "
            "carcinoma (squamous cell carcinoma in situ, Bowen's disease), so the AK figures may include SCC, and SCC gets "
            "none of these images. The ISIC 2019 layout, with its own AK and SCC columns, tells them apart: evaluate the "
            f"images in that layout, or put its {ISIC2019_GROUND_TRUTH} beside {HAM_METADATA} (the AK or SCC of each "
            "image it lists replaces `akiec`)")


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
    """For each label cell that named no image the reader took: the file of ``files`` it names, by its name or its
    stem (the cell may hold a path; Unicode normal form C; upper/lower case ignored when nothing matches exactly)."""
    by_name: dict[str, Path] = {}
    by_folded: dict[str, Path] = {}
    for p in files:
        for key in (_nfc(p.name), _nfc(p.stem)):
            by_name.setdefault(key, p)
            by_folded.setdefault(key.casefold(), p)
    found = {}
    for cell in listed:
        name = _cell_name(cell)
        path = by_name.get(name) or by_folded.get(name.casefold())
        if path is not None:
            found[cell] = path
    return found


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


@contextmanager
def service(config: EvaluationConfig) -> Iterator[str]:
    """The gRPC address to evaluate: ``--url``, checked to answer and be ready (``check_ready``), or an embedded server
    started on the repository for the run (ready when it is yielded)."""
    if config.url:
        check_ready(config.url, config)
        yield config.url
        return
    from .base.repository import SOURCE_REPOSITORY, require_artifacts
    from .base.server import embedded_server

    repository = config.repository or SOURCE_REPOSITORY
    require_artifacts(repository, EvaluationError)
    with embedded_server(repository) as server:
        yield server.config.grpc_address


def check_ready(url: str, config: EvaluationConfig) -> None:
    """Raise EvaluationError unless the DermAssist at ``url`` answers and says it is ready; no image is sent. A run
    checks this before it clears an earlier report, so a wrong address or a server that is down leaves that report."""
    from dermassist_client import DermAssistClient, DermAssistClientError

    timeout = min(config.timeout_s, READY_TIMEOUT_S)
    try:
        with DermAssistClient(url, timeout=timeout, **config.client_options()) as client:
            ready = client.ready()
    except DermAssistClientError as e:
        raise EvaluationError(f"the DermAssist at {url} did not answer the evaluation: {e}; expected a running DermAssist "
                              f"answering gRPC at --url {url}: start it (`dermassist serve`) or pass its gRPC HOST:PORT. No "
                              "image was sent, and no earlier report was removed") from e
    if not ready:
        raise EvaluationError(f"the DermAssist at {url} did not answer the evaluation: it answers but says it is not ready "
                              "(its models are still loading, or one failed to load); expected a ready DermAssist: wait "
                              "until `dermassist serve` logs that it is ready, or read its log. No image was sent, and no "
                              "earlier report was removed")


def served_settings(config: EvaluationConfig) -> dict:
    """What a report says of the server its answers came from: the --url, or "embedded, repository <path>" with the
    repository's release stamp and its triage settings (the REFER threshold, and whether an image not assessable is
    referred); with --url those live where that server runs and are None (unknown here)."""
    if config.url:
        return {"server": config.url, "embedded": False, "repository": None, "release": None, "refer_threshold": None,
                "refer_when_not_assessable": None}
    from preprocess.contract import TRIAGE_MODEL
    from preprocess.triage import TriageParams

    from .base.repository import IMPORTED, RELEASE_STAMP, SOURCE_REPOSITORY, step_settings

    repository = Path(config.repository or SOURCE_REPOSITORY)
    triage = step_settings(repository, TRIAGE_MODEL, TriageParams)
    stamp = repository / RELEASE_STAMP
    release = stamp.read_text().strip() if stamp.is_file() else None
    return {"server": f"embedded, repository {_shown_path(repository)}", "embedded": True,
            "repository": _shown_path(repository),
            "release": release.removeprefix(IMPORTED).strip() if release else None,
            "release_imported": bool(release and release.startswith(IMPORTED)),
            "refer_threshold": triage.refer_threshold, "refer_when_not_assessable": triage.refer_when_not_assessable}


def analyse(url: str, paths: Sequence[Path], timeout_s: float, with_crop: bool = False,
            options: dict[str, Any] | None = None, answers: Answers | None = None) -> Answers:
    """Send the images in batches; a refused batch is retried image by image so one bad file refuses only itself.
    ``options`` are further client SDK options (TLS). The answers go into ``answers`` as they come (a new Answers when
    none), so a caller keeps those received when a service that cannot be reached or fails raises EvaluationError."""
    from dermassist_client import DermAssistClientError

    answers = Answers() if answers is None else answers
    try:
        return _analyse(url, paths, timeout_s, with_crop, options or {}, answers)
    except DermAssistClientError as e:
        raise EvaluationError(f"the DermAssist at {url} did not answer the evaluation: {e}") from e


def _analyse(url: str, paths: Sequence[Path], timeout_s: float, with_crop: bool, options: dict[str, Any],
             answers: Answers) -> Answers:
    from dermassist_client import DermAssistClient, InvalidImageError, PartialBatchError

    with DermAssistClient(url, timeout=timeout_s, **options) as client:
        for start in range(0, len(paths), BATCH):
            part = list(paths[start : start + BATCH])
            try:
                outcomes: list[Any] = client.analyze_batch(part, with_crop=with_crop)
            except PartialBatchError as e:  # the refused images are named, the others answered
                outcomes = e.results
            for path, outcome in zip(part, outcomes):
                if isinstance(outcome, InvalidImageError):
                    answers.refused.append((str(path), outcome.reason))
                else:
                    answers.paths.append(path)
                    answers.results.append(outcome)
            logger.info("evaluated %d / %d images", min(start + BATCH, len(paths)), len(paths))
    return answers


DEGRADATIONS = ("blurred", "dark", "overexposed")
NOTE_WORDS = {"blurred": "blurred", "dark": "dark", "overexposed": "bright"}


def degrade(rgb: np.ndarray, kind: str) -> np.ndarray:
    """A heavily blurred (Gaussian, sigma 1.5% of the long side), dark (x0.25) or overexposed (x2.2 + 60)
    version of an RGB image."""
    import cv2

    if kind == "blurred":
        return cv2.GaussianBlur(rgb, (0, 0), 0.015 * max(rgb.shape[:2]))
    if kind == "dark":
        return (rgb.astype(np.float32) * 0.25).astype(np.uint8)
    if kind == "overexposed":
        return np.clip(rgb.astype(np.float32) * 2.2 + 60.0, 0, 255).astype(np.uint8)
    raise EvaluationError(f"unknown degradation {kind!r}; expected one of {DEGRADATIONS}")


def quality_check(url: str, paths: Sequence[Path], folder: Path, timeout_s: float) -> dict:
    """Degraded copies of real images through the service: the share flagged not assessable and the share
    whose note names the right problem, per kind of degradation."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind in DEGRADATIONS:
        copies = []
        for path in paths:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            target = folder / f"{kind}_{Path(path).stem}.jpg"
            cv2.imwrite(str(target), cv2.cvtColor(degrade(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), kind), cv2.COLOR_RGB2BGR))
            copies.append(target)
        results = analyse(url, copies, timeout_s).results
        out[kind] = {"images": len(results),
                     "not_assessable": float(np.mean([not r.assessable for r in results])) if results else None,
                     "note_names_it": float(np.mean([NOTE_WORDS[kind] in r.note for r in results])) if results else None}
    return out


def truth_mask(path: Path, image: Path) -> np.ndarray:
    """A ground-truth mask on the served mask grid, in the frame the service answers in: the image as displayed.

    A mask the size of the stored pixels of an image with an EXIF orientation is turned the way the image is turned
    (a square image, or a 180-degree orientation, has both frames of one size: its mask is taken as drawn on the stored
    pixels, as the image file holds them); a mask the size of the displayed image is used as it is.
    """
    from training.errors import TrainingError
    from training.images import load_mask, original_size, seg_mask

    try:
        mask = load_mask(path, image, original_size(image))
    except TrainingError as e:
        raise EvaluationError(f"ground truth of {image.name}: {e}") from e
    return seg_mask(mask).astype(np.uint8)  # the segmenter's training targets: one rule for both


def segmentation_figures(samples: Sequence, results: Sequence) -> dict | None:
    """Served MASK against the ground truth (turned like its image for display, resized to the mask grid): mean
    Dice, Jaccard, thresholded Jaccard."""
    from training.metrics import segmentation_metrics

    pairs = [(s, r) for s, r in zip(samples, results) if s.mask_path is not None]
    if not pairs:
        return None
    truth = np.stack([truth_mask(s.mask_path, s.image_path) for s, _ in pairs])
    served = np.stack([(np.asarray(r.mask) > 0).astype(np.uint8) for _, r in pairs])
    return {**segmentation_metrics(truth, served, 0.5), "images": len(pairs)}


def classification_figures(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, balanced accuracy (with its 95% stratified bootstrap interval), macro F1, per-class recall,
    melanoma ROC AUC, and ECE beside the ECE a perfectly calibrated model would score on as many images."""
    from training.metrics import (
        balanced_accuracy_interval,
        classification_metrics,
        ece_noise_floor,
        expected_calibration_error,
        melanoma_auc,
        reliability,
    )

    predicted = probs.argmax(axis=1)
    return {**classification_metrics(labels, predicted),
            "balanced_accuracy_ci95": balanced_accuracy_interval(labels, predicted),
            "melanoma_auc": melanoma_auc(labels, probs), "ece": expected_calibration_error(labels, probs),
            "ece_if_calibrated": ece_noise_floor(probs), "reliability": reliability(labels, probs),
            "images": int(len(labels))}


def triage_figures(labels: np.ndarray, refer: np.ndarray, assessable: np.ndarray) -> dict:
    """REFER's melanoma and malignant sensitivity and its benign specificity, each with its 95% Wilson interval,
    and the share not assessable."""
    from training.metrics import referral_figures, wilson_interval

    figures = asdict(referral_figures(labels, refer))
    for share, count in (("melanoma_sensitivity", "melanomas"), ("malignant_sensitivity", "malignant"),
                         ("specificity", "benign")):
        n = figures[count]
        figures[f"{share}_ci95"] = None if not n else wilson_interval(round(figures[share] * n), n)
    return {**figures, "not_assessable": float((~np.asarray(assessable, bool)).mean())}


def format_interval(interval: Sequence[float] | None, digits: int = 2) -> str:
    """``(0.67-0.97)`` for an interval, empty for none."""
    return "" if interval is None else f" ({interval[0]:.{digits}f}-{interval[1]:.{digits}f})"


def ood_figures(inside: np.ndarray, outside: np.ndarray, outside_paths: Sequence[Path],
                outside_assessable: np.ndarray) -> dict:
    """AUROC of OOD_SCORE for the out-of-distribution folder against the evaluated images, and per kind
    (the file-name prefix) the share flagged not assessable."""
    from training.metrics import roc_auc

    kinds: dict[str, list[bool]] = {}
    for path, ok in zip(outside_paths, outside_assessable):
        kinds.setdefault(Path(path).stem.rsplit("_", 1)[0], []).append(not ok)
    return {"auroc": roc_auc(np.r_[np.zeros(len(inside)), np.ones(len(outside))], np.r_[inside, outside]),
            "images": int(len(outside)), "in_distribution_images": int(len(inside)),
            "share_at_or_above_1": float((outside >= 1.0).mean()) if len(outside) else None,
            "in_distribution_share_at_or_above_1": float((inside >= 1.0).mean()) if len(inside) else None,
            "not_assessable_by_kind": {k: float(np.mean(v)) for k, v in sorted(kinds.items())}}


def report_folder(folder: Path) -> Path:
    """Create the report folder and check it can be written, before any image is sent (no run is lost to it). A
    report name longer than the file system allows for a folder name is refused with the fix: a shorter --name."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise EvaluationError(_too_long(Path(folder), e)) from e
        raise EvaluationError(f"the report folder {folder} cannot be written ({e.strerror or e}); pass --out a "
                              "writable folder") from e
    return folder


def _too_long(folder: Path, error: OSError) -> str:
    """The message for a report folder whose name (or whole path) the file system refuses as too long."""
    above = next((p for p in folder.parents if os.path.isdir(p)), Path("."))  # isdir: False for a too long path
    try:
        limit = os.pathconf(above, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    size = len(os.fsencode(folder.name))
    if size > limit:
        return (f"the report name {folder.name[:40]}... is {size} bytes long, and the file system under {above} allows "
                f"{limit} for a folder name ({error.strerror}); expected a report name of at most {limit} bytes: pass a "
                "shorter --name (e.g. --name site_a; without --name the report is named after the --data folder, "
                "plus _<split> with --split-manifest)")
    return (f"the report folder {folder} cannot be created: its path is too long for the file system ({error.strerror});"
            " expected a shorter path: pass a shorter --out or --name")


def clear_report(folder: Path) -> None:
    """Remove the files an earlier report left in ``folder`` (only the names in REPORT_FILES, nothing else), so no
    plot or table of another run can be read as this one's."""
    for name in REPORT_FILES:
        (Path(folder) / name).unlink(missing_ok=True)


def attribution(dataset: str, image_ids: Sequence[str]) -> str:
    """The credit line of the public set the images are, or "" for a site's own images in a public set's layout.

    The ISIC layouts are credited only for images named as the ISIC archive names them (``ISIC_<7 digits>``; a
    hospital's ``P001`` in the HAM10000 layout is not HAM10000), in part when only some are; PH2's layout admits
    only its own image names."""
    credit = ATTRIBUTION.get(dataset, "")
    if not credit or dataset == "ph2" or not image_ids:
        return credit
    public = sum(bool(PUBLIC_ID.match(i)) for i in image_ids)
    if public == len(image_ids):
        return credit
    return f"{public} of {len(image_ids)} images are named as in {credit}" if public else ""


def seen_in_training(image_ids: Iterable[str], release: Path) -> list[dict]:
    """Per split manifest of the release in ``release`` (its ``release.json`` names them): the evaluated images the
    model was fitted or tuned on (FITTED_SPLITS), counted per split, and the manifest's other splits. An unreadable
    release or manifest is logged and skipped: the check warns, it never stops an evaluation."""
    from training.release import ReleaseError, read_manifest

    ids = set(image_ids)
    try:
        manifests = read_manifest(release).get("data", {}).get("splits", {})
    except ReleaseError as e:
        logger.warning("no check against the training splits: %s", e)
        return []
    found = []
    for model, relative in sorted(manifests.items()):
        path = Path(release) / relative
        try:
            manifest = json.loads(path.read_text())
            splits = {k: {row["image_id"] for row in manifest.get(k, [])} for k in FITTED_SPLITS}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            logger.warning("no check against the %s split manifest %s: %s", model, path, e)
            continue
        counts = {k: len(ids & v) for k, v in splits.items()}
        if sum(counts.values()):
            held_out = {k: len(ids & {row["image_id"] for row in rows}) for k, rows in manifest.items()
                        if k not in FITTED_SPLITS and isinstance(rows, list)}
            found.append({"model": model, "manifest": _shown_path(path), "splits": counts,
                          "images": sorted(ids & set().union(*splits.values())),
                          "unseen_splits": [k for k, n in sorted(held_out.items(), key=lambda kv: -kv[1]) if n]})
    return found


def _shown_path(path: Path) -> str:
    """A path as a report shows it: relative to the working folder when it lies under it (no machine's own paths)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _not_sent(samples: Sequence, answers: Answers) -> list:
    done = {str(p) for p in answers.paths} | {str(p) for p, _ in answers.refused}
    return [s for s in samples if str(s.image_path) not in done]


def _shared(config: EvaluationConfig, name: str, samples: Sequence, not_evaluated: dict, facts: dict, run: dict,
            answers: Answers) -> dict:
    """The parts of ``report.json`` a full and a PARTIAL report share: the run (when, against which server, its
    settings), the labelled images not evaluated and the melanomas among them, the caveats of the labels and the data's
    attribution."""
    by_path = {str(s.image_path): s for s in samples}
    absent, other = not_evaluated["absent_on_disk"], not_evaluated["not_accepted_labelled"]
    truth = not_evaluated["absent_truth"]
    refused = sum(by_path[str(p)].label is not None for p, _ in answers.refused if str(p) in by_path)
    caveats = [akiec_caveat(facts["ham_akiec"])] if "ham_akiec" in facts else []
    return {"name": config.name, "dataset": name, "data": str(config.data), "run": run,
            "labelled_not_evaluated": {"absent_on_disk": len(absent), "not_accepted_format": len(other),
                                       "refused": refused, "total": len(absent) + len(other) + refused},
            "melanomas_not_evaluated": {"absent_on_disk": sum(truth.get(a) == "MEL" for a in absent),
                                        "not_accepted_format": sum(e["truth"] == "MEL" for e in other)},
            "caveats": caveats, "akiec_counted_as_ak": facts.get("ham_akiec", {}).get("counted_as_ak"),
            "attribution": attribution(name, [s.image_id for s in samples])}


def _table(config: EvaluationConfig, samples: Sequence, answers: Answers, outside: Answers, not_evaluated: dict) -> list[dict]:
    """The rows of ``images.csv``: every image answered, refused or not evaluated, and every other file of the image
    folders with the reason it was not evaluated."""
    return image_rows(samples, answers, outside, Path(config.data), config.ood, absent=not_evaluated["absent_on_disk"],
                      unlabelled=not_evaluated["unlabelled_images"], near=not_evaluated["near_misses"],
                      truths=not_evaluated["absent_truth"],
                      not_read=[*not_evaluated["not_accepted_labelled"], *not_evaluated["not_read_files"]])


def write_partial(config: EvaluationConfig, name: str, samples: Sequence, answers: Answers, outside: Answers,
                  not_evaluated: dict, reason: str, facts: dict | None = None, run: dict | None = None) -> Path:
    """After a run stopped (the service went away, Ctrl-C): ``images.csv`` with every answer received and the images
    not sent, ``report.json`` and a ``report.md`` marked PARTIAL with the reason and no figure (a figure on the
    images that happened to come first is not the site's), the run's date and server, and the data's attribution."""
    folder = Path(config.out) / config.name
    rows = _table(config, samples, answers, outside, not_evaluated)
    rows += [{"set": "evaluated", "image": s.image_id, "path": _relative(s.image_path, Path(config.data)),
              "truth": s.code or "", "status": "not sent: the run stopped before this image"}
             for s in _not_sent(samples, answers)]
    write_image_table(rows, folder / "images.csv")
    report = {**_shared(config, name, samples, not_evaluated, facts or {}, run or {}, answers), "partial": reason,
              "images": len(samples), "answered": len(answers.results), "refused": answers.refused,
              "out_of_distribution_answered": len(outside.results), "not_evaluated": not_evaluated,
              "model": _model_of(answers.results)}
    (folder / "report.json").write_text(json.dumps(report, indent=1, default=str))
    lines = [f"# PARTIAL: DermAssist site validation: {config.name}", "",
             f"**PARTIAL: this run stopped after {len(answers.results)} of {len(samples)} images were answered "
             f"({len(answers.refused)} refused): {reason}.** It gives no figure: those on the images that happened to "
             "come first would not be the site's. `images.csv` beside this report holds every answer received and names "
             "the images not sent; run the evaluation again for the report.", ""]
    lines += _run_markdown(report) + _attribution_markdown(report)
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    logger.error("evaluation stopped (%s): partial answers -> %s", reason, folder / "images.csv")
    return folder


def evaluate(config: EvaluationConfig) -> dict:
    """Run the evaluation and write ``report.json``, ``report.md``, ``images.csv`` and the plots; returns the report.

    The report folder is cleared of an earlier report only once the service answers and is ready: a wrong --url or a
    server that cannot be reached raises EvaluationError and leaves an earlier report as it was. A run that stops
    after that (the service goes away, Ctrl-C) writes what was answered, marked PARTIAL, and raises on."""
    name, samples, not_evaluated, facts = read_selection(config)
    outside_paths = image_files(config.ood) if config.ood is not None else []
    folder = report_folder(Path(config.out) / config.name)
    run: dict = {"started_utc": datetime.now(UTC).isoformat(timespec="seconds")}
    start = time.perf_counter()
    answers, outside = Answers(), Answers()
    cleared = False
    try:
        with service(config) as url:
            run.update(served_settings(config))
            clear_report(folder)
            cleared = True
            answers = analyse(url, [s.image_path for s in samples], config.timeout_s,
                              options=config.client_options(), answers=answers)
            if outside_paths:
                outside = analyse(url, outside_paths, config.timeout_s, options=config.client_options(),
                                  answers=outside)
    except KeyboardInterrupt:
        if cleared:
            write_partial(config, name, samples, answers, outside, not_evaluated, "interrupted (Ctrl-C)", facts, run)
        raise
    except DermAssistError as e:
        if cleared:
            write_partial(config, name, samples, answers, outside, not_evaluated, str(e), facts, run)
        raise
    return _finish(config, name, samples, not_evaluated, answers, outside, time.perf_counter() - start, facts, run)


def _finish(config: EvaluationConfig, name: str, samples: Sequence, not_evaluated: dict, answers: Answers,
            outside: Answers, seconds: float, facts: dict | None = None, run: dict | None = None) -> dict:
    """The figures of a complete run, written to the report folder."""
    from preprocess.contract import CLASS_CODES, REFER_CLASSES
    from training.release import RELEASE_DIR

    by_path = {s.image_path: s for s in samples}
    answered = [by_path[p] for p in answers.paths]
    results = answers.results
    report: dict = {**_shared(config, name, samples, not_evaluated, facts or {}, run or {}, answers),
                    "split": config.split if config.split_manifest else None,
                    "split_manifest": str(config.split_manifest or ""),
                    "images": len(samples), "answered": len(results), "refused": answers.refused,
                    "not_evaluated": not_evaluated,
                    "seen_in_training": seen_in_training([s.image_id for s in samples], RELEASE_DIR),
                    "refused_truth": {p: by_path[Path(p)].code for p, _ in answers.refused
                                      if Path(p) in by_path and by_path[Path(p)].code},
                    "model": _model_of(results)}
    report["segmentation"] = segmentation_figures(answered, results)
    labelled = [(s, r) for s, r in zip(answered, results) if s.label is not None]
    if labelled:
        labels = np.array([s.label for s, _ in labelled])
        probs = np.array([[r.probabilities[c] for c in r.probabilities] for _, r in labelled])
        report["classification"] = classification_figures(labels, probs)
        if all(r.refer is not None for _, r in labelled):
            refer = np.array([r.refer for _, r in labelled])
            assessable = np.array([r.assessable for _, r in labelled])
            report["triage"] = {**triage_figures(labels, refer, assessable),
                                "melanomas_refused": sum(code == "MEL" for code in report["refused_truth"].values())}
            benign = ~np.isin(labels, [CLASS_CODES.index(c) for c in REFER_CLASSES])
            report["benign_not_assessable"] = int((benign & ~assessable.astype(bool)).sum())
    else:
        report["no_diagnosis"] = (NO_DIAGNOSIS.get(name, "no evaluated image has a diagnosis label")
                                  if all(s.label is None for s in samples) else
                                  "none of the labelled images was answered (see Refused images)")
    report["review"] = review_lists(answered, results)
    report["melanomas_answered"] = sum(s.code == "MEL" for s in answered)
    if outside.results:
        inside = np.array([r.ood_score for r in results], np.float64)
        report["ood"] = ood_figures(inside, np.array([r.ood_score for r in outside.results], np.float64),
                                    outside.paths, np.array([r.assessable for r in outside.results]))
        report["ood"]["refused"] = len(outside.refused)
    elif config.ood is not None:
        report["ood_note"] = (f"all {len(outside.refused)} images of --ood {config.ood} were refused (their reasons "
                              "are in images.csv)" if outside.refused else
                              f"--ood {config.ood} holds no image file (accepted: {', '.join(IMAGE_SUFFIXES)})")
    report["seconds"] = round(seconds, 1)
    folder = write_report(report, results, answered, outside, Path(config.out) / config.name)
    write_image_table(_table(config, samples, answers, outside, not_evaluated), folder / "images.csv")
    return report


def _review_entry(sample, result) -> dict:
    return {"image": sample.image_id, "truth": sample.code, "predicted": result.top_class.code,
            "probability": float(max(result.probabilities.values())), "refer_score": result.refer_score,
            "ood_score": result.ood_score, "note": result.note}


def review_lists(samples: Sequence, results: Sequence) -> dict[str, list[dict]]:
    """The images to look at first: melanomas REFER did not refer (lowest REFER score first) and images that
    came back not assessable, each with its truth, top class, scores and note."""
    pairs = list(zip(samples, results))
    missed = [(s, r) for s, r in pairs if s.code == "MEL" and r.refer is not None and not r.refer]
    missed.sort(key=lambda pair: pair[1].refer_score if pair[1].refer_score is not None else 0.0)
    return {"melanomas_not_referred": [_review_entry(s, r) for s, r in missed],
            "not_assessable": [_review_entry(s, r) for s, r in pairs
                               if r.assessable is not None and not r.assessable]}


def _relative(path: Path | str, folder: Path | None) -> str:
    """``path`` below ``folder`` when it lies there (the report names the folder), else as given."""
    try:
        return str(Path(path).relative_to(folder)) if folder is not None else str(path)
    except ValueError:
        return str(path)


def image_rows(samples: Sequence, answers: Answers, outside: Answers, data: Path | None = None,
               ood: Path | None = None, absent: Sequence[str] = (), unlabelled: Sequence[Path | str] = (),
               near: dict[str, str] | None = None, truths: Mapping[str, str] | None = None,
               not_read: Sequence[Mapping[str, Any]] = ()) -> list[dict]:
    """One row per image: the evaluated images' answers, the out-of-distribution folder's, the refused images
    with the reason, the ``absent`` ones (listed in the labels, not on disk, with the diagnosis ``truths`` gives them;
    ``near`` says which file an absent name nearly names), the ``unlabelled`` files (on disk, in no label row) and the
    ``not_read`` files of the image folders (each a dict of its path relative to ``data``, its reason, and where a label
    row names it its ``image`` and ``truth``), so no image of the run is missing from ``images.csv``; ``samples`` are
    all the evaluated images (answered or not), paths relative to the ``data`` and ``ood`` folders."""
    from preprocess.contract import CLASS_CODES

    def row(group: str, image: str, path: Path | str, truth: str | None, result=None, refusal: str = "") -> dict:
        folder = data if group == "evaluated" else ood
        values: dict = {"set": group, "image": image, "path": _relative(path, folder), "truth": truth or "",
                        "status": f"refused: {refusal}" if refusal else "answered"}
        if result is not None:
            values.update({"predicted": result.top_class.code, "probability": max(result.probabilities.values()),
                           "refer": result.refer, "refer_score": result.refer_score, "assessable": result.assessable,
                           "ood_score": result.ood_score, "lesion_fraction": result.lesion_fraction,
                           "bbox": f"{result.bbox.x_min} {result.bbox.y_min} {result.bbox.x_max} {result.bbox.y_max}",
                           **{f"p_{code}": result.probabilities[code] for code in CLASS_CODES}, "note": result.note})
        return values

    by_path = {str(s.image_path): s for s in samples}
    rows = [row("evaluated", by_path[str(p)].image_id, p, by_path[str(p)].code, r)
            for p, r in zip(answers.paths, answers.results)]
    rows += [row("out_of_distribution", Path(p).stem, p, None, r) for p, r in zip(outside.paths, outside.results)]
    for path, why in answers.refused:
        sample = by_path.get(str(path))
        rows.append(row("evaluated", sample.image_id if sample else Path(path).stem, path,
                        sample.code if sample else None, refusal=why))
    rows += [row("out_of_distribution", Path(p).stem, p, None, refusal=why) for p, why in outside.refused]
    near, truths = near or {}, truths or {}
    rows += [{"set": "evaluated", "image": image_id, "truth": truths.get(image_id) or "",
              "status": "not evaluated: listed in the labels but absent on disk"
              + (f" ({near[image_id]})" if image_id in near else "")} for image_id in absent]
    rows += [{"set": "evaluated", "image": Path(p).stem, "path": _relative(p, data),
              "status": "not evaluated: on disk but no label row names it"} for p in unlabelled]
    rows += [{"set": "evaluated", "image": f.get("image") or Path(f["path"]).stem, "path": f["path"],
              "truth": f.get("truth") or "", "status": f"not evaluated: {f['reason']}"} for f in not_read]
    return rows


IMAGE_COLUMNS = ("set", "image", "path", "truth", "status", "predicted", "probability", "refer", "refer_score",
                 "assessable", "ood_score", "lesion_fraction", "bbox")


def write_image_table(rows: Sequence[dict], path: Path) -> Path:
    """``images.csv``: the rows of ``image_rows`` (class probabilities as ``p_<code>``), empty cells where an
    image was refused."""
    from preprocess.contract import CLASS_CODES

    columns = [*IMAGE_COLUMNS, *(f"p_{code}" for code in CLASS_CODES), "note"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
    return path


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula (a file named ``=HYPERLINK(...).jpg``) gets a
    leading apostrophe; numbers and other text are left as they are."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def _model_of(results: Sequence) -> dict:
    return {"name": results[0].model_name, "version": results[0].model_version} if results else {}


def write_report(report: dict, results: Sequence, samples: Sequence, outside: Answers, folder: Path) -> Path:
    """``report.json``, ``report.md`` and the plots of one evaluation."""
    from preprocess.contract import CLASS_CODES, CLASS_NAMES
    from training.plots import plot_bars, plot_confusion, plot_histograms, plot_roc

    from .evaluation_plots import reliability_figure, save_figure

    folder.mkdir(parents=True, exist_ok=True)
    plots = []
    cls = report.get("classification")
    if cls:
        labelled = [(s, r) for s, r in zip(samples, results) if s.label is not None]
        mel = np.array([s.code == "MEL" for s, _ in labelled])
        plot_confusion(cls["confusion_matrix"], CLASS_CODES, folder / "confusion.png",
                       f"{report['name']}: confusion (balanced accuracy {cls['balanced_accuracy']:.3f})")
        plots.append(("Confusion matrix", "confusion.png"))
        if mel.any() and not mel.all():
            plot_roc(mel, [r.probabilities["MEL"] for _, r in labelled], folder / "melanoma_roc.png",
                     f"{report['name']}: melanoma vs the rest")
            plots.append(("Melanoma ROC", "melanoma_roc.png"))
        plot_bars({c: v for c, v in cls["per_class_recall"].items()}, folder / "per_class_recall.png",
                  f"{report['name']}: recall per class", "recall")
        plots.append(("Recall per class", "per_class_recall.png"))
        save_figure(reliability_figure(cls["reliability"], f"{report['name']}: reliability of the served probabilities "
                                       f"(ECE {cls['ece']:.3f})", cls.get("ece_if_calibrated"), cls["images"]),
                    folder / "reliability.png")
        plots.append(("Reliability", "reliability.png"))
    if "ood" in report:
        plot_histograms({"evaluated images": [r.ood_score for r in results],
                         "out-of-distribution folder": [r.ood_score for r in outside.results]},
                        folder / "ood_scores.png", f"OOD_SCORE (AUROC {report['ood']['auroc']:.3f})", "OOD_SCORE", 1.0)
        plots.append(("Out-of-distribution scores", "ood_scores.png"))
    (folder / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (folder / "report.md").write_text(render_markdown(report, plots, dict(zip(CLASS_CODES, CLASS_NAMES))))
    logger.info("evaluation report -> %s", folder / "report.md")
    return folder


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _review_markdown(review: dict[str, list[dict]], melanomas: int | None = None) -> list[str]:
    """The review lists as tables (at most REVIEW_ROWS rows each), pointing to images.csv for the rest; ``melanomas``
    answered (None: not known) tells "none missed" from "none to miss"."""
    lines = ["## Images to review", "", "Every image's answer is in `images.csv` beside this report."]
    for key, title in (("melanomas_not_referred", "Melanomas REFER did not refer"), ("not_assessable", "Not assessable")):
        entries = review.get(key, [])
        if key == "melanomas_not_referred" and melanomas == 0:
            lines += ["", f"{title}: none, as the answered images hold no melanoma."]
            continue
        lines += ["", f"{title}: {len(entries) or 'none'}."]
        if entries:
            lines += ["", "| image | truth | top class | REFER score | OOD score | note |", "|---|---|---|---|---|---|"]
            lines += [f"| {e['image']} | {e['truth'] or '-'} | {e['predicted']} {_fmt(e['probability'])} | "
                      f"{_fmt(e['refer_score'])} | {_fmt(e['ood_score'])} | {e['note'].replace('|', '/')} |"
                      for e in entries[:REVIEW_ROWS]]
            if len(entries) > REVIEW_ROWS:
                lines.append(f"| and {len(entries) - REVIEW_ROWS} more: see images.csv | | | | | |")
    return lines + [""]


def _names(items: Sequence[str]) -> str:
    """The first REVIEW_ROWS names, and how many more."""
    return ", ".join(items[:REVIEW_ROWS]) + (f" and {len(items) - REVIEW_ROWS} more" if len(items) > REVIEW_ROWS else "")


def _not_evaluated_markdown(skipped: dict) -> list[str]:
    """What the labels named that the figures do not cover, said at the top so no one reads them as the whole set."""
    absent, again = skipped.get("absent_on_disk", []), skipped.get("listed_again", [])
    near, truth = skipped.get("near_misses") or {}, skipped.get("absent_truth") or {}
    parts = []
    if absent:
        shown = _names([a + (f": {truth[a]}" if a in truth else "") + (f" ({near[a]})" if a in near else "")
                        for a in absent])
        parts.append(f"{len(absent)} image(s) listed in the labels are not on disk and were not evaluated ({shown}; "
                     "images.csv lists them)")
    other = skipped.get("not_accepted_labelled") or []
    if other:
        shown = _names([f"{e['path']}" + (f": {e['truth']}" if e.get("truth") else "") + f" ({e['reason']})"
                        for e in other])
        parts.append(f"{len(other)} image(s) listed in the labels are on disk in a format the service does not accept "
                     f"and were not evaluated ({shown}; images.csv lists them)")
    not_read = skipped.get("not_read_files") or []
    if not_read:
        shown = _names([f"{e['path']} ({e['reason']})" for e in not_read])
        parts.append(f"{len(not_read)} file(s) in the image folders have no label row and are not images the layout "
                     f"reads, so they were not evaluated ({shown}; images.csv lists them)")
    if again:
        parts.append(f"{len(again)} image(s) listed twice with the same label were evaluated once ({', '.join(again[:5])})")
    if skipped.get("unknown_label_rows"):
        parts.append(f"{skipped['unknown_label_rows']} row(s) labelled UNK (unknown diagnosis) were left out")
    unlabelled, seg_only = skipped.get("unlabelled_images") or [], skipped.get("segmentation_only") or []
    if unlabelled:
        parts.append(f"{len(unlabelled)} image(s) on disk have no label row and were left out "
                     f"({_names([Path(p).name for p in unlabelled])}; images.csv lists them)")
    if seg_only:
        parts.append(f"{len(seg_only)} image(s) have no diagnosis row: they count in the segmentation figures only "
                     f"({_names([Path(p).name for p in seg_only])})")
    return [f"**Not in these figures:** {'; '.join(parts)}.", ""] if parts else []


def _seen_markdown(seen: Sequence[dict]) -> list[str]:
    """The warning that the model was fitted or tuned on some evaluated images, and how to leave them out."""
    lines = []
    for m in seen:
        counts = " and ".join(f"{n} in {k}" for k, n in m["splits"].items() if n)
        figures = _FIGURES_OF.get(m["model"], "its figures")
        unseen = (f"Evaluate only images it never saw with `--split-manifest {m['manifest']} --split "
                  f"{m['unseen_splits'][0]}`." if m["unseen_splits"] else
                  "None of the evaluated images is in its held-out splits.")
        lines += [f"**Optimistic figures:** {len(m['images'])} of the evaluated images ({counts}; e.g. "
                  f"{', '.join(m['images'][:5])}) are in the training or validation split of the released {m['model']} "
                  f"(`{m['manifest']}`): it was fitted or tuned on them, so {figures} on them are optimistic. {unseen}",
                  ""]
    return lines


_FIGURES_OF = {"segmenter": "the segmentation figures (Dice, Jaccard)",
               "classifier": "the diagnosis, calibration and referral figures"}


def _run_markdown(report: dict) -> list[str]:
    """When the run started (UTC), the server it ran against, the models' version and release, and the REFER
    threshold in force (known only when evaluate served the repository itself)."""
    from preprocess.contract import DEFAULT_REFER_THRESHOLD

    run = report.get("run") or {}
    if not run:
        return []
    when = datetime.fromisoformat(run["started_utc"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    model = report.get("model") or {}
    served = f"model {model['name']} version {model['version']}" if model else "no answer, so no model version"
    if run.get("embedded"):
        release = (f"models brought with `dermassist import` ({run['release']})" if run.get("release_imported") else
                   f"release {run['release']}" if run.get("release") else "no release stamp")
        server = f"an embedded DermAssist started for this run, serving repository `{run['repository']}` ({release})"
        default = " (the contract's default)" if run["refer_threshold"] == DEFAULT_REFER_THRESHOLD else ""
        threshold = (f"REFER threshold in force: **{run['refer_threshold']:.3f}**{default}, as the triage step of that "
                     "repository resolves it")
    else:
        server = f"the DermAssist at `{run.get('server', '?')}`"
        threshold = ("REFER threshold: **unknown** to this report: with --url it is a setting of that server's model "
                     "repository, which its answers do not carry; its operator can state it, or evaluate the same "
                     "repository without --url (`--repository`) to have it stated here")
    return [f"Run: {when}, against {server}; {served}. {threshold}.", ""]


def _attribution_markdown(report: dict) -> list[str]:
    """The credit line of the public data set the images are, at the foot of a report (full or PARTIAL)."""
    return ["---", f"Data: {report['attribution']}. For research and testing only."] if report.get("attribution") else []


def _caveats_markdown(report: dict) -> list[str]:
    """What the labels hide (HAM10000's akiec counted as AK), said at the top."""
    lines = []
    for caveat in report.get("caveats") or []:
        lines += [f"**Labels:** {caveat[:1].upper()}{caveat[1:]}.", ""]
    return lines


def _referral_counts_markdown(report: dict) -> list[str]:
    """What the referral figures count: the malignant classes (the contract's REFER classes), and images not
    assessable counted as referred (and so lowering specificity)."""
    from preprocess.contract import CLASS_CODES, CLASS_NAMES, REFER_CLASSES

    names = dict(zip(CLASS_CODES, CLASS_NAMES))
    benign = [c for c in CLASS_CODES if c not in REFER_CLASSES]
    run = report.get("run") or {}
    t = report["triage"]
    count = report.get("benign_not_assessable")
    among = (f" ({count} of the {t['benign']} benign images here {'was' if count == 1 else 'were'} not assessable)"
             if count is not None else "")
    if run.get("refer_when_not_assessable") is False:
        rule = ("This repository's triage does not refer an image for being not assessable (refer_when_not_assessable "
                "is off): such an image is referred only by its REFER score")
    else:
        setting = ("as this repository's triage is set (refer_when_not_assessable)" if run.get("embedded") else
                   "as the triage step does by default (refer_when_not_assessable; a server at --url may be set "
                   "otherwise)")
        rule = (f"An image not assessable is referred whatever its score, {setting}, and counts as referred here: a "
                f"benign one lowers specificity{among}")
    return [f"Malignant: {', '.join(f'{c} ({names[c]})' for c in REFER_CLASSES)}, the classes whose probabilities "
            f"REFER_SCORE sums (the contract's REFER classes; AK is pre-malignant); benign: the others "
            f"({', '.join(benign)}). {rule}. REFER itself is the service's answer: refer_score at or above the "
            "threshold, or the rule above.", ""]


def render_markdown(report: dict, plots: Sequence[tuple[str, str]], names: dict[str, str]) -> str:
    """The human-readable report."""
    lines = [f"# DermAssist site validation: {report['name']}", "",
             f"Data: `{report['data']}` ({report['dataset']}"
             + (f", split `{report['split']}` of `{report['split_manifest']}`" if report.get("split") else "") + "), "
             f"{report['images']} images, {report['answered']} answered, {len(report['refused'])} refused. "
             f"Model: {report['model'].get('name', '?')} version {report['model'].get('version', '?')}, "
             "through the served ensemble.", ""] + _run_markdown(report) + _seen_markdown(report.get("seen_in_training") or []) \
        + _not_evaluated_markdown(report.get("not_evaluated") or {}) + _caveats_markdown(report)
    if report.get("segmentation"):
        seg = report["segmentation"]
        lines += ["## Segmentation (served MASK against the ground truth)", "",
                  "| images | Dice | Jaccard | thresholded Jaccard |",
                  "|---|---|---|---|", f"| {seg['images']} | {_fmt(seg['dice'])} | {_fmt(seg['jaccard'])} | "
                  f"{_fmt(seg['thresholded_jaccard'])} |", ""]
    if report.get("classification"):
        c = report["classification"]
        floor = c.get("ece_if_calibrated")
        lines += ["## Diagnosis", "", "| images | accuracy | balanced accuracy | macro precision | macro recall | "
                  "macro F1 | melanoma ROC AUC | ECE |", "|---|---|---|---|---|---|---|---|",
                  f"| {c['images']} | {_fmt(c['accuracy'])} | {_fmt(c['balanced_accuracy'])}"
                  f"{format_interval(c.get('balanced_accuracy_ci95'))} | {_fmt(c['macro_precision'])} | "
                  f"{_fmt(c['macro_recall'])} | {_fmt(c['macro_f1'])} | {_fmt(c['melanoma_auc'])} | {_fmt(c['ece'])} |", ""]
        if c.get("balanced_accuracy_ci95") or floor:
            lines += ["In parentheses: the 95% interval (each class's recall drawn from its Jeffreys posterior, "
                      "Beta(right + 1/2, wrong + 1/2), so a class all right or all wrong still has its spread)."
                      + (f" ECE is not zero even for a perfectly calibrated model on {c['images']} images: with these same "
                         f"probabilities and labels drawn from them it scores a median {floor['median']:.3f} (95th "
                         f"percentile {floor['p95']:.3f}), so an ECE under {floor['p95']:.3f} is within what the sample "
                         "size alone produces. The reliability plot draws it as the grey band, the diagonal "
                         f"\u00b1 {floor['p95']:.3f}: a curve inside it on the whole is within that; a bin of a few "
                         "images may stray outside it by chance." if floor else
                         " The reliability plot has no ECE floor band: this report holds no floor to draw."), ""]
        lines += ["| class | images | recall | F1 |", "|---|---|---|---|"]
        akiec = report.get("akiec_counted_as_ak")
        for code, recall in c["per_class_recall"].items():
            name = names[code] + ("; HAM10000 akiec, may include SCC in situ" if code == "AK" and akiec else "")
            lines.append(f"| {code} ({name}) | {c['support'][code]} | {_fmt(recall)} | {_fmt(c['per_class_f1'][code])} |")
        lines.append("")
    elif report.get("no_diagnosis"):
        lines += ["## Diagnosis", "", f"No diagnosis figures: {report['no_diagnosis']}.", ""]
    if report.get("triage"):
        t = report["triage"]
        missing = report.get("melanomas_not_evaluated") or {}
        left = [_plural(n, what) for n, what in ((t.get("melanomas_refused") or 0, "refused melanoma"),
                                                 (missing.get("absent_on_disk") or 0, "missing melanoma"),
                                                 (missing.get("not_accepted_format") or 0,
                                                  "melanoma in a format not accepted")) if n]
        left_out = f"; {' and '.join(left)} not counted" if left else ""
        lines += ["## Referral and assessability", "", "| melanoma sensitivity | malignant sensitivity | benign specificity | "
                  "not assessable |", "|---|---|---|---|",
                  f"| {_fmt(t['melanoma_sensitivity'])}{format_interval(t.get('melanoma_sensitivity_ci95'))}, "
                  f"{_plural(t['melanomas'], 'melanoma')}{left_out} | {_fmt(t['malignant_sensitivity'])}"
                  f"{format_interval(t.get('malignant_sensitivity_ci95'))}, {t['malignant']} | {_fmt(t['specificity'])}"
                  f"{format_interval(t.get('specificity_ci95'))}, {t['benign']} benign | {_fmt(t['not_assessable'])} |", "",
                  "In parentheses: the 95% Wilson interval of each share.", ""] + _referral_counts_markdown(report)
    if "review" in report:
        lines += _review_markdown(report["review"], report.get("melanomas_answered"))
    if report.get("ood"):
        o = report["ood"]
        lines += ["## Out-of-distribution images", "", f"AUROC of OOD_SCORE, {o['images']} non-dermoscopic images against "
                  f"the {o['in_distribution_images']} evaluated ones: **{_fmt(o['auroc'])}**. Share at or above the limit "
                  f"1.0: {_fmt(o['share_at_or_above_1'])} (evaluated images: {_fmt(o['in_distribution_share_at_or_above_1'])}).",
                  "", "| kind | share not assessable |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in o["not_assessable_by_kind"].items()]
        lines.append("")
    elif report.get("ood_note"):
        lines += ["## Out-of-distribution images", "", f"No OOD figure: {report['ood_note']}.", ""]
    for title, png in plots:
        lines += [f"### {title}", "", f"![{title}]({png})", ""]
    if report["refused"]:
        truth = report.get("refused_truth") or {}
        lines += ["## Refused images", "", "No figure above counts these; a refused melanoma is one the service never saw.",
                  ""] + [f"- `{p}`" + (f" (truth {truth[p]})" if p in truth else "") + f": {why}"
                         for p, why in report["refused"]] + [""]
    lines += _attribution_markdown(report)
    return "\n".join(lines) + "\n"
