"""The model card of a release: its rows and prose name the sets the release was evaluated on (a site's own data as
well as the shipped sets), and it says which checks the evaluation skipped."""
from __future__ import annotations

import copy

import pytest

from training.metrics import wilson_interval
from training.model_card import chance_below, render_model_card, scc_calls
from training.pipeline import SYNTHETIC_RECIPE
from training.release import RELEASE_DIR, read_release

SKIPPED = {"ham10000_sample": "--data /site holds no ham10000_sample/ (an evaluation-only sample of the shared data)"}


def _site_release() -> dict:
    """The shipped release's manifest as a release of a site's own data would record it: the synthetic recipe
    (segmenter on isic2018, classifier on ham10000), reports isic2018_validation and ham10000_test, one sample skipped."""
    release = copy.deepcopy(read_release(RELEASE_DIR))
    shipped = release["evaluation"]["reports"]
    validation = shipped["isic2017_validation"]
    test = {**shipped["isic2018_task3_test"], "segmentation": shipped["ph2_test"]["segmentation"]}
    release["recipe"] = {k: list(v) if isinstance(v, tuple) else v for k, v in SYNTHETIC_RECIPE.__dict__.items()}
    release["evaluation"] = {
        "segmentation_val_report": "isic2018_validation", "test_report": "ham10000_test",
        "segmentation_val": validation["segmentation"], "classification_test": test["classification"],
        "triage_test": test["triage"], "ood_test": test["ood"],
        "cam_faithfulness": release["evaluation"]["cam_faithfulness"],
        "quality_check": release["evaluation"]["quality_check"],
        "reports": {"isic2018_validation": validation, "ham10000_test": test},
        "skipped": SKIPPED,
    }
    return release


def _table(card: str, header: str) -> list[str]:
    """The rows of the card's table whose header row begins with ``header``."""
    lines = card.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |")) + 2
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_the_shipped_card_is_what_its_release_renders_with_its_rows_named_as_they_always_were() -> None:
    card = (RELEASE_DIR / "MODEL_CARD.md").read_text()
    assert card == render_model_card(read_release(RELEASE_DIR))
    assert [row.split(" | ")[0] for row in _table(card, "segmentation")] == [
        "| ISIC 2017 validation (the segmenter's validation and threshold set: optimistic)", "| ph2_test",
        "| ham10000_sample"]
    order = ["| isic2018_task3_test", "| ph2_test", "| ham10000_sample", "| isic2019_sample", "| isic2017_validation"]
    assert [row.split(" | ")[0] for row in _table(card, "diagnosis")] == order
    assert [row.split(" | ")[0] for row in _table(card, "referral")] == order
    assert "## Checks not run" not in card


@pytest.mark.parametrize("recorded", [True, False], ids=["names recorded", "names from the figures"])
def test_a_sites_release_card_labels_its_rows_from_its_data_and_fills_its_tables(recorded: bool) -> None:
    """Its segmentation row said ISIC 2017 validation, its prose ISIC 2018 Task 3 test, and its diagnosis and
    referral tables were empty: they listed only the shipped report names."""
    release = _site_release()
    if not recorded:  # a release evaluated before the names were recorded: the reports holding its figures name them
        del release["evaluation"]["segmentation_val_report"], release["evaluation"]["test_report"]
    card = render_model_card(release)
    test = release["evaluation"]["reports"]["ham10000_test"]
    assert [row.split(" | ")[0] for row in _table(card, "segmentation")] == [
        "| isic2018_validation (the segmenter's validation and threshold set: optimistic)", "| ham10000_test"]
    assert [row.split(" | ")[:2] for row in _table(card, "diagnosis")] == [
        ["| ham10000_test", str(test["classification"]["images"])], ["| isic2018_validation", "150"]]
    assert [row.split(" | ")[0] for row in _table(card, "referral")] == ["| ham10000_test", "| isic2018_validation"]
    assert "Per-class recall, ham10000_test: " in card
    assert f"against the {test['ood']['in_distribution_images']} ham10000_test images." in card
    assert f"of {release['evaluation']['cam_faithfulness']['images']} ham10000_test crops" in card
    release["evaluation"]["cam_faithfulness"]["images"] = 11  # a site's test split smaller than the 40 degraded
    assert "Quality gate on degraded copies of 11 test images: " in render_model_card(release)
    for shipped in ("ISIC 2017 validation", "ISIC 2018 Task 3 test", "isic2017_validation"):
        assert shipped not in card, shipped
    section = ("## Checks not run\n\nThe release's evaluation skipped these checks, so the figures above lack them:\n\n"
               f"- ham10000_sample: {SKIPPED['ham10000_sample']}.\n\n## Known limits\n")
    assert section in card and card.count("## Checks not run") == 1


def test_a_segmentation_row_measured_while_training_says_so() -> None:
    """Where the segmenter's validation set was skipped, the row holds the figures measured while training."""
    release = _site_release()
    evaluation = release["evaluation"]
    evaluation["segmentation_val"] = None
    del evaluation["reports"]["isic2018_validation"]
    evaluation["skipped"] = {"isic2018_validation": "--data /site holds no isic2018/"}
    card = render_model_card(release)
    assert _table(card, "segmentation")[0].startswith("| isic2018_validation (measured while training) | ")
    assert [row.split(" | ")[0] for row in _table(card, "diagnosis")] == ["| ham10000_test"]
    assert "- isic2018_validation: --data /site holds no isic2018/.\n" in card


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
    assert "OOD_SCORE < 1.25;" in card
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
    from training.classifier.schedule import OOD_VALIDATION_QUANTILE, REFER_SENSITIVITY
    from training.model_card import referral_rule

    release = copy.deepcopy(read_release(RELEASE_DIR))
    del release["classifier"]["figures"]["calibration"]["val"]["ood_limit_quantile"]
    rule = referral_rule(release)
    assert (rule.ood_quantile, rule.sensitivity, rule.safety) == (OOD_VALIDATION_QUANTILE, REFER_SENSITIVITY, 1.0)


def test_the_safety_factor_is_read_from_the_recipe_in_either_spelling_or_named() -> None:
    from training.model_card import recipe_refer_safety
    from training.release import ReleaseError

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


def test_the_card_says_which_of_issue_10s_targets_are_met_and_which_are_not() -> None:
    release = copy.deepcopy(read_release(RELEASE_DIR))
    rows = dict((row.split(" | ")[0], row.split(" | ")[-1]) for row in _table(render_model_card(release), "target"))
    assert rows["| ECE after calibration <= 0.05"] == "**not met** |"  # 0.073 on the test split, no interval
    # 0.528 with the Wilson interval 0.44-0.61: met by the point estimate only (ML audit 6)
    assert rows["| REFER benign specificity >= 0.5"] == "met by the point estimate; its 95% interval includes 0.5 |"
    assert rows["| OOD_SCORE AUROC, non-dermoscopic images >= 0.95"] == "met |"
    release["evaluation"]["classification_test"]["ece"] = 0.049
    release["evaluation"]["triage_test"]["specificity"] = 0.499
    release["evaluation"]["triage_test"]["melanoma_sensitivity"] = 0.99
    release["evaluation"]["triage_test"]["melanoma_sensitivity_ci95"] = [0.96, 1.0]
    table = _table(render_model_card(release), "target")
    rows = dict((row.split(" | ")[0], row.split(" | ")[-1]) for row in table)
    assert rows["| ECE after calibration <= 0.05"] == "met |"
    assert rows["| REFER benign specificity >= 0.5"] == "**not met** by the point estimate; its 95% interval includes 0.5 |"
    assert rows["| REFER melanoma sensitivity >= 0.95"] == "met |"  # the interval clears the target
    assert "| REFER melanoma sensitivity >= 0.95 | 0.990 (0.960-1.000) | met |" in table


def test_a_verdict_names_an_interval_that_holds_the_target_by_hand() -> None:
    from training.model_card import target_interval, target_verdict

    assert target_verdict(0.528, ">=", 0.5, (0.44, 0.61)) == "met by the point estimate; its 95% interval includes 0.5"
    assert target_verdict(0.62, ">=", 0.5, (0.53, 0.70)) == "met"
    assert target_verdict(0.07, "<=", 0.05, None) == "**not met**"
    # 131 of 159 crops: Wilson from the count of images the share was measured on
    assert target_interval({"share_cam_beats_random": 131 / 159, "images": 159}, "share_cam_beats_random") == \
        wilson_interval(131, 159)
    assert target_interval({"auroc": 0.99}, "auroc") is None


def test_the_shipped_card_says_its_held_out_sets_chose_the_model_and_what_a_rebuild_scored() -> None:
    """ML audit 1: the task3 test split and the evaluation-only samples picked among the candidates (RUNS.md)."""
    release = read_release(RELEASE_DIR)
    card = " ".join(render_model_card(release).split())
    figures = card.index("## Figures")
    selection = card.index("chose the model, so its figures on them are optimistic")
    assert figures < selection < card.index("| diagnosis |")
    assert "a rebuild of the same recipe scored balanced accuracy 0.502 on the task3 test split (shipped 0.545) and " \
           "0.560 on the HAM10000 sample (shipped 0.574)" in card
    assert "no classifier figure here comes from a set no choice looked at" in card
    site = " ".join(render_model_card(_site_release()).split())
    assert "chose the model" not in site and "Near-duplicates" not in site and "the next one up" not in site


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


def test_the_diagnosis_table_gives_macro_f1_and_auc_intervals_and_says_what_macro_averages_over() -> None:
    release = copy.deepcopy(read_release(RELEASE_DIR))
    test = release["evaluation"]["reports"]["isic2018_task3_test"]["classification"]
    test["macro_f1_ci95"], test["melanoma_auc_ci95"] = [0.41, 0.63], [0.77, 0.95]
    card = render_model_card(release)
    row = next(r for r in _table(card, "diagnosis") if r.startswith("| isic2018_task3_test |"))
    assert "| 0.527 (0.41-0.63) | 0.868 (0.77-0.95) |" in row
    assert "over the classes present in the truth or the predictions (scikit-learn's default)" in " ".join(card.split())


def test_the_known_limits_say_the_isic_2017_shift_is_mixed_with_the_squash_and_name_the_near_duplicates() -> None:
    card = " ".join(render_model_card(read_release(RELEASE_DIR)).split())
    assert "That shift is mixed with the shared set's 256x256 squash: squashing the HAM10000 sample alone" in card
    assert "raised its ECE from 0.195 to 0.250 and its share not assessable from 5.3% to 8.0%" in card
    assert "ISIC_0034921 (classifier training) and ISIC_0035597 (classifier validation" in card
    assert "ISIC_0000171 (segmenter training) and ISIC_0015124 (segmenter validation" in card


def test_the_scc_limit_names_what_the_evaluated_sccs_were_called() -> None:
    """The card said an SCC is at best called AK or BCC; the ISIC 2019 sample's three were called AK, NV and BKL."""
    release = read_release(RELEASE_DIR)
    assert scc_calls(release) == " (the ISIC 2019 sample's 3 SCCs were called AK, NV and BKL)"
    assert "never read the top class for a suspected keratinocyte cancer" in " ".join(render_model_card(release).split())
    without = copy.deepcopy(release)
    for report in without["evaluation"]["reports"].values():
        report.pop("classification", None)
    assert scc_calls(without) == ""


def test_the_known_limits_give_the_shift_the_evaluated_sets_measured() -> None:
    release = read_release(RELEASE_DIR)
    card = render_model_card(release)
    triage = release["evaluation"]["reports"]["isic2017_validation"]["triage"]
    missed = triage["melanomas"] - round(triage["melanoma_sensitivity"] * triage["melanomas"])
    assert f"REFER missed {missed} of {triage['melanomas']} melanomas" in " ".join(card.split())
    assert "Probabilities over-confident outside the validation source" in card
    without = copy.deepcopy(release)
    del without["evaluation"]["reports"]["isic2017_validation"]
    assert "Images from other clinics" not in render_model_card(without)


def test_the_quality_gate_line_says_how_strong_each_degradation_was() -> None:
    release = copy.deepcopy(read_release(RELEASE_DIR))
    release["evaluation"]["quality_check"]["dark"]["how"] = "brightness x0.25"
    assert "dark (brightness x0.25): " in render_model_card(release)


def test_an_auc_interval_of_no_width_is_said_not_to_be_certainty() -> None:
    """The ISIC 2019 sample's AUC 1.000 rests on 2 melanomas: every stratified resample gives 1.00-1.00."""
    release = copy.deepcopy(read_release(RELEASE_DIR))
    release["evaluation"]["reports"]["isic2019_sample"]["classification"]["melanoma_auc_ci95"] = [1.0, 1.0]
    card = " ".join(render_model_card(release).split())
    assert "| 1.000 (1.00-1.00) |" in card
    assert "not that the figure is certain: isic2019_sample's 1.00 rests on 2 melanomas." in card
    release["evaluation"]["reports"]["isic2019_sample"]["classification"]["melanoma_auc_ci95"] = [0.8, 1.0]
    assert "An AUC interval of no width" not in " ".join(render_model_card(release).split())


def test_rare_classes_are_named_rarest_first_by_a_rule_not_a_copied_order() -> None:
    from training.model_card import RARE_TRAINING_IMAGES, rare_classes_lines

    counts = {"AK": 22, "BCC": 45, "DF": 21, "MEL": 112, "NV": 556, "BKL": 106, "SCC": 0, "VASC": 17}
    lines = rare_classes_lines(counts, {"AK": 5, "DF": 4, "VASC": 4})
    assert " ".join(lines).startswith("- Rare classes (VASC, DF, AK) have 17-22 training images each")
    tied = rare_classes_lines({**counts, "DF": 17, "BCC": RARE_TRAINING_IMAGES}, {})  # a tie keeps the contract's order
    assert "(DF, VASC, AK)" in " ".join(tied) and "no test images" in " ".join(tied)
    assert rare_classes_lines({**counts, "AK": 0, "DF": 30, "VASC": 30}, {}) == []  # SCC and AK untrained: not rare
