"""Site validation through the SERVED ensemble: ``dermassist evaluate``.

A labelled folder in any accepted layout (optionally one split of a manifest) goes through a running
DermAssist (``--url``) or an embedded one started for the run, with the thin client SDK, exactly as a
hospital's integration would call it. The report gives segmentation Dice/Jaccard where masks exist;
accuracy, balanced accuracy, macro F1, per-class recall, melanoma ROC AUC, ECE with a reliability
diagram; REFER sensitivity and specificity; the share not assessable; and, with ``--ood``, how well
OOD_SCORE tells a folder of non-dermoscopic images from the labelled ones. Beside the figures, every
image's answer (``images.csv``) and the images a clinician should look at first: the melanomas REFER
missed and the images that came back not assessable.
"""
from __future__ import annotations

import csv
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
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
    name, samples, _ = read_selection(config)
    return name, samples


def read_selection(config: EvaluationConfig) -> tuple[str, list, dict]:
    """(dataset name, samples, what the folder's labels named but the run cannot evaluate): images listed but absent
    on disk, rows listed again with the same label (read once), UNK rows and images without a label."""
    from training.readers import read_dataset

    dataset = read_dataset(config.data)
    kept = {s.image_path for s in dataset.samples}
    not_evaluated = {"absent_on_disk": list(dataset.missing_images), "listed_again": list(dataset.duplicate_rows),
                     "unknown_label_rows": dataset.skipped_unknown, "near_misses": dict(dataset.near_misses),
                     # on disk, named by no label row: left out, or (ISIC 2017) in the segmentation figures only
                     "unlabelled_images": [str(p) for p in dataset.unlabelled_images if p not in kept],
                     "segmentation_only": [str(p) for p in dataset.unlabelled_images if p in kept]}
    samples = list(dataset.samples)
    if config.split_manifest is not None:
        try:
            manifest = json.loads(Path(config.split_manifest).read_text())
            wanted = {row["image_id"] for row in manifest[config.split]}
        except (ValueError, KeyError, TypeError) as e:
            raise EvaluationError(f"split manifest {config.split_manifest} has no split {config.split!r} of image ids "
                                  f"({e}); expected {{'{config.split}': [{{'image_id': ...}}, ...]}}") from e
        samples = [s for s in samples if s.image_id in wanted]
    if not samples:
        raise EvaluationError(f"no image of {config.data} is selected (split {config.split!r} of "
                              f"{config.split_manifest}); check that the manifest belongs to this dataset")
    return dataset.name, samples, not_evaluated


def image_files(folder: Path) -> list[Path]:
    """Every image file under a folder, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


@contextmanager
def service(config: EvaluationConfig) -> Iterator[str]:
    """The gRPC address to evaluate: ``--url``, or an embedded server started on the repository for the run."""
    if config.url:
        yield config.url
        return
    from .base.repository import SOURCE_REPOSITORY, require_artifacts
    from .base.server import embedded_server

    repository = config.repository or SOURCE_REPOSITORY
    require_artifacts(repository, EvaluationError)
    with embedded_server(repository) as server:
        yield server.config.grpc_address


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
    """Create the report folder and check it can be written, before any image is sent (no run is lost to it)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise EvaluationError(f"the report folder {folder} cannot be written ({e.strerror or e}); pass --out a "
                              "writable folder") from e
    return folder


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


def write_partial(config: EvaluationConfig, name: str, samples: Sequence, answers: Answers, outside: Answers,
                  not_evaluated: dict, reason: str) -> Path:
    """After a run stopped (the service went away, Ctrl-C): ``images.csv`` with every answer received and the images
    not sent, ``report.json`` and a ``report.md`` marked PARTIAL with the reason and no figure (a figure on the
    images that happened to come first is not the site's)."""
    folder = Path(config.out) / config.name
    rows = image_rows(samples, answers, outside, Path(config.data), config.ood, absent=not_evaluated["absent_on_disk"],
                      unlabelled=not_evaluated["unlabelled_images"], near=not_evaluated["near_misses"])
    rows += [{"set": "evaluated", "image": s.image_id, "path": _relative(s.image_path, Path(config.data)),
              "truth": s.code or "", "status": "not sent: the run stopped before this image"}
             for s in _not_sent(samples, answers)]
    write_image_table(rows, folder / "images.csv")
    report = {"name": config.name, "dataset": name, "data": str(config.data), "partial": reason,
              "images": len(samples), "answered": len(answers.results), "refused": answers.refused,
              "out_of_distribution_answered": len(outside.results), "not_evaluated": not_evaluated,
              "model": _model_of(answers.results)}
    (folder / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (folder / "report.md").write_text("\n".join([
        f"# PARTIAL: DermAssist site validation: {config.name}", "",
        f"**PARTIAL: this run stopped after {len(answers.results)} of {len(samples)} images were answered "
        f"({len(answers.refused)} refused): {reason}.** It gives no figure: those on the images that happened to come "
        "first would not be the site's. `images.csv` beside this report holds every answer received and names the "
        "images not sent; run the evaluation again for the report.", ""]) + "\n")
    logger.error("evaluation stopped (%s): partial answers -> %s", reason, folder / "images.csv")
    return folder


def evaluate(config: EvaluationConfig) -> dict:
    """Run the evaluation and write ``report.json``, ``report.md``, ``images.csv`` and the plots; returns the report.
    A run that stops (the service goes away, Ctrl-C) writes what was answered, marked PARTIAL, and raises on."""
    name, samples, not_evaluated = read_selection(config)
    outside_paths = image_files(config.ood) if config.ood is not None else []
    clear_report(report_folder(Path(config.out) / config.name))
    start = time.perf_counter()
    answers, outside = Answers(), Answers()
    try:
        with service(config) as url:
            answers = analyse(url, [s.image_path for s in samples], config.timeout_s,
                              options=config.client_options(), answers=answers)
            if outside_paths:
                outside = analyse(url, outside_paths, config.timeout_s, options=config.client_options(),
                                  answers=outside)
    except KeyboardInterrupt:
        write_partial(config, name, samples, answers, outside, not_evaluated, "interrupted (Ctrl-C)")
        raise
    except DermAssistError as e:
        write_partial(config, name, samples, answers, outside, not_evaluated, str(e))
        raise
    return _finish(config, name, samples, not_evaluated, answers, outside, time.perf_counter() - start)


def _finish(config: EvaluationConfig, name: str, samples: Sequence, not_evaluated: dict, answers: Answers,
            outside: Answers, seconds: float) -> dict:
    """The figures of a complete run, written to the report folder."""
    from training.release import RELEASE_DIR

    by_path = {s.image_path: s for s in samples}
    answered = [by_path[p] for p in answers.paths]
    results = answers.results
    report: dict = {"name": config.name, "dataset": name, "data": str(config.data), "split": config.split
                    if config.split_manifest else None, "split_manifest": str(config.split_manifest or ""),
                    "images": len(samples), "answered": len(results), "refused": answers.refused,
                    "not_evaluated": not_evaluated,
                    "seen_in_training": seen_in_training([s.image_id for s in samples], RELEASE_DIR),
                    "refused_truth": {p: by_path[Path(p)].code for p, _ in answers.refused
                                      if Path(p) in by_path and by_path[Path(p)].code},
                    "attribution": attribution(name, [s.image_id for s in samples]), "model": _model_of(results)}
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
    write_image_table(image_rows(samples, answers, outside, Path(config.data), config.ood,
                                 absent=not_evaluated["absent_on_disk"], unlabelled=not_evaluated["unlabelled_images"],
                                 near=not_evaluated["near_misses"]), folder / "images.csv")
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
               near: dict[str, str] | None = None) -> list[dict]:
    """One row per image: the evaluated images' answers, the out-of-distribution folder's, the refused images
    with the reason, the ``absent`` ones (listed in the labels, not on disk; ``near`` says which file an absent name
    nearly names) and the ``unlabelled`` files (on disk, in no label row), so no image of the run is missing from
    ``images.csv``; ``samples`` are all the evaluated images (answered or not), paths relative to the ``data`` and
    ``ood`` folders."""
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
    near = near or {}
    rows += [{"set": "evaluated", "image": image_id, "status": "not evaluated: listed in the labels but absent on disk"
              + (f" ({near[image_id]})" if image_id in near else "")} for image_id in absent]
    rows += [{"set": "evaluated", "image": Path(p).stem, "path": _relative(p, data),
              "status": "not evaluated: on disk but no label row names it"} for p in unlabelled]
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
    from training.plots import plot_bars, plot_confusion, plot_histograms, plot_reliability, plot_roc

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
        plot_reliability({"served": cls["reliability"]}, folder / "reliability.png",
                         f"{report['name']}: reliability of the served probabilities (ECE {cls['ece']:.3f}; "
                         "numbers: images per bin)")
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
    near = skipped.get("near_misses") or {}
    parts = []
    if absent:
        shown = _names([f"{a} ({near[a]})" if a in near else a for a in absent])
        parts.append(f"{len(absent)} image(s) listed in the labels are not on disk and were not evaluated ({shown}; "
                     "images.csv lists them)")
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


def render_markdown(report: dict, plots: Sequence[tuple[str, str]], names: dict[str, str]) -> str:
    """The human-readable report."""
    lines = [f"# DermAssist site validation: {report['name']}", "",
             f"Data: `{report['data']}` ({report['dataset']}"
             + (f", split `{report['split']}` of `{report['split_manifest']}`" if report.get("split") else "") + "), "
             f"{report['images']} images, {report['answered']} answered, {len(report['refused'])} refused. "
             f"Model: {report['model'].get('name', '?')} version {report['model'].get('version', '?')}, "
             "through the served ensemble.", ""] + _seen_markdown(report.get("seen_in_training") or []) \
        + _not_evaluated_markdown(report.get("not_evaluated") or {})
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
                         "size alone produces." if floor else ""), ""]
        lines += ["| class | images | recall | F1 |", "|---|---|---|---|"]
        for code, recall in c["per_class_recall"].items():
            lines.append(f"| {code} ({names[code]}) | {c['support'][code]} | {_fmt(recall)} | {_fmt(c['per_class_f1'][code])} |")
        lines.append("")
    elif report.get("no_diagnosis"):
        lines += ["## Diagnosis", "", f"No diagnosis figures: {report['no_diagnosis']}.", ""]
    if report.get("triage"):
        t = report["triage"]
        refused = t.get("melanomas_refused") or 0
        left_out = f"; {_plural(refused, 'refused melanoma')} not counted" if refused else ""
        lines += ["## Referral and assessability", "", "| melanoma sensitivity | malignant sensitivity | benign specificity | "
                  "not assessable |", "|---|---|---|---|",
                  f"| {_fmt(t['melanoma_sensitivity'])}{format_interval(t.get('melanoma_sensitivity_ci95'))}, "
                  f"{_plural(t['melanomas'], 'melanoma')}{left_out} | {_fmt(t['malignant_sensitivity'])}"
                  f"{format_interval(t.get('malignant_sensitivity_ci95'))}, {t['malignant']} | {_fmt(t['specificity'])}"
                  f"{format_interval(t.get('specificity_ci95'))}, {t['benign']} benign | {_fmt(t['not_assessable'])} |", "",
                  "In parentheses: the 95% Wilson interval of each share.", ""]
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
    if report.get("attribution"):
        lines += ["---", f"Data: {report['attribution']}. For research and testing only."]
    return "\n".join(lines) + "\n"
