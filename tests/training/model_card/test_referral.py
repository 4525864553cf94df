"""The card states the referral rule the release recorded: its sensitivity, safety factor and OOD quantile, how sure
the threshold is, and how far one image moves it."""
from __future__ import annotations

import copy

import pytest

from training.classifier.schedule import OOD_VALIDATION_QUANTILE, REFER_SENSITIVITY
from training.model_card.referral import chance_below, recipe_refer_safety, referral_rule
from training.model_card.render import render_model_card
from training.release import RELEASE_DIR, ReleaseError, read_release


def test_the_cards_referral_and_ood_rules_are_the_releases_own() -> None:
    """The card stated the shipped release's rules as fixed text (98th percentile, REFER when not assessable, OOD limit
    1.0, no safety factor), whatever the release recorded."""
    shipped = render_model_card(read_release(RELEASE_DIR))
    assert "1.0 = the validation 98th percentile" in shipped and "x 0.05)" in shipped
    assert "REFER is also true for an image that is not assessable." in shipped and "OOD_SCORE < 1.0;" in shipped
    assert "the answer is not assessable and referred" in shipped and "not assessable (and referred)" in shipped
    release = copy.deepcopy(read_release(RELEASE_DIR))
    release["triage"]["values"].update(refer_when_not_assessable=False, ood_limit=1.25)
    release["classifier"]["figures"]["calibration"]["val"]["ood_limit_quantile"] = 0.95
    release["recipe"]["cls_args"] = [*release["recipe"]["cls_args"], "--refer-safety", "0.8"]
    card = render_model_card(release)
    assert "1.0 = the validation 95th percentile" in card and "98th" not in card
    assert "an image that is not assessable is referred only if its REFER_SCORE reaches the threshold." in card
    assert "REFER is also true" not in card and "referred, the note" not in card and "(and referred)" not in card
    assert "OOD_SCORE < 1.0 (served as the classifier's score over the limit 1.25);" in card
    assert ("probability k / (n + 1) on average over validation sets), times the safety factor 0.8 (--refer-safety: "
            "lower, so more is referred);") in card


def test_the_recorded_sensitivity_and_safety_factor_come_before_the_recipe() -> None:
    """A safety factor set by DERMASSIST_CLS_REFER_SAFETY is in no recipe flag: the stage records it with the
    sensitivity it tuned for, and the card states those."""
    release = copy.deepcopy(read_release(RELEASE_DIR))
    release["classifier"]["figures"]["calibration"]["val"].update(refer_sensitivity=0.9, refer_safety=0.7)
    card = render_model_card(release)
    assert "aiming at melanoma sensitivity >= 0.9 on new melanomas" in card and "x 0.1)" in card
    assert "times the safety factor 0.7 (--refer-safety: lower, so more is referred);" in card


def test_a_release_without_a_recorded_quantile_gets_the_stages_constant() -> None:

    release = copy.deepcopy(read_release(RELEASE_DIR))
    del release["classifier"]["figures"]["calibration"]["val"]["ood_limit_quantile"]
    rule = referral_rule(release)
    assert (rule.ood_quantile, rule.sensitivity, rule.safety) == (OOD_VALIDATION_QUANTILE, REFER_SENSITIVITY, 1.0)


def test_the_safety_factor_is_read_from_the_recipe_in_either_spelling_or_named() -> None:
    assert recipe_refer_safety({"recipe": {"cls_args": ["--epochs", "3"]}}, 1.0) == 1.0
    assert recipe_refer_safety({"recipe": {"cls_args": ["--refer-safety", "0.8", "--refer-safety=1.5"]}}, 1.0) == 1.5
    assert recipe_refer_safety({"recipe": {"cls_args": ["--refer-safety=1.5", "--refer-safety", "0.8"]}}, 1.0) == 0.8
    with pytest.raises(ReleaseError, match="passes --refer-safety 'x'; expected a number"):
        recipe_refer_safety({"recipe": {"cls_args": ["--refer-safety", "x"]}}, 1.0)


def test_the_chance_that_the_threshold_misses_its_sensitivity_by_hand() -> None:
    """The finite-sample threshold's coverage is Beta(n + 1 - k, k): with 24 validation melanomas (k = 1) it is under
    0.95 with probability 0.95^24; with 39 (k = 2), P(at least 38 of 39 draws below 0.95)."""
    assert chance_below(0.95, 24) == pytest.approx(0.95 ** 24) and 0.29 < chance_below(0.95, 24) < 0.30
    assert chance_below(0.95, 39) == pytest.approx(0.95 ** 39 + 39 * 0.95 ** 38 * 0.05)
    card = render_model_card(read_release(RELEASE_DIR))
    assert "with the 24 validation melanomas it had, the chance that its melanoma sensitivity" in " ".join(card.split())


def test_the_card_gives_the_validation_melanoma_score_after_the_threshold() -> None:
    """ML audit 4: the REFER threshold is the lowest of 24 validation melanoma scores: one image sets it."""
    release = copy.deepcopy(read_release(RELEASE_DIR))
    card = " ".join(render_model_card(release).split())
    assert "The threshold is the lowest of the 24 validation melanoma scores, so one image sets it: the next one up " \
           "is 0.0887" in card
    release["name"] = "site-release"  # not the shipped one: its RUNS.md figures do not apply
    assert "the next one up" not in render_model_card(release)
    release["classifier"]["figures"]["calibration"]["val"]["lowest_melanoma_scores"] = [0.05, 0.07, 0.2]
    card = " ".join(render_model_card(release).split())
    assert "the lowest of the 24 validation melanoma scores, so one image sets it: the next one up is 0.0700." in card
    release["classifier"]["figures"]["calibration"]["val"]["refer_safety"] = 0.8  # a review: the factor was left out
    card = " ".join(render_model_card(release).split())
    assert "The threshold is 0.8 x the lowest of the 24 validation melanoma scores" in card
