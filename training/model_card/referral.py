"""How a release's triage refers, as the model card states it: the rule it was tuned and served with, how sure the
REFER threshold is of its melanoma sensitivity, and what the referral table counts."""
from __future__ import annotations

import math
from dataclasses import dataclass

from preprocess.contract import CLASS_CODES, CLASS_NAMES, REFER_CLASSES

from ..classifier.schedule import DEFAULT_REFER_SAFETY, OOD_VALIDATION_QUANTILE, REFER_SENSITIVITY
from ..release import ReleaseError, recipe_flag
from .shipped import SHIPPED_NEXT_MELANOMA, is_shipped
from .text import join_words, ordinal, short_number, wrap


@dataclass(frozen=True)
class ReferralRule:
    """How a release's triage decides, as its card states it: the melanoma sensitivity and safety factor the REFER
    threshold was chosen with, the validation quantile OOD_SCORE 1.0 stands for, the OOD limit of assessability, and
    whether an image that is not assessable is referred."""

    sensitivity: float
    safety: float
    ood_quantile: float
    ood_limit: float
    refer_when_not_assessable: bool


def referral_rule(release: dict) -> ReferralRule:
    """The rule a release's triage was tuned and served with: its recorded values (triage values; the calibration's
    target sensitivity, safety factor and OOD quantile), for a release built before they were recorded the recipe's
    ``--refer-safety`` and the classifier stage's constants and defaults."""
    values = release["triage"]["values"]
    val = release["classifier"]["figures"].get("calibration", {}).get("val", {})
    safety = val["refer_safety"] if "refer_safety" in val else recipe_refer_safety(release, DEFAULT_REFER_SAFETY)
    return ReferralRule(float(val.get("refer_sensitivity", REFER_SENSITIVITY)), float(safety),
                        float(val.get("ood_limit_quantile", OOD_VALIDATION_QUANTILE)), float(values["ood_limit"]),
                        bool(values["refer_when_not_assessable"]))


def recipe_refer_safety(release: dict, default: float) -> float:
    """The REFER safety factor a release's recipe passed the classifier stage (its last ``--refer-safety``), else
    ``default``."""
    given = recipe_flag((release.get("recipe") or {}).get("cls_args", []), "--refer-safety")
    if given is None:
        return default
    try:
        return float(given)
    except ValueError as e:
        raise ReleaseError(f"recipe.cls_args in release.json passes --refer-safety {given!r}; expected a number (the "
                           "factor on the REFER threshold): restore release.json from git or rebuild the release") from e


def chance_below(sensitivity: float, melanomas: int) -> float:
    """The chance that the threshold the finite-sample rule picks from ``melanomas`` validation melanomas has a
    sensitivity under ``sensitivity`` on new melanomas like them: its coverage is Beta(n + 1 - k, k), whose CDF at s is
    P(Binomial(n, s) >= n + 1 - k), k = max(1, floor((n + 1)(1 - s)))."""
    n, s = melanomas, sensitivity
    k = max(1, int(math.floor((n + 1) * (1 - s) + 1e-9)))
    return sum(math.comb(n, j) * s ** j * (1 - s) ** (n - j) for j in range(n + 1 - k, n + 1))


def referral_lines(threshold: float, rule: ReferralRule, melanomas: int | None = None) -> list[str]:
    """The card's Referral bullet: the threshold, how it was chosen (sensitivity, safety factor), how sure that
    choice is with the validation melanomas it had, and what an image that is not assessable gets."""
    effect = "lower, so more is referred" if rule.safety < 1 else "higher, so less is referred"
    safety = "" if rule.safety == 1 else f", times the safety factor {rule.safety:g} (--refer-safety: {effect})"
    unassessable = ("REFER is also true for an image that is not assessable." if rule.refer_when_not_assessable else
                    "an image that is not assessable is referred only if its REFER_SCORE reaches the threshold.")
    sure = "" if not melanomas else (
        f" That is not a guarantee for this threshold: with the {melanomas} validation melanomas it had, the chance that "
        f"its melanoma sensitivity on images like them is under {rule.sensitivity:g} is "
        f"{chance_below(rule.sensitivity, melanomas):.0%}{' before the safety factor' if rule.safety != 1 else ''}, and on "
        "images from other clinics it was lower (Known limits).")
    return [
        f"- Referral: REFER_SCORE = P(MEL)+P(BCC)+P(SCC)+P(AK) >= {threshold:.3f}, chosen on",
        f"  validation aiming at melanoma sensitivity >= {rule.sensitivity:g} on new melanomas: with n validation",
        f"  melanomas it is the k-th lowest melanoma score, k = floor((n + 1) x {round(1 - rule.sensitivity, 6):g}) (a new "
        "melanoma falls below it with",
        f"  probability k / (n + 1) on average over validation sets){safety}; {unassessable}",
        *wrap(sure.strip(), indent="  ", initial="  "),
    ]


def threshold_fragility_lines(release: dict, rule: ReferralRule, melanomas: int | None) -> list[str]:
    """How far one image moves the REFER threshold: the validation melanoma score after the one it is, from the
    calibration's recorded lowest melanoma scores (``lowest_melanoma_scores``), else for the shipped release from
    RUNS.md; none where neither is known."""
    if not melanomas:
        return []
    k = max(1, int(math.floor((melanomas + 1) * (1 - rule.sensitivity) + 1e-9)))
    val = (release["classifier"]["figures"].get("calibration") or {}).get("val") or {}
    lowest = val.get("lowest_melanoma_scores") or []
    if len(lowest) > k:
        nxt, note = float(lowest[k]), ""
    elif is_shipped(release):
        nxt, note = SHIPPED_NEXT_MELANOMA[0], f"; {SHIPPED_NEXT_MELANOMA[1]}"
    else:
        return []
    which = "the lowest" if k == 1 else f"the {ordinal(k)} lowest"
    if rule.safety != 1.0:  # the threshold is that score times the safety factor, not the score itself
        which = f"{short_number(rule.safety)} x {which}"
    return wrap(f"The threshold is {which} of the {melanomas} validation melanoma scores, so one image sets it: the "
                f"next one up is {nxt:.4f}{note}.", indent="  ", initial="  ")


def referral_terms_lines(rule: ReferralRule, test: dict | None, test_label: str) -> list[str]:
    """What the referral table counts: the malignant classes, how an image not assessable counts, and how many of the
    test split's images REFER sends on."""
    names = dict(zip(CLASS_CODES, CLASS_NAMES))
    benign = [c for c in CLASS_CODES if c not in REFER_CLASSES]
    counted = ("An image not assessable is referred: it counts as referred in sensitivity and, benign, as a false "
               "referral in specificity." if rule.refer_when_not_assessable else
               "An image not assessable is referred only by its score and counts so.")
    share = ""
    if test and test.get("malignant") is not None and test.get("benign"):
        referred = test["malignant_sensitivity"] * test["malignant"] + (1 - test["specificity"]) * test["benign"]
        share = (f" At the served threshold {referred / (test['malignant'] + test['benign']):.0%} of the {test_label} "
                 "images were referred.")
    return wrap(f"Malignant: {join_words([f'{c} ({names[c]})' for c in REFER_CLASSES])}, the classes REFER_SCORE sums (AK is "
                f"pre-malignant); benign: {', '.join(benign)}. {counted}{share}", 115)
