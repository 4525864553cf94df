"""``report.md``: the figures, what they leave out and why, the run and the data's credit, as a reader signs them off."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REVIEW_ROWS = 25  # rows of each review list in report.md; images.csv has them all
FEW_IMAGES = 10  # a class with fewer images here gets "too few images to judge": its recall's interval spans most of [0, 1]
# What the macro figures and balanced accuracy average over (``training.metrics.classification_metrics``).
MACRO_DEFINITION = ("Macro precision, recall and F1 average over the classes present in the truth or the predictions "
                    "(scikit-learn's default), so a prediction into a class the set lacks counts as that class's 0; "
                    "balanced accuracy is the mean recall over the classes present in the truth.")


def format_interval(interval: Sequence[float] | None, digits: int = 2) -> str:
    """``(0.67-0.97)`` for an interval, empty for none."""
    return "" if interval is None else f" ({interval[0]:.{digits}f}-{interval[1]:.{digits}f})"


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def plural(n: int, word: str) -> str:
    """``1 melanoma``, ``2 melanomas``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def akiec_caveat(facts: Mapping[str, int]) -> str:
    """The report's word on HAM10000's akiec: counted as AK, may hold SCC in situ, and how to tell them apart."""
    from training.readers.ham import HAM_METADATA
    from training.readers.isic2019 import ISIC2019_GROUND_TRUTH

    counted, other = facts.get("counted_as_ak"), facts.get("relabelled_by_isic2019")
    took = f"; {other} took the AK or SCC label of {ISIC2019_GROUND_TRUTH} beside the metadata" if other else ""
    count = ("" if counted is None else " (no evaluated image here is labelled akiec)" if not counted and not other
             else f" ({plural(counted, 'evaluated image')}{took})")
    return (f"the HAM10000 layout was read: its diagnosis `akiec` was counted as AK (actinic keratosis), as the contract "
            f"maps it{count}. HAM10000's `akiec` also holds intraepithelial "
            "carcinoma (squamous cell carcinoma in situ, Bowen's disease), so the AK figures may include SCC, and SCC gets "
            "none of these images. The ISIC 2019 layout, with its own AK and SCC columns, tells them apart: evaluate the "
            f"images in that layout, or put its {ISIC2019_GROUND_TRUTH} beside {HAM_METADATA} (the AK or SCC of each "
            "image it lists replaces `akiec`)")


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
    same = skipped.get("same_picture") or []
    if same:
        conflicts = [e for e in same if e.get("conflict")]
        copies = [f"{e['path']} ({e['reason']})" for e in same if not e.get("conflict")]
        if copies:
            parts.append(f"{len(copies)} image(s) are the same file as another evaluated image, byte for byte, and were "
                         f"counted once ({_names(copies)})")
        if conflicts:
            shown = _names([f"{e['path']} ({e['reason']})" for e in conflicts])
            parts.append(f"{len(conflicts)} image(s) are the same file as another labelled otherwise, so one label is "
                         f"wrong and none of them counts ({shown})")
    if again:
        parts.append(f"{len(again)} image(s) listed twice with the same label were evaluated once ({', '.join(again[:5])})")
    if skipped.get("unknown_label_rows"):
        on_disk = skipped.get("unknown_label_images") or []
        shown = f" ({_names([Path(p).name for p in on_disk])}; images.csv lists them)" if on_disk else ""
        parts.append(f"{skipped['unknown_label_rows']} row(s) labelled UNK (unknown diagnosis) were left out{shown}")
    unlabelled, seg_only = skipped.get("unlabelled_images") or [], skipped.get("segmentation_only") or []
    if unlabelled:
        parts.append(f"{len(unlabelled)} image(s) on disk have no label row and were left out "
                     f"({_names([Path(p).name for p in unlabelled])}; images.csv lists them)")
    if seg_only:
        parts.append(f"{len(seg_only)} image(s) have no diagnosis row: they count in the segmentation figures only "
                     f"({_names([Path(p).name for p in seg_only])})")
    parts += [sentence.format(count=len(items), shown=_names([name(e) for e in items]))
              for key, sentence, name in MANIFEST_MISMATCHES if (items := skipped.get(key))]
    return [f"**Not in these figures:** {'; '.join(parts)}.", ""] if parts else []


#: Where a split manifest and the evaluated folder disagree (``selection.manifest_mismatches``): the key, the sentence
#: and how each entry is named.
MANIFEST_MISMATCHES: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("manifest_rows_not_found", "{count} image id(s) of the split manifest name no image read from this folder "
     "({shown}): check that the manifest belongs to it", str),
    ("manifest_label_differs", "{count} image(s) are labelled otherwise in the split manifest; the figures use the "
     "folder's labels ({shown})", lambda e: f"{e['image']}: {e['manifest']} there, {e['data']} here"),
)


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


def _renamed_markdown(renamed: Sequence[dict]) -> list[str]:
    """The warning that some evaluated pictures are pictures a released model learnt from, under other names."""
    lines = []
    for model in sorted({r["model"] for r in renamed}):
        mine = [r for r in renamed if r["model"] == model]
        shown = ", ".join(f"{r['path']} is {r['as']} of its {r['split']} split" for r in mine[:5])
        lines += [f"**Optimistic figures:** {len({r['image'] for r in mine})} of the evaluated pictures are pictures the "
                  f"released {model} was fitted or tuned on, under other names (the same picture by its content, "
                  f"resized or saved again or not: {shown}), so {_FIGURES_OF.get(model, 'its figures')} on them are "
                  "optimistic: leave them out of a site's validation (report.json's seen_by_content lists them all).", ""]
    return lines


def _unchecked_markdown(models: Sequence[str]) -> list[str]:
    """The note that which pictures the imported models learnt from is not known here."""
    if not models:
        return []
    which = " and ".join(f"the {m}" for m in models)
    return [f"**Not checked for training pictures:** {which} the repository serves {'were' if len(models) > 1 else 'was'} "
            "brought with `dermassist import` (or a training stage's --repository), and which pictures "
            f"{'they' if len(models) > 1 else 'it'} learnt from is not recorded here, so this report cannot warn of "
            "them (it checks pictures against the release's own). Evaluate only pictures its run never saw: a classifier "
            "run's `<name>_split.json` names its train, val and test pictures (`--split-manifest ... --split test`).", ""]


_FIGURES_OF = {"segmenter": "the segmentation figures (Dice, Jaccard)",
               "classifier": "the diagnosis, calibration and referral figures"}


def run_markdown(report: dict) -> list[str]:
    """When the run started (UTC), the server it ran against, the models' version and release, and the REFER
    threshold in force (known only when evaluate served the repository itself)."""
    from preprocess.contract import DEFAULT_REFER_THRESHOLD

    run = report.get("run") or {}
    if not run:
        return []
    when = datetime.fromisoformat(run["started_utc"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    model = report.get("model") or {}
    served = f"model {model['name']} version {model['version']}" if model else "no answer, so no model version"
    builds = model.get("builds") or []
    if len(builds) == 1:
        served += f", release {model.get('release')}, build `{builds[0]}`"
    elif builds:
        served += (f", release {model.get('release')}; **answered by {len(builds)} builds** "
                   f"({', '.join(f'`{b}`' for b in builds)}): the served models changed during the run")
    if run.get("repository"):
        release = (f"models brought with `dermassist import` ({run['release']})" if run.get("release_imported") else
                   f"release {run['release']}" if run.get("release") else "no release stamp")
        if run.get("build") and not builds:  # answers that name no build (a server without the guard's front)
            release += f", build `{run['build']}`"
        server = (f"an embedded DermAssist started for this run, serving repository `{run['repository']}` ({release})"
                  if run.get("embedded") else
                  f"the DermAssist at `{run.get('server', '?')}`, serving "
                  + (release if run.get("release") else f"repository `{run['repository']}` ({release})"))
        default = " (the contract's default value)" if run["refer_threshold"] == DEFAULT_REFER_THRESHOLD else ""
        threshold = (f"REFER threshold in force: **{run['refer_threshold']:.3f}**{default}, as the triage step of that "
                     "repository resolves it")
    elif run.get("repository_not_served"):
        server = f"the DermAssist at `{run.get('server', '?')}`"
        threshold = (f"REFER threshold: **unknown** to this report: {run['repository_not_served']}; pass --repository "
                     "the repository that server serves, or ask its operator for the threshold")
    else:
        server = f"the DermAssist at `{run.get('server', '?')}`"
        threshold = ("REFER threshold: **unknown** to this report: with --url it is a setting of that server's model "
                     "repository, which its answers do not carry; its operator can state it, or evaluate the same "
                     "repository without --url (`--repository`) to have it stated here")
    return [f"Run: {when}, against {server}; {served}. {threshold}.", ""]


def attribution_markdown(report: dict) -> list[str]:
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
        setting = ("as this repository's triage is set (refer_when_not_assessable)" if run.get("repository") else
                   "as the triage step does by default (refer_when_not_assessable; a server at --url may be set "
                   "otherwise)")
        rule = (f"An image not assessable is referred whatever its score, {setting}, and counts as referred here: a "
                f"benign one lowers specificity{among}")
    return [f"Malignant: {', '.join(f'{c} ({names[c]})' for c in REFER_CLASSES)}, the classes whose probabilities "
            f"REFER_SCORE sums (the contract's REFER classes; AK is pre-malignant); benign: the others "
            f"({', '.join(benign)}). {rule}. REFER itself is the service's answer: refer_score at or above the "
            "threshold, or the rule above.", ""]


def _per_class_markdown(report: dict, names: dict[str, str]) -> list[str]:
    """Each class's images, recall with its Jeffreys interval and F1, noting a class the served classifier never
    learnt and one with too few images to judge; and the balanced accuracy over the learnt classes alone."""
    c = report["classification"]
    not_learnt = set((report.get("run") or {}).get("not_learnt") or ())
    akiec = report.get("akiec_counted_as_ak")
    lines = ["| class | images | recall (95% interval) | F1 | note |", "|---|---|---|---|---|"]
    for code, recall in c["per_class_recall"].items():
        name = names[code] + ("; HAM10000 akiec, may include SCC in situ" if code == "AK" and akiec else "")
        n = c["support"][code]
        notes = (("not learnt: the classifier had no training images of it", code in not_learnt),
                 (f"too few images to judge (under {FEW_IMAGES})", 0 < n < FEW_IMAGES))
        interval = format_interval((c.get("per_class_recall_ci95") or {}).get(code))
        lines.append(f"| {code} ({name}) | {n} | {_fmt(recall)}{interval} | {_fmt(c['per_class_f1'][code])} | "
                     f"{'; '.join(text for text, due in notes if due)} |")
    learnt = [r for code, r in c["per_class_recall"].items() if r is not None and code not in not_learnt]
    lines.append("")
    if learnt and len(learnt) < sum(r is not None for r in c["per_class_recall"].values()):
        counted = ", ".join(sorted(not_learnt & {k for k, v in c["support"].items() if v}))
        lines += [f"Balanced accuracy over the classes learnt alone: {sum(learnt) / len(learnt):.3f} (the balanced "
                  f"accuracy above counts the {counted} images too, which "
                  "the served classifier cannot call right).", ""]
    return lines


def render_markdown(report: dict, plots: Sequence[tuple[str, str]], names: dict[str, str]) -> str:
    """The human-readable report."""
    from .golive import golive_markdown

    lines = [f"# DermAssist site validation: {report['name']}", "",
             f"Data: `{report['data']}` ({report['dataset']}"
             + (f", split `{report['split']}` of `{report['split_manifest']}`" if report.get("split") else "") + "), "
             f"{report['images']} images, {report['answered']} answered, {len(report['refused'])} refused. "
             f"Model: {report['model'].get('name', '?')} version {report['model'].get('version', '?')}, "
             "through the served ensemble.", ""] + run_markdown(report) + _seen_markdown(report.get("seen_in_training") or []) \
        + _renamed_markdown(report.get("seen_by_content") or []) + _unchecked_markdown(report.get("seen_unchecked") or []) \
        + _not_evaluated_markdown(report.get("not_evaluated") or {}) + _caveats_markdown(report) + golive_markdown(report)
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
                  f"{_fmt(c['macro_recall'])} | {_fmt(c['macro_f1'])}{format_interval(c.get('macro_f1_ci95'))} | "
                  f"{_fmt(c['melanoma_auc'])}{format_interval(c.get('melanoma_auc_ci95'))} | {_fmt(c['ece'])} |", "",
                  MACRO_DEFINITION, ""]
        kept = c.get("assessable_only")
        if kept:
            lines += [f"These figures count every answered image, the {c['images'] - kept['images']} not assessable among "
                      "them too (the service withholds their top class from a clinician); on the "
                      f"{kept['images']} assessable images alone: accuracy {kept['accuracy']:.3f}, balanced accuracy "
                      f"{kept['balanced_accuracy']:.3f}.", ""]
        if c.get("balanced_accuracy_ci95") or floor:
            lines += ["In parentheses: the 95% interval (balanced accuracy: each class's recall drawn from its Jeffreys "
                      "posterior, Beta(right + 1/2, wrong + 1/2), so a class all right or all wrong still has its spread, "
                      "and widened to hold the observed value where such classes leave it outside; a class's recall: "
                      "its Jeffreys interval; "
                      "macro F1 and melanoma ROC AUC: stratified bootstrap, the images resampled within each true class, "
                      "2000 seeded draws; every interval takes each image as its own lesion, so several pictures of one "
                      "lesion make them narrower than they should be)."
                      + (f" ECE is not zero even for a perfectly calibrated model on {c['images']} images: with these same "
                         f"probabilities and labels drawn from them it scores a median {floor['median']:.3f} (95th "
                         f"percentile {floor['p95']:.3f}), so an ECE under {floor['p95']:.3f} is within what the sample "
                         "size alone produces. The reliability plot draws it as the grey band, the diagonal "
                         f"\u00b1 {floor['p95']:.3f}: a curve inside it on the whole is within that; a bin of a few "
                         "images may stray outside it by chance." if floor else
                         " The reliability plot has no ECE floor band: this report holds no floor to draw."), ""]
        if c.get("ece_before_calibration") is not None:
            lines += [f"ECE of these same answers before the temperature {report['run']['temperature']:.3f} (the "
                      f"probabilities the classifier's logits give undivided, recovered exactly from the served ones): "
                      f"{c['ece_before_calibration']:.3f}, against {c['ece']:.3f} served.", ""]
        lines += _per_class_markdown(report, names)
    elif report.get("no_diagnosis"):
        lines += ["## Diagnosis", "", f"No diagnosis figures: {report['no_diagnosis']}.", ""]
    if report.get("triage"):
        t = report["triage"]
        missing = report.get("melanomas_not_evaluated") or {}
        left = [plural(n, what) for n, what in ((t.get("melanomas_refused") or 0, "refused melanoma"),
                                                 (missing.get("absent_on_disk") or 0, "missing melanoma"),
                                                 (missing.get("not_accepted_format") or 0,
                                                  "melanoma in a format not accepted")) if n]
        left_out = f"; {' and '.join(left)} not counted" if left else ""
        lines += ["## Referral and assessability", "", "| melanoma sensitivity | malignant sensitivity | benign specificity | "
                  "not assessable |", "|---|---|---|---|",
                  f"| {_fmt(t['melanoma_sensitivity'])}{format_interval(t.get('melanoma_sensitivity_ci95'))}, "
                  f"{plural(t['melanomas'], 'melanoma')}{left_out} | {_fmt(t['malignant_sensitivity'])}"
                  f"{format_interval(t.get('malignant_sensitivity_ci95'))}, {t['malignant']} | {_fmt(t['specificity'])}"
                  f"{format_interval(t.get('specificity_ci95'))}, {t['benign']} benign | {_fmt(t['not_assessable'])} |", "",
                  "In parentheses: the 95% Wilson interval of each share."
                  + (f" REFER_SCORE ranks the malignant images above the benign ones with ROC AUC "
                     f"{t['refer_score_auc']:.3f} (the melanoma ROC plot below ranks melanomas by P(MEL) alone)."
                     if t.get("refer_score_auc") is not None else ""), ""] + _referral_counts_markdown(report)
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
    lines += attribution_markdown(report)
    return "\n".join(lines) + "\n"
