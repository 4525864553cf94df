"""The card's Figures section: the segmentation, diagnosis and referral tables of the reports the release was
evaluated on, the checks on its test images and the seed project's figures for comparison."""
from __future__ import annotations

from .checks import checks_lines
from .referral import ReferralRule, referral_terms_lines
from .reports import ISIC2017_VALIDATION, diagnosis_order, segmentation_set, set_label
from .shipped import SHIPPED_SELECTION, is_shipped
from .text import about, fixed, interval_text, join_words, percent, wrap

# The seed project's figures, on its own test set and class mix.
SEED = {"accuracy": 0.8210, "macro_precision": 0.70, "macro_recall": 0.59, "macro_f1": 0.61}
# How the diagnosis table's macro figures are defined.
MACRO_DEFINITION = ("Macro F1: the mean of the per-class F1 over the classes present in the truth or the predictions "
                    "(scikit-learn's default), so a prediction into a class the set lacks counts as that class's F1 of 0; "
                    "balanced accuracy: the mean recall over the classes present in the truth.")


def degenerate_auc_text(reports: dict, order: list[str]) -> str:
    """A sentence for the melanoma AUC intervals of no width (every resample of a few melanomas ranks them alike),
    which are not certainty; "" where there are none."""
    flat = [f"{name}'s {fixed(c['melanoma_auc'], 2)} rests on {c['support'].get('MEL', 0)} melanoma"
            f"{'' if c['support'].get('MEL', 0) == 1 else 's'}" for name in order
            if (c := reports[name].get("classification") or {}).get("melanoma_auc_ci95")
            and c["melanoma_auc_ci95"][0] == c["melanoma_auc_ci95"][1]]
    return "" if not flat else (" An AUC interval of no width means every resample ranked the melanomas alike, not "
                                f"that the figure is certain: {join_words(flat)}.")


def segmentation_table(release: dict, seg_set: str | None) -> list[str]:
    """The segmentation table: the segmenter's validation set (measured through the ensemble, else while training),
    then every other report with segmentation figures."""
    ev = release.get("evaluation", {})
    reports = ev.get("reports", {})
    sv = ev.get("segmentation_val")
    seg_label = (f"{set_label(seg_set, 'validation')} (the segmenter's validation and threshold set: optimistic)" if sv
                 else f"{set_label(seg_set, 'validation')} (measured while training)")
    sv = sv or release["segmenter"]["figures"]["val"]
    lines = ["| segmentation | images | Dice | Jaccard | thresholded Jaccard |", "|---|---|---|---|---|",
             f"| {seg_label} | {sv.get('images', 'n/a')} | {fixed(sv['dice'])} | {fixed(sv['jaccard'])} | "
             f"{fixed(sv['thresholded_jaccard'])} |"]
    for name in (name for name in reports if name != seg_set):
        s = reports[name].get("segmentation")
        if s:
            lines.append(f"| {name} | {s['images']} | {fixed(s['dice'])} | {fixed(s['jaccard'])} | "
                         f"{fixed(s['thresholded_jaccard'])} |")
    return lines


def diagnosis_table(reports: dict, order: list[str], test: dict, test_label: str) -> list[str]:
    """The diagnosis table in ``order``, the test split's per-class recall, and what the figures mean."""
    lines = ["", "| diagnosis | images | accuracy | balanced accuracy (95% interval) | macro F1 (95% interval) | melanoma "
             "ROC AUC (95% interval) | ECE | ECE if perfectly calibrated (median, 95th pct.) |",
             "|---|---|---|---|---|---|---|---|"]
    for name in order:
        c = reports[name].get("classification")
        if c:
            floor = c.get("ece_if_calibrated")
            floor_text = f"{fixed(floor['median'])}, {fixed(floor['p95'])}" if floor else "n/a"
            lines.append(f"| {name} | {c['images']} | {percent(c['accuracy'])} | {fixed(c['balanced_accuracy'])}"
                         f"{interval_text(c.get('balanced_accuracy_ci95'))} | {fixed(c['macro_f1'])}"
                         f"{interval_text(c.get('macro_f1_ci95'))} | {fixed(c['melanoma_auc'])}"
                         f"{interval_text(c.get('melanoma_auc_ci95'))} | {fixed(c['ece'])} | {floor_text} |")
    if test:
        lines += ["", f"Per-class recall, {test_label}: " + ", ".join(
            f"{k} {fixed(v, 2)}" for k, v in test["per_class_recall"].items() if v is not None) + "."]
    if reports.get(ISIC2017_VALIDATION, {}).get("classification"):
        lines += ["", f"{ISIC2017_VALIDATION} holds the ISIC 2017 segmentation images squashed to 256x256 with their Part 3 "
                  "labels", "(melanoma, seborrheic keratosis as BKL, the rest as NV): the classifier never saw images like "
                  "them, and its", "figures there show how much such a shift costs (other clinics, mixed with the squash: Known "
                  "limits)."]
    lines += ["", *wrap(assessable_text(reports, order) + "The ECE column is served, after the temperature fitted on "
                        "validation; the ECE of the same "
                        "answers before it (the classifier's undivided probabilities, recovered exactly from the served "
                        "ones) is in each set's report and in metrics.json. The last "
                        "column is the ECE a perfectly calibrated model would score with the same probabilities on as "
                        "many images (labels drawn from the probabilities): an ECE under its 95th percentile is within "
                        "what the sample size alone produces. " + MACRO_DEFINITION + " Balanced accuracy intervals: each "
                        "class's recall drawn from its Jeffreys posterior (a 95% credible interval); macro F1 and melanoma "
                        "ROC AUC intervals: stratified bootstrap (images resampled within each true class, 2000 seeded "
                        "draws, 95%); referral intervals: Wilson, 95%." + degenerate_auc_text(reports, order))]
    return lines


def assessable_text(reports: dict, order: list[str]) -> str:
    """What the diagnosis rows count: every answered image, those not assessable too (their top class is scored though
    the service withholds it), with the first set's figures on the assessable ones alone; "" where no report has them."""
    for name in order:
        c = reports[name].get("classification") or {}
        alone = c.get("assessable_only")
        if alone and alone.get("images") is not None and alone["images"] < c["images"]:
            return (f"The diagnosis rows count every answered image, those not assessable too; on the assessable ones "
                    f"alone {name} has accuracy {percent(alone['accuracy'])} and balanced accuracy "
                    f"{fixed(alone['balanced_accuracy'])} ({alone['images']} images; each set's report has these). ")
    return ""


def referral_table(reports: dict, order: list[str], rule: ReferralRule, triage_test: dict | None,
                   test_label: str) -> list[str]:
    """The referral table in ``order`` and what it counts (the table's header alone where no report has referral
    figures)."""
    lines = ["", "| referral | melanoma sensitivity (95% interval), melanomas | malignant sensitivity, malignant | benign "
             "specificity, benign | not assessable |",
             "|---|---|---|---|---|"]
    for name in order:
        t = reports[name].get("triage")
        if t:
            lines.append(f"| {name} | {fixed(t['melanoma_sensitivity'])}"
                         f"{interval_text(t.get('melanoma_sensitivity_ci95'))}, {t['melanomas']} | "
                         f"{fixed(t['malignant_sensitivity'])}{interval_text(t.get('malignant_sensitivity_ci95'))}, "
                         f"{t['malignant']} | {fixed(t['specificity'])}{interval_text(t.get('specificity_ci95'))}, "
                         f"{t['benign']} | {percent(t['not_assessable'])} |")
    if any(reports[name].get("triage") for name in order):
        lines += ["", *referral_terms_lines(rule, triage_test, test_label),
                  "", "Each set's `reports/<set>/report.md` names the melanomas REFER did not refer and the images not "
                  "assessable (\"Images to review\"); `images.csv` beside it holds every image's answer."]
    return lines


def seed_lines(train_images: int | None) -> list[str]:
    """The seed project's figures, which this release's are not comparable with, and the training images it had."""
    trained_count = about(train_images) if train_images is not None else "an unrecorded number of"
    return ["", "Seed project (ResNet18, about 10,000 HAM10000 images, ImageNet weights): accuracy "
            f"{percent(SEED['accuracy'])}, macro precision {SEED['macro_precision']}, recall {SEED['macro_recall']}, F1 "
            f"{SEED['macro_f1']}, on its own test set and class mix (not comparable). This release had {trained_count} "
            "training images and no pretrained weights.", ""]


def figures_lines(release: dict, rule: ReferralRule, test_label: str) -> list[str]:
    """The Figures section: the shipped release's note on model selection, the tables, the checks and the seed
    project's figures."""
    ev = release.get("evaluation", {})
    reports = ev.get("reports", {})
    seg_set = segmentation_set(ev)
    order = diagnosis_order(reports, seg_set)
    return [
        "## Figures (through the served ensemble, `dermassist evaluate`; reports in `reports/`)",
        "",
        *([*wrap(SHIPPED_SELECTION), ""] if is_shipped(release) else []),
        *segmentation_table(release, seg_set),
        *diagnosis_table(reports, order, ev.get("classification_test") or {}, test_label),
        *referral_table(reports, order, rule, ev.get("triage_test"), test_label),
        *checks_lines(ev, test_label),
        *seed_lines(release["classifier"]["figures"].get("splits", {}).get("train")),
    ]
