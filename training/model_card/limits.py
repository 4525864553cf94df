"""The card's Known limits section: what the release's data, evaluation and serving leave out or get wrong."""
from __future__ import annotations

from ..metrics import wilson_interval
from ..release import classifier_colour_constancy
from .classes import rare_classes_lines, untrained_classes_lines
from .referral import ReferralRule
from .reports import ISIC2017_VALIDATION
from .shipped import SHIPPED_DUPLICATES, SHIPPED_SQUASH, SHIPPED_SQUASH_SHARE, SHIPPED_TUNED_BEFORE_FILL, is_shipped
from .sources import KNOWN_SOURCES, training_class_counts
from .text import about, fixed, interval_text, join_words, number_word, wrap


def sources_line(folders: list[str], train_images: int | None) -> list[str]:
    """The known limit naming how many images from which sources (the recipe's ``folders``) the classifier was
    trained on."""
    origins = [KNOWN_SOURCES[f].origin if f in KNOWN_SOURCES else f for f in folders]
    count = "an unrecorded number of" if train_images is None else about(train_images)
    number = number_word(len(origins))
    return wrap(f"- Trained from scratch on {count} images from {number} source{'' if len(origins) == 1 else 's'} "
                f"({join_words(origins)}); expect lower figures on other devices, populations and skin types. Run `dermassist "
                "evaluate` on your own labelled images before use.", indent="  ")


def shift_lines(reports: dict, counts: dict[str, int] | None, shipped: bool = False) -> list[str]:
    """The known limits the evaluated sets show: referral on the ISIC 2017 images (other clinics, mixed with the shared
    set's 256x256 squash, measured for the ``shipped`` release), probabilities over-confident where the ECE is above a
    perfectly calibrated model's 95th percentile, and the HAM10000 sample's case mix; none for sets not evaluated."""
    lines = []
    other = reports.get(ISIC2017_VALIDATION) or {}
    t, c = other.get("triage"), other.get("classification")
    if t and c and t.get("melanomas"):
        caught = round(t["melanoma_sensitivity"] * t["melanomas"])
        lines += wrap(f"- **Images from other clinics**: on the {c['images']} ISIC 2017 images (ISIC Archive, several "
                      f"clinics and dermatoscopes, squashed to 256x256) REFER missed {t['melanomas'] - caught} of "
                      f"{t['melanomas']} melanomas (sensitivity {fixed(t['melanoma_sensitivity'])}"
                      f"{interval_text(t.get('melanoma_sensitivity_ci95')).replace(' (', ', 95% interval ').rstrip(')')}) and "
                      "balanced accuracy fell to "
                      f"{fixed(c['balanced_accuracy'])}. " + (SHIPPED_SQUASH if shipped else "That shift is mixed with the "
                                                              "shared set's 256x256 squash, so not all of it is the clinics'."),
                      indent="  ")
    over = [(name, r["classification"]) for name, r in reports.items() if (r.get("classification") or {}).get("ece_if_calibrated")
            and r["classification"]["ece"] > r["classification"]["ece_if_calibrated"]["p95"]]
    if over:
        squashed = ((SHIPPED_SQUASH_SHARE if shipped else "; possibly part of it the squash, above")
                    if t and c and t.get("melanomas") else "")
        low, high = wilson_interval(27, 30) or (0.0, 1.0)  # 30 melanomas: never empty
        named = [f"{name} ({fixed(e['ece'])} against {fixed(e['ece_if_calibrated']['p95'])}"
                 f"{squashed if name == ISIC2017_VALIDATION else ''})" for name, e in over]
        lines += wrap("- **Probabilities over-confident outside the validation source**: the ECE is above what a perfectly "
                      "calibrated model scores (95th percentile) on " + join_words(named)
                      + ". Do not read the probabilities as calibrated at a new site, and measure the referral on your "
                      "own labelled images (`dermassist evaluate`) with as many melanomas as you can: with 30, a "
                      f"sensitivity of 0.90 has the 95% interval {low:.2f}-{high:.2f}.", indent="  ")
    ham = (reports.get("ham10000_sample") or {}).get("classification")
    if ham and counts and sum(counts.values()):
        nv, trained = ham["support"].get("NV", 0) / ham["images"], counts["NV"] / sum(counts.values())
        lines += wrap(f"- The HAM10000 sample comes from the clinics the classifier was trained on, with a balanced case "
                      f"mix ({nv:.0%} nevi, against {trained:.0%} in training): its ECE ({fixed(ham['ece'])}) is that of a "
                      "different case mix, as a referral clinic's will be.", indent="  ")
    return lines


def colour_limit_lines(release: dict) -> list[str]:
    """The known limit on colour: the camera's colours the classifier sees, or the colour balance of crops it was
    trained on."""
    p = classifier_colour_constancy(release)
    if p:
        return [f"- Crops are colour-balanced (shades of grey, p = {p:g}) before "
                "the classifier sees them, so a change of white balance leaves the answer as it was."]
    return ["- The classifier sees the camera's colours: a 12% change of white balance changed the top class of 19 to",
            "  24 of 80 validation images (RUNS.md, \"Camera colour\"). Keep a device's white balance fixed, and",
            "  check the model on your own device's images before use."]


def known_limits_lines(release: dict, rule: ReferralRule) -> list[str]:
    """The Known limits section: the classes and sources trained on, the shifts the evaluated sets show, and what
    the segmenter, the lens border fill, the colours and greyscale pictures leave."""
    cls = release["classifier"]
    reports = release.get("evaluation", {}).get("reports", {})
    counts = training_class_counts(cls["figures"])
    train_images = cls["figures"].get("splits", {}).get("train")
    classifier_folders = list((release.get("recipe") or {}).get("cls_data", []))
    trained_on = [KNOWN_SOURCES[f].short if f in KNOWN_SOURCES else f for f in classifier_folders]
    referred = " and referred" if rule.refer_when_not_assessable else ""
    return [
        "## Known limits",
        "",
        *(untrained_classes_lines(counts, release, trained_on) if counts else []),
        *sources_line(classifier_folders, train_images),
        *shift_lines(reports, counts, is_shipped(release)),
        *(rare_classes_lines(counts, (cls["figures"].get("test") or {}).get("support", {})) if counts else
          ["- Per-class training counts are not recorded in release.json (classifier figures)."]),
        "- The segmenter sees every image squashed to 256x256; very small lesions in large photographs may be missed",
        f"  (LESION_FRACTION 0: the whole image is classified, the answer is not assessable{referred}, the note says so).",
        "- Dermoscopy only: clinical (non-dermoscopic) photographs are out of distribution.",
        *(wrap(SHIPPED_DUPLICATES, indent="  ") if is_shipped(release) else []),
        "- A round lens's black border is filled with the skin colour before the models see the image (RUNS.md: on 80",
        "  validation images behind a synthetic round lens the top class stayed as without it on 75, against 49",
        "  unfilled); a border that is not near-black (a grey or coloured vignette) is left as it is.",
        *(wrap(SHIPPED_TUNED_BEFORE_FILL, indent="  ") if is_shipped(release) else []),
        *colour_limit_lines(release),
        f"- Greyscale pictures come back not assessable{' (and referred)' if referred else ''}, the note says why; the FHIR "
        "and DICOM reports then code no diagnosis and give no class probabilities or referral score.",
        "- The demo page's four example images are HAM10000 evaluation-only images (CC BY-NC-SA 4.0), shipped in the",
        "  client package with their attribution.",
        "",
    ]
