"""A release's seen_pictures.json: the fingerprints of its models' train and val pictures, none of its test split's,
and the pictures that could not be read counted."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from preprocess.decode import decode_image
from preprocess.fingerprint import SAME_PICTURE_BITS, picture_fingerprint
from training.release import RELEASE_DIR
from training.seen_pictures import SEEN_PICTURES, write_seen_pictures


def test_the_fitted_and_tuned_splits_are_fingerprinted_and_the_test_split_is_not(tmp_path: Path) -> None:
    pictures = {}
    for name, shade in (("A", 40), ("B", 120), ("C", 200)):
        picture = np.zeros((120, 160, 3), np.uint8)
        picture[:, : 20 + shade // 2] = shade  # a step at another place each: three distinct fingerprints
        cv2.imwrite(str(tmp_path / f"{name}.png"), picture)
        pictures[name] = picture
    row = lambda name: {"image_id": name, "image": str(tmp_path / f"{name}.png")}  # noqa: E731
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "classifier_split.json").write_text(json.dumps(
        {"train": [row("A"), {"image_id": "gone", "image": str(tmp_path / "gone.png")}], "val": [row("B")],
         "test": [row("C")]}))
    (tmp_path / "release.json").write_text(json.dumps({"data": {"splits": {"classifier": "splits/classifier_split.json"}}}))
    written = json.loads(write_seen_pictures(tmp_path).read_text())
    assert written["same_picture_bits"] == SAME_PICTURE_BITS and written["unread"] == 1
    fingerprint = {name: picture_fingerprint(cv2.cvtColor(p, cv2.COLOR_BGR2RGB)) for name, p in pictures.items()}
    assert written["models"] == {"classifier": {"train": {fingerprint["A"]: "A"}, "val": {fingerprint["B"]: "B"}}}


def test_the_shipped_release_records_every_picture_its_models_learnt_from(shared_data: Path) -> None:
    """The committed file is the release's: each train and val picture of its manifests, by the fingerprint its file
    gives today."""
    recorded = json.loads((RELEASE_DIR / SEEN_PICTURES).read_text())
    assert recorded["unread"] == 0
    for model in ("classifier", "segmenter"):
        manifest = json.loads((RELEASE_DIR / "splits" / f"{model}_split.json").read_text())
        for split in ("train", "val"):
            assert set(recorded["models"][model][split].values()) == {r["image_id"] for r in manifest[split]}, (model, split)
    first = json.loads((RELEASE_DIR / "splits" / "classifier_split.json").read_text())["train"][0]
    fingerprint = picture_fingerprint(decode_image((RELEASE_DIR.parents[1] / first["image"]).read_bytes()))
    assert recorded["models"]["classifier"]["train"][fingerprint] == first["image_id"]
