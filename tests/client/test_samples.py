"""The real example images bundled for the demo page: one per diagnosis, named, attributed, packaged, unseen."""
from __future__ import annotations

import csv
import tomllib

import pytest
from PIL import Image

from dermassist_client import DermAssistClientError
from dermassist_client.samples import (
    ATTRIBUTION_FILE,
    CITATION,
    LICENCE,
    SAMPLES_DIR,
    attribution_markdown,
    parse_sample,
    samples,
)
from tests.conftest import PROJECT_ROOT

DIAGNOSIS_OF_DX = {"mel": "melanoma", "nv": "nevus", "bcc": "basal cell carcinoma", "bkl": "benign keratosis"}


def test_examples_are_one_real_image_per_diagnosis():
    bundled = samples()
    assert sorted(s.diagnosis for s in bundled) == sorted(DIAGNOSIS_OF_DX.values())
    for sample in bundled:
        assert sample.path.read_bytes().startswith(b"\xff\xd8\xff")
        with Image.open(sample.path) as image:
            assert image.size == (600, 450) and image.mode == "RGB"
    assert samples()[0].label == f"{bundled[0].diagnosis.capitalize()} ({bundled[0].isic_id})"


def test_sample_names_must_say_id_and_diagnosis():
    sample = parse_sample(SAMPLES_DIR / "ham10000_ISIC_0028059_basal_cell_carcinoma.jpg")
    assert (sample.isic_id, sample.diagnosis) == ("ISIC_0028059", "basal cell carcinoma")
    assert sample.label == "Basal cell carcinoma (ISIC_0028059)"
    for bad in ("synthetic_reddish.jpg", "ham10000_ISIC_28059_bcc.jpg", "ham10000_ISIC_0028059_.jpg",
                "ham10000_ISIC_0028059_Melanoma.jpg"):
        with pytest.raises(DermAssistClientError, match="is not named ham10000_ISIC_<7 digits>_<diagnosis>.jpg"):
            parse_sample(SAMPLES_DIR / bad)


def test_attribution_file_and_page_text_name_every_example_the_citation_and_the_licence():
    text = " ".join(ATTRIBUTION_FILE.read_text().split())
    assert CITATION in text and LICENCE in text and "non-commercial" in text.lower()
    page = attribution_markdown(samples())
    assert CITATION in page and LICENCE in page
    for sample in samples():
        assert f"`{sample.path.name}` | {sample.isic_id} |" in text
        assert f"{sample.isic_id}: {sample.diagnosis}" in page


def test_examples_are_packaged_with_their_attribution():
    package_data = tomllib.loads((PROJECT_ROOT / "client" / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["dermassist_client"]
    assert "samples/*.jpg" in package_data and "samples/ATTRIBUTION.md" in package_data


def test_examples_match_the_published_labels_and_no_training_set_holds_them(shared_data):
    with open(shared_data / "ham10000_sample" / "HAM10000_metadata.csv", newline="") as f:
        dx = {row["image_id"]: row["dx"] for row in csv.DictReader(f)}
    with open(shared_data / "isic2018_task3" / "ISIC2018_Task3_Test_GroundTruth.csv", newline="") as f:
        training = {row["image"] for row in csv.DictReader(f)}
    training |= {p.stem for p in (shared_data / "isic2017_seg_256").rglob("ISIC_*.jpg")}
    for sample in samples():
        assert DIAGNOSIS_OF_DX[dx[sample.isic_id]] == sample.diagnosis
        assert sample.isic_id not in training
        original = shared_data / "ham10000_sample" / "HAM10000_images_part_1" / f"{sample.isic_id}.jpg"
        assert original.read_bytes() == sample.path.read_bytes()
