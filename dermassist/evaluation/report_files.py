"""The files of a report: its folder (checked writable before any image is sent, cleared of an earlier report's
files), ``images.csv``, ``report.json``, ``report.md`` and the plots."""
from __future__ import annotations

import csv
import errno
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from preprocess.contract import MELANOMA

from ..base.paths import writable_folder_error
from .config import Answers, EvaluationError
from .markdown import render_markdown
from .selection import relative_path

if TYPE_CHECKING:
    from dermassist_client.result import LesionResult

logger = logging.getLogger(__name__)

#: Every file a report writes; a new run removes these (and only these) from the folder before it sends an image.
REPORT_FILES = ("report.json", "report.md", "images.csv", "confusion.png", "melanoma_roc.png", "per_class_recall.png",
                "reliability.png", "ood_scores.png")


def report_folder(folder: Path) -> Path:
    """Create the report folder (readable by this user alone) and check it can be written, before any image is sent
    (no run is lost to it). A report name longer than the file system allows for a folder name is refused with the
    fix: a shorter --name."""
    e = writable_folder_error(folder)
    if e is not None:
        if e.errno == errno.ENAMETOOLONG:
            raise EvaluationError(_too_long(Path(folder), e)) from e
        raise EvaluationError(f"the report folder {folder} cannot be written ({e.strerror or e}); pass --out a "
                              "writable folder") from e
    try:  # each image's truth and answer, by file name: this user's alone (privacy audit, L6)
        Path(folder).chmod(0o700)
    except OSError as refused:
        logger.warning("the report folder %s could not be made private (%s): other users of this machine may read its "
                       "per-image answers", folder, refused.strerror or refused)
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


def image_rows(samples: Sequence, answers: Answers, outside: Answers, data: Path | None = None,
               ood: Path | None = None, absent: Sequence[str] = (), unlabelled: Sequence[Path | str] = (),
               near: dict[str, str] | None = None, truths: Mapping[str, str] | None = None,
               not_read: Sequence[Mapping[str, Any]] = (), unknown: Sequence[Path | str] = ()) -> list[dict]:
    """One row per image: the evaluated images' answers, the out-of-distribution folder's, the refused images
    with the reason, the ``absent`` ones (listed in the labels, not on disk, with the diagnosis ``truths`` gives them;
    ``near`` says which file an absent name nearly names), the ``unlabelled`` files (on disk, in no label row), the
    ``unknown`` ones (on disk, their label row says UNK) and the
    ``not_read`` files of the image folders (each a dict of its path relative to ``data``, its reason, and where a label
    row names it its ``image`` and ``truth``), so no image of the run is missing from ``images.csv``; ``samples`` are
    all the evaluated images (answered or not), paths relative to the ``data`` and ``ood`` folders."""
    from preprocess.contract import CLASS_CODES

    def row(group: str, image: str, path: Path | str, truth: str | None, result: LesionResult | None = None,
            refusal: str = "") -> dict:
        folder = data if group == "evaluated" else ood
        values: dict = {"set": group, "image": image, "path": relative_path(path, folder), "truth": truth or "",
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
    rows += [{"set": "evaluated", "image": Path(p).stem, "path": relative_path(p, data),
              "status": "not evaluated: on disk but no label row names it"} for p in unlabelled]
    rows += [{"set": "evaluated", "image": Path(p).stem, "path": relative_path(p, data), "truth": "UNK",
              "status": "not evaluated: its label row says UNK (unknown diagnosis)"} for p in unknown]
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


def model_of(results: Sequence) -> dict:
    """The served model's name and version the answers name, and the release and builds that answered them (a
    server that names none: no such keys; more than one build: the models changed during the run); {} for no
    answer."""
    if not results:
        return {}
    model = {"name": results[0].model_name, "version": results[0].model_version}
    builds = sorted({r.model_build for r in results if getattr(r, "model_build", None)})
    if builds:
        model.update(release=results[0].model_release, builds=builds)
    return model


def write_report(report: dict, results: Sequence, samples: Sequence, outside: Answers, folder: Path) -> Path:
    """``report.json``, ``report.md`` and the plots of one evaluation."""
    from preprocess.contract import CLASS_CODES, CLASS_NAMES
    from training.plots import plot_bars, plot_confusion, plot_histograms, plot_roc

    from .plots import reliability_figure, save_figure

    folder.mkdir(parents=True, exist_ok=True)
    plots = []
    cls = report.get("classification")
    if cls:
        labelled = [(s, r) for s, r in zip(samples, results) if s.label is not None]
        mel = np.array([s.code == MELANOMA for s, _ in labelled])
        plot_confusion(cls["confusion_matrix"], CLASS_CODES, folder / "confusion.png",
                       f"{report['name']}: confusion (balanced accuracy {cls['balanced_accuracy']:.3f})")
        plots.append(("Confusion matrix", "confusion.png"))
        if mel.any() and not mel.all():
            plot_roc(mel, [r.probabilities[MELANOMA] for _, r in labelled], folder / "melanoma_roc.png",
                     f"{report['name']}: P(MEL), melanoma vs the rest")
            plots.append(("Melanoma ROC of P(MEL) (the ranking, not the referral)", "melanoma_roc.png"))
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
