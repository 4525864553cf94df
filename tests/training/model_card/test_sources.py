"""The model card of a release of a site's own data states what its release.json records of that data (sources,
image counts, per-class training counts, data root) and where the site adds its data's terms; the shipped card keeps
its public sets' rows, licences and attribution."""
from __future__ import annotations

import copy
import json

from training.model_card.render import render_model_card
from training.model_card.sources import training_class_counts
from training.release import RELEASE_DIR, read_release

from .releases import site_release


def test_training_class_counts_from_the_figures_are_the_classifier_split_manifests() -> None:
    release = read_release(RELEASE_DIR)
    manifest = json.loads((RELEASE_DIR / release["data"]["splits"]["classifier"]).read_text())
    labels = [entry["label"] for entry in manifest["train"]]
    counts = training_class_counts(release["classifier"]["figures"])
    assert counts is not None
    assert counts == {code: labels.count(code) for code in counts}
    assert sum(counts.values()) == release["classifier"]["figures"]["splits"]["train"]


def test_a_sites_card_states_its_own_data_and_where_its_terms_go() -> None:
    """It said the release was trained on about 880 images of HAM10000 and PH2 under their licences, listed the
    shared data's sets, rare classes and missing SCC, and rebuilt from ../shared/data."""
    card = render_model_card(site_release())
    seed = next(line for line in card.splitlines() if line.startswith("Seed project"))  # the baseline, not this data
    assert seed.endswith("This release had 210 training images and no pretrained weights.")
    demo = ("- The demo page's four example images are HAM10000 evaluation-only images (CC BY-NC-SA 4.0), shipped in the\n"
            "  client package with their attribution.")  # they ship with the client, whatever the release
    assert demo in card
    for shipped in ("PH2", "HAM10000", "880", "ISIC", "Codella", "CC BY-NC", "CC-0", "../shared/data", "make"):
        assert shipped not in card.replace(seed, "").replace(demo, ""), shipped
    data = card[card.index("## Data"):card.index("## Figures")]
    assert ("| site_a | segmenter training and validation; classifier training, validation and test "
            "(210/45/45 images, train/val/test) | 300 | not recorded in release.json; add your data's terms here |") in data
    assert "Classifier splits: 210 train, 45 validation, 45 test.\n" in data
    flat = " ".join(card.split())
    assert "Licence and attribution of site_a: not recorded in release.json; add your data's terms here." in flat
    assert "site_a: licence and attribution not recorded in release.json; add your data's terms here." in card
    limits = " ".join(line.strip() for line in card[card.index("## Known limits"):card.index("## Reproduce")].splitlines())
    assert ("- **No AK, DF, BKL, SCC or VASC in the training data**: site_a has no actinic keratosis, dermatofibroma, "
            "pigmented benign keratosis, squamous cell carcinoma or vascular lesion, so P(AK), P(DF), P(BKL), P(SCC), "
            "P(VASC) are never learnt; such a lesion is called one of the classes learnt (BCC, MEL, NV).") in limits
    assert "- Trained from scratch on 210 images from one source (site_a);" in limits
    assert "- Rare class (BCC) has 21 training images; its recall is noisy on 5 test images." in limits
    assert "`dermassist release --data /data/hospital --recipe <this release>/release.json --out <new folder>`" in card
    assert "`\nretrains with the recorded recipe (below) and evaluates through the ensemble. The classifier stage is\n" in card


def test_a_site_release_with_a_public_set_keeps_that_sets_row_and_terms_and_asks_for_its_own() -> None:
    release = site_release()
    release["recipe"]["cls_data"] = ["site_a", "ph2"]
    ph2 = copy.deepcopy(read_release(RELEASE_DIR)["classifier"]["figures"]["dataset"]["ph2"])
    ph2["root"] = "/data/hospital/ph2/PH2Dataset"
    figures = release["classifier"]["figures"]
    figures["dataset"]["ph2"] = ph2
    for split in ("val_by_source", "test_by_source"):
        figures[split]["ph2"] = read_release(RELEASE_DIR)["classifier"]["figures"][split]["ph2"]
    card = render_model_card(release)
    assert "| PH2 | classifier training, validation and test (139/30/30 images, train/val/test) | 199 | research use with "\
           "citation |" in card
    assert "PH2: Mendonca T." in card and "site_a: licence and attribution not recorded" in card
    assert "from two sources (site_a and Porto PH2)" in " ".join(card.split())
