"""A refused ``--resume`` names the images that changed (left by stop 43: it gave two data digests only): each image's
own digest travels in the checkpoint's fingerprint, and the differences are told by kind, split by split."""
from __future__ import annotations

import numpy as np
import pytest

from training.resume import image_digests, images_changed, named_image


def _fingerprint(**splits: dict[str, list[str]]) -> dict:
    return {"format": 1, "config": {}, "data": "x", "images": splits}


def test_image_digests_list_each_rows_digest_under_its_id_and_a_shared_id_is_matched_by_content() -> None:
    """A shared id had been keyed by its place (``x #2``): the first of two rows named x left out, the message said
    "1 changed (x), 1 left out (x #2)" (review 18, L4)."""
    pixels = np.zeros((3, 2, 2), np.uint8)
    pixels[2] = 7
    labels = np.array([0, 0, 1])
    digests = image_digests(["a", "b", "a"], pixels, labels, None)
    assert list(digests) == ["a", "b"] and len(digests["a"]) == 2
    assert digests["a"][0] == digests["b"][0] != digests["a"][1]  # rows 0 and 1 are alike in pixels and label
    assert image_digests(["a", "b", "a"], pixels, np.array([0, 1, 1]))["b"] != digests["b"]  # a label counts
    first_left_out = image_digests(["b", "a"], pixels[1:], labels[1:], None)
    assert images_changed(_fingerprint(train=digests), _fingerprint(train=first_left_out)) == "train: 1 left out (a)"
    assert images_changed(_fingerprint(train=digests),
                          _fingerprint(train=image_digests(["b", "a", "a"], pixels, labels, None))) is not None
    with pytest.raises(ValueError, match="3 image ids for arrays of \\[2\\] rows"):
        image_digests(["a", "b", "c"], pixels[:2])
    assert named_image("ph2", "IMD003") == "ph2/IMD003" and named_image(None, "IMD003") == "IMD003"


def test_images_changed_names_changed_added_moved_and_left_out_images_by_split() -> None:
    before = _fingerprint(train={"a": ["1"], "b": ["2"], "c": ["3"]}, val={"d": ["4"], "e": ["5"]})
    now = _fingerprint(train={"a": ["1"], "b": ["9"], "d": ["4"], "f": ["6"]}, val={"e": ["5"]})
    assert images_changed(before, now) == ("train: 1 changed (b), 1 added (f), 1 moved in from another split (d), "
                                           "1 left out (c)")
    assert images_changed(before, before) is None
    reordered = _fingerprint(train={"c": ["3"], "b": ["2"], "a": ["1"]}, val={"d": ["4"], "e": ["5"]})
    assert images_changed(before, reordered) == "the same images in another order"
    assert images_changed({"format": 1, "config": {}, "data": "x"}, now) is None  # a checkpoint of older code
    one_per_id = {"format": 1, "config": {}, "data": "x", "images": {"train": {"a": "1", "b": "2"}}}
    assert images_changed(one_per_id, now) is None  # this stop's first record format (review 19, L8)


def test_images_changed_lists_five_names_and_counts_the_rest() -> None:
    before = _fingerprint(train={f"img{i:02d}": ["0"] for i in range(8)})
    now = _fingerprint(train={f"img{i:02d}": ["1"] for i in range(8)})
    assert images_changed(before, now) == "train: 8 changed (img00, img01, img02, img03, img04 and 3 more)"
