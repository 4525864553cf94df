"""The credit of public images and the images the release was fitted on."""
from __future__ import annotations

from pathlib import Path

from dermassist.evaluation.markdown import render_markdown


def test_attribution_credits_a_public_set_only_for_its_own_image_names() -> None:
    from dermassist.evaluation.provenance import ATTRIBUTION, attribution

    assert attribution("ham10000", ["ISIC_0024311", "ISIC_0027001"]) == ATTRIBUTION["ham10000"]
    assert attribution("ham10000", ["P001", "P002"]) == ""  # a hospital's own images in the HAM10000 layout
    assert attribution("isic2019", ["ISIC_0024311", "P002", "P003"]) == f"1 of 3 images are named as in {ATTRIBUTION['isic2019']}"
    assert attribution("ham10000", ["ISIC_00243"]) == ""  # not 7 digits
    assert attribution("ph2", ["IMD002"]) == ATTRIBUTION["ph2"]


def test_the_images_the_release_was_fitted_on_are_flagged_at_the_top(tmp_path: Path) -> None:
    import json

    from dermassist.evaluation.provenance import seen_in_training

    release = tmp_path / "release"
    (release / "splits").mkdir(parents=True)
    (release / "release.json").write_text(json.dumps({"data": {"splits": {"classifier": "splits/c.json"}}}))
    (release / "splits" / "c.json").write_text(json.dumps({
        "train": [{"image_id": "A"}, {"image_id": "B"}], "val": [{"image_id": "C"}], "test": [{"image_id": "D"}]}))
    seen = seen_in_training(["A", "C", "D", "E"], release)
    assert seen == [{"model": "classifier", "manifest": str(release / "splits" / "c.json"), "splits": {"train": 1, "val": 1},
                     "images": ["A", "C"], "unseen_splits": ["test"]}]
    assert seen_in_training(["D", "E"], release) == [] and seen_in_training(["A"], tmp_path / "none") == []
    report = {"name": "x", "data": "d", "dataset": "isic2019", "split": None, "images": 4, "answered": 4, "refused": [],
              "model": {}, "seen_in_training": seen}
    text = render_markdown(report, [], {})
    assert ("**Optimistic figures:** 2 of the evaluated images (1 in train and 1 in val; e.g. A, C) are in the training "
            "or validation split of the released classifier") in text
    assert "so the diagnosis, calibration and referral figures on them are optimistic. Evaluate only images it never " \
           f"saw with `--split-manifest {release / 'splits' / 'c.json'} --split test`." in text
    assert text.splitlines()[4].startswith("**Optimistic figures:**")  # at the top, under the data line
    only_fitted = seen_in_training(["A", "C"], release)  # none of them in the held-out split: none to suggest
    assert only_fitted[0]["unseen_splits"] == []
    text = render_markdown({**report, "seen_in_training": only_fitted}, [], {})
    assert "None of the evaluated images is in its held-out splits." in text and "--split test" not in text


def test_the_releases_records_warn_only_for_the_models_it_still_serves(tmp_path: Path) -> None:
    """A site's imported classifier evaluated on the release's training pictures was said to have learnt from them (the
    release's did), and on its own training pictures nothing was said: the release's records now speak for the models
    the repository keeps from the release, and the others are named as not checked."""
    import json
    import shutil
    from types import SimpleNamespace

    from dermassist.base.paths import SHARED_DATA
    from dermassist.evaluation.run import release_pictures_seen
    from training.release import RELEASE_DIR

    first = json.loads((RELEASE_DIR / "splits" / "classifier_split.json").read_text())["train"][0]
    original = SHARED_DATA / "isic2018_task3" / "ISIC2018_Task3_Test_Input" / f"{first['image_id']}.jpg"
    renamed = tmp_path / "P001.jpg"
    shutil.copyfile(original, renamed)
    samples = [SimpleNamespace(image_id=first["image_id"], code=first["label"], image_path=original),
               SimpleNamespace(image_id="P001", code=first["label"], image_path=renamed)]
    every = release_pictures_seen(samples, tmp_path, None)  # a --url server: what it serves is not known here
    assert [m["model"] for m in every["seen_in_training"]] == ["classifier"] and every["seen_unchecked"] == []
    assert {r["model"] for r in every["seen_by_content"]} == {"classifier"}
    kept_segmenter = release_pictures_seen(samples, tmp_path, ["segmenter"])  # the classifier was imported
    assert kept_segmenter["seen_in_training"] == [] and kept_segmenter["seen_by_content"] == []
    assert kept_segmenter["seen_unchecked"] == ["classifier"]
    assert release_pictures_seen(samples, tmp_path, [])["seen_unchecked"] == ["segmenter", "classifier"]
