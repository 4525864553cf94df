"""The CAM deletion test on maps and scorers whose answer is known."""
from __future__ import annotations

import numpy as np

from dermassist.faithfulness import deletion_test, erase, patch_ranks


def test_patch_ranks_put_the_hottest_patch_first() -> None:
    cam = np.zeros((224, 224), np.uint8)
    cam[32:48, 160:176] = 255  # patch row 2, column 10
    cam[0:16, 0:16] = 100  # patch 0
    assert patch_ranks(cam)[:2].tolist() == [2 * 14 + 10, 0]


def test_erase_blurs_exactly_the_given_patches() -> None:
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    out = erase(crop, [0, 15])  # patch 15 = row 1, column 1
    assert (out[16:32, 16:32] != crop[16:32, 16:32]).any() and out[:16, :16].std() < crop[:16, :16].std() / 4
    untouched = np.ones((224, 224), bool)
    untouched[:16, :16] = untouched[16:32, 16:32] = False
    assert (out[untouched] == crop[untouched]).all()


def test_a_faithful_map_beats_random_erasure() -> None:
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 60, (6, 224, 224, 3), dtype=np.uint8)
    cams = np.zeros((6, 224, 224), np.uint8)
    for i, crop in enumerate(crops):
        crop[96:144, 96:144] = 250  # the evidence: a bright square in the middle
        cams[i, 96:144, 96:144] = 255  # a map that points at it

    def score(batch: np.ndarray) -> np.ndarray:
        evidence = (batch[:, 96:144, 96:144] > 200).mean(axis=(1, 2, 3))
        probs = np.zeros((len(batch), 8))
        probs[:, 3] = 0.2 + 0.8 * evidence
        probs[:, 4] = 1 - probs[:, 3]
        return probs

    result = deletion_test(crops, cams, score)
    assert result.share_cam_wins == 1.0 and result.as_dict()["images"] == 6
    misleading = deletion_test(crops, np.roll(cams, 90, axis=2), score)  # a map pointing beside the evidence
    assert misleading.share_cam_wins < 0.5
