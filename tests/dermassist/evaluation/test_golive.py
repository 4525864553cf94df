"""The report's "Before go-live" section: verdicts the interval supports, a calibration verdict from the ECE floor,
and the terms of use whatever the images are named."""
from __future__ import annotations

from dermassist.evaluation.golive import calibration_verdict, golive_markdown, interval_verdict


def test_a_verdict_is_met_or_not_met_only_when_the_whole_interval_says_so() -> None:
    assert interval_verdict(0.97, (0.955, 0.99), ">=", 0.95) == "met"
    assert interval_verdict(0.75, (0.60, 0.86), ">=", 0.95).startswith("**not met**: the whole 95% interval lies below")
    assert interval_verdict(0.889, (0.67, 0.97), ">=", 0.95) == ("cannot tell on these images: the point estimate misses "
                                                                  "it, and the 95% interval holds the target")
    assert "point estimate meets it" in interval_verdict(0.96, (0.80, 0.99), ">=", 0.95)
    assert interval_verdict(0.02, (0.006, 0.049), "<=", 0.05) == "met"
    assert "lies above" in interval_verdict(0.12, (0.08, 0.17), "<=", 0.05)
    assert interval_verdict(0.95, None, ">=", 0.95) == "met"  # a bound on the target counts as on its side


def test_calibration_is_judged_against_its_target_and_what_the_sample_size_explains() -> None:
    """ECE 0.15 on a small site (a calibrated model scores up to 0.18 there) was "cannot be told from perfect", with no
    word of the 0.05 target; ECE 0.03 on a large one (floor 0.012) was "over-confident" though it met the target."""
    small, large = {"median": 0.11, "p95": 0.18}, {"median": 0.008, "p95": 0.012}
    assert calibration_verdict(0.236, 0.05, small).startswith("**not met, over-confident here**")
    assert calibration_verdict(0.15, 0.05, small).startswith("cannot tell on these images: the point estimate misses it")
    assert calibration_verdict(0.04, 0.05, small).startswith("cannot tell on these images: the point estimate meets it")
    assert calibration_verdict(0.03, 0.05, large) == ("met (though above the 0.012 a perfectly calibrated model scores: "
                                                      "slightly over-confident)")
    assert calibration_verdict(0.01, 0.05, large) == "met"
    assert calibration_verdict(0.07, 0.05, large).startswith("**not met, over-confident here**")
    assert (calibration_verdict(0.3, 0.05, None), calibration_verdict(0.01, 0.05, None)) == ("**not met**", "met")


def test_the_section_states_the_terms_always_and_each_figure_against_its_target() -> None:
    bare = golive_markdown({"run": {}})
    assert "**Research use only. Not a medical device.**" in bare[2] and "non-commercial research study" in bare[2]
    assert "training/release/MODEL_CARD.md" in bare[2] and not any("| figure |" in line for line in bare)
    imported = golive_markdown({"run": {"release_imported": True}})[2]
    assert imported.startswith("These models were brought with `dermassist import`")
    report = {"run": {}, "classification": {"ece": 0.236, "ece_if_calibrated": {"median": 0.06, "p95": 0.095}},
              "triage": {"melanoma_sensitivity": 0.75, "melanoma_sensitivity_ci95": (0.6, 0.86), "specificity": 0.55,
                         "specificity_ci95": (0.45, 0.65), "not_assessable": 0.078, "not_assessable_ci95": (0.05, 0.12)}}
    text = "\n".join(golive_markdown(report))
    assert ("| REFER melanoma sensitivity | 0.750 (0.600-0.860) | >= 0.95 | **not met**: the whole 95% interval lies "
            "below the target |") in text
    assert "| REFER benign specificity | 0.550 (0.450-0.650) | >= 0.5 | cannot tell on these images" in text
    assert "| images not assessable | 0.078 (0.050-0.120) | <= 0.05 | cannot tell" in text
    assert "| ECE after calibration | 0.236 | <= 0.05 | **not met, over-confident here**" in text


def test_the_class_table_notes_a_class_never_learnt_and_one_too_small_to_judge() -> None:
    """SCC read "5 | 0.000 | 0.000" like a measurement, with nothing saying the classifier had no SCC to learn."""
    from dermassist.evaluation.markdown import _per_class_markdown
    from preprocess.contract import CLASS_CODES, CLASS_NAMES

    recall = dict.fromkeys(CLASS_CODES)
    recall.update(MEL=0.8, NV=0.6, SCC=0.0)
    support = dict.fromkeys(CLASS_CODES, 0)
    support.update(MEL=20, NV=30, SCC=5)
    report = {"run": {"not_learnt": ("SCC",)},
              "classification": {"per_class_recall": recall, "support": support, "per_class_f1": dict.fromkeys(CLASS_CODES),
                                 "per_class_recall_ci95": {"SCC": (0.0, 0.3), "MEL": (0.6, 0.93)}}}
    lines = _per_class_markdown(report, dict(zip(CLASS_CODES, CLASS_NAMES)))
    scc = next(line for line in lines if line.startswith("| SCC"))
    assert scc == ("| SCC (Squamous cell carcinoma) | 5 | 0.000 (0.00-0.30) | n/a | not learnt: the classifier had no "
                   "training images of it; too few images to judge (under 10) |")
    assert next(line for line in lines if line.startswith("| MEL")).endswith("| 20 | 0.800 (0.60-0.93) | n/a |  |")
    assert ("Balanced accuracy over the classes learnt alone: 0.700 (the balanced accuracy above counts the SCC images "
            "too, which the served classifier cannot call right).") in lines
    report["run"] = {}  # a classifier that records no untrained class: no note, no second figure
    assert not any("learnt" in line for line in _per_class_markdown(report, dict(zip(CLASS_CODES, CLASS_NAMES))))


def test_melanomas_left_out_and_pictures_the_models_learnt_from_temper_the_verdicts() -> None:
    """With 12 refused melanomas the row said "met" on the melanomas that were answered."""
    report = {"run": {}, "triage": {"melanoma_sensitivity": 1.0, "melanoma_sensitivity_ci95": (0.96, 1.0),
                                    "melanomas_refused": 12},
              "melanomas_not_evaluated": {"absent_on_disk": 1, "not_accepted_format": 0}}
    text = "\n".join(golive_markdown(report))
    assert ("| REFER melanoma sensitivity | 1.000 (0.960-1.000) | >= 0.95 | cannot tell: 13 melanoma(s) refused or "
            "missing are not in this figure (see below) |") in text
    assert "**optimistic**" not in text
    report["seen_by_content"] = [{"image": "P1"}]
    assert "| (all) | | | **optimistic**: some pictures here are ones the models learnt from" in "\n".join(
        golive_markdown(report))


def test_the_terms_follow_the_models_the_answers_name() -> None:
    """A repository found not to be the served one chose the terms; with --url alone the answers' own release said
    `imported:` and the shipped release's terms were printed."""
    imported = golive_markdown({"run": {}, "model": {"release": "imported: classifier runs/x"}})[2]
    assert imported.startswith("These models were brought with `dermassist import`")
    shipped = golive_markdown({"run": {"release_imported": True},
                               "model": {"release": "dermassist-real-2026.12 version 1"}})[2]
    assert shipped.startswith("**Research use only. Not a medical device.**")


def test_imported_models_are_told_apart_from_the_release_in_the_terms_and_the_training_picture_check() -> None:
    """The report pointed a site's own imported models to the release's model card, and said nothing of the pictures
    they learnt from; the classifier kept from the release keeps the release's terms."""
    from training.model_card.shipped import SHIPPED_HEADER

    report = {"run": {"release_models": ["classifier"]}, "model": {"release": "imported: keras a.keras; classifier of "
                                                                              "release r version 1"},
              "triage": {"melanoma_sensitivity": 1.0, "melanoma_sensitivity_ci95": [0.5, 1.0]},
              "seen_unchecked": ["segmenter"]}
    lines = golive_markdown(report)
    assert lines[2].startswith("These models were brought with `dermassist import`")
    assert f"The classifier is the release's: {SHIPPED_HEADER[0]}" in lines[2]
    assert "describes the release's models, not these" in lines[2]
    assert ("| (all) | | | **cannot tell** whether the imported segmenter learnt from pictures here (above): judge only "
            "on pictures its run never saw |") in lines
    every = golive_markdown({**report, "run": {"release_models": []}, "seen_unchecked": ["segmenter", "classifier"]})
    assert "The classifier is the release's" not in every[2] and "imported segmenter and classifier" in "\n".join(every)
