"""``dermassist evaluate``'s run: select, serve, send, and write the report (PARTIAL when the run stops midway)."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from preprocess.contract import MELANOMA

from ..base.errors import DermAssistError
from .config import IMAGE_SUFFIXES, Answers, EvaluationConfig
from .figures import (
    classification_figures,
    ood_figures,
    refer_score_auc,
    review_lists,
    segmentation_figures,
    triage_figures,
)
from .markdown import akiec_caveat, attribution_markdown, run_markdown
from .provenance import attribution, seen_by_content, seen_in_training
from .report_files import clear_report, image_rows, model_of, report_folder, write_image_table, write_report
from .selection import image_files, read_selection, relative_path
from .service import analyse, served_settings, service, stated_settings_problem

logger = logging.getLogger(__name__)

NO_DIAGNOSIS = {
    "isic2017": "no ISIC-2017_<Split>_Part3_GroundTruth.csv lies beside the image folders, so no image has a diagnosis: "
                "add the Part 3 ground truth for diagnosis figures",
    "isic2018": "the ISIC 2018 Task 1 segmentation layout carries lesion masks but no diagnosis (ISIC 2018 Task 3 has them)",
    "isic2016": "the ISBI 2016 Part 1 segmentation layout carries lesion masks but no diagnosis",
}


def checked_run(run: dict, answers: Answers, outside: Answers) -> dict:
    """``run`` as a report states it: when the answers show the repository read here is not what answered
    (``stated_settings_problem``), none of that repository's facts (threshold, rule, release, build, classes not
    learnt), only why."""
    problem = stated_settings_problem(run, [*answers.results, *outside.results])
    if problem is None:
        return run
    logger.warning("the report states no REFER threshold: %s", problem)
    return {**run, "repository": None, "release": None, "release_imported": None, "build": None, "refer_threshold": None,
            "refer_when_not_assessable": None, "not_learnt": None, "temperature": None, "release_models": None,
            "repository_not_served": problem}


def release_pictures_seen(samples: Sequence, data: Path, kept: Sequence[str] | None) -> dict:
    """The evaluated pictures the released models learnt from (by name, by content): the release's records speak for
    the models the repository serves as the release exported them (``kept``; None: not known here, every model), and
    ``seen_unchecked`` names the others, brought with ``dermassist import``, whose training pictures are not recorded."""
    from training.release import RELEASE_DIR

    models = ("segmenter", "classifier") if kept is None else tuple(kept)
    return {"seen_in_training": [m for m in seen_in_training([s.image_id for s in samples], RELEASE_DIR)
                                 if m["model"] in models],
            "seen_by_content": [r for r in seen_by_content(samples, RELEASE_DIR, data) if r["model"] in models],
            "seen_unchecked": [m for m in ("segmenter", "classifier") if m not in models]}


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
    conflicting = sum(bool(e.get("conflict")) for e in not_evaluated.get("same_picture", []))
    caveats = [akiec_caveat(facts["ham_akiec"])] if "ham_akiec" in facts else []
    return {"name": config.name, "dataset": name, "data": str(config.data), "run": run,
            "labelled_not_evaluated": {"absent_on_disk": len(absent), "not_accepted_format": len(other),
                                       "refused": refused, "conflicting_labels": conflicting,
                                       "total": len(absent) + len(other) + refused + conflicting},
            "melanomas_not_evaluated": {"absent_on_disk": sum(truth.get(a) == MELANOMA for a in absent),
                                        "not_accepted_format": sum(e["truth"] == MELANOMA for e in other)},
            "caveats": caveats, "akiec_counted_as_ak": facts.get("ham_akiec", {}).get("counted_as_ak"),
            "attribution": attribution(name, [s.image_id for s in samples])}


def _table(config: EvaluationConfig, samples: Sequence, answers: Answers, outside: Answers, not_evaluated: dict) -> list[dict]:
    """The rows of ``images.csv``: every image answered, refused or not evaluated, and every other file of the image
    folders with the reason it was not evaluated."""
    return image_rows(samples, answers, outside, Path(config.data), config.ood, absent=not_evaluated["absent_on_disk"],
                      unlabelled=not_evaluated["unlabelled_images"], near=not_evaluated["near_misses"],
                      truths=not_evaluated["absent_truth"],
                      not_read=[*not_evaluated["not_accepted_labelled"], *not_evaluated["not_read_files"],
                                *not_evaluated.get("same_picture", [])],
                      unknown=not_evaluated.get("unknown_label_images", []))


def write_partial(config: EvaluationConfig, name: str, samples: Sequence, answers: Answers, outside: Answers,
                  not_evaluated: dict, reason: str, facts: dict | None = None, run: dict | None = None) -> Path:
    """After a run stopped (the service went away, Ctrl-C): ``images.csv`` with every answer received and the images
    not sent, ``report.json`` and a ``report.md`` marked PARTIAL with the reason and no figure (a figure on the
    images that happened to come first is not the site's), the run's date and server, and the data's attribution."""
    folder = Path(config.out) / config.name
    run = checked_run(run or {}, answers, outside)
    rows = _table(config, samples, answers, outside, not_evaluated)
    rows += [{"set": "evaluated", "image": s.image_id, "path": relative_path(s.image_path, Path(config.data)),
              "truth": s.code or "", "status": "not sent: the run stopped before this image"}
             for s in _not_sent(samples, answers)]
    write_image_table(rows, folder / "images.csv")
    report = {**_shared(config, name, samples, not_evaluated, facts or {}, run or {}, answers), "partial": reason,
              "images": len(samples), "answered": len(answers.results), "refused": answers.refused,
              "out_of_distribution_answered": len(outside.results), "not_evaluated": not_evaluated,
              "model": model_of(answers.results)}
    (folder / "report.json").write_text(json.dumps(report, indent=1, default=str))
    lines = [f"# PARTIAL: DermAssist site validation: {config.name}", "",
             f"**PARTIAL: this run stopped after {len(answers.results)} of {len(samples)} images were answered "
             f"({len(answers.refused)} refused): {reason}.** It gives no figure: those on the images that happened to "
             "come first would not be the site's. `images.csv` beside this report holds every answer received and names "
             "the images not sent; run the evaluation again for the report.", ""]
    lines += run_markdown(report) + attribution_markdown(report)
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

    by_path = {s.image_path: s for s in samples}
    answered = [by_path[p] for p in answers.paths]
    results = answers.results
    run = checked_run(run or {}, answers, outside)
    report: dict = {**_shared(config, name, samples, not_evaluated, facts or {}, run or {}, answers),
                    "split": config.split if config.split_manifest else None,
                    "split_manifest": str(config.split_manifest or ""),
                    "images": len(samples), "answered": len(results), "refused": answers.refused,
                    "not_evaluated": not_evaluated,
                    **release_pictures_seen(samples, Path(config.data), run.get("release_models")),
                    "refused_truth": {p: by_path[Path(p)].code for p, _ in answers.refused
                                      if Path(p) in by_path and by_path[Path(p)].code},
                    "model": model_of(results)}
    report["segmentation"] = segmentation_figures(answered, results)
    labelled = [(s, r) for s, r in zip(answered, results) if s.label is not None]
    if labelled:
        labels = np.array([s.label for s, _ in labelled])
        probs = np.array([[r.probabilities[c] for c in r.probabilities] for _, r in labelled])
        report["classification"] = classification_figures(labels, probs, run.get("temperature"))
        if all(r.refer is not None for _, r in labelled):
            refer = np.array([r.refer for _, r in labelled])
            assessable = np.array([r.assessable for _, r in labelled], bool)
            report["triage"] = {**triage_figures(labels, refer, assessable),
                                "melanomas_refused": sum(code == MELANOMA for code in report["refused_truth"].values()),
                                "refer_score_auc": refer_score_auc(labels, [r.refer_score for _, r in labelled])}
            if 0 < assessable.sum() < len(assessable):
                kept = classification_figures(labels[assessable], probs[assessable])
                report["classification"]["assessable_only"] = {
                    "images": int(assessable.sum()), "accuracy": kept["accuracy"],
                    "balanced_accuracy": kept["balanced_accuracy"]}
            benign = ~np.isin(labels, [CLASS_CODES.index(c) for c in REFER_CLASSES])
            report["benign_not_assessable"] = int((benign & ~assessable.astype(bool)).sum())
    else:
        report["no_diagnosis"] = (NO_DIAGNOSIS.get(name, "no evaluated image has a diagnosis label")
                                  if all(s.label is None for s in samples) else
                                  "none of the labelled images was answered (see Refused images)")
    report["review"] = review_lists(answered, results)
    report["melanomas_answered"] = sum(s.code == MELANOMA for s in answered)
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
