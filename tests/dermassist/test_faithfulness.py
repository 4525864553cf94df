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


def test_patch_ranks_keep_row_major_order_among_ties() -> None:
    from dermassist.faithfulness import PATCH

    flat = np.zeros((224, 224), np.uint8)
    # every patch ties at 0: the ranking is the row-major order 0, 1, ..., 195 (a stable sort of equal keys)
    assert patch_ranks(flat).tolist() == list(range(196))
    two_hot = flat.copy()
    two_hot[5 * PATCH : 6 * PATCH, 3 * PATCH : 4 * PATCH] = 200  # patch 5 * 14 + 3 = 73
    two_hot[1 * PATCH : 2 * PATCH, 9 * PATCH : 10 * PATCH] = 200  # patch 1 * 14 + 9 = 23
    ranks = patch_ranks(two_hot).tolist()
    assert ranks[:2] == [23, 73]  # equal means: the earlier patch in row-major order first
    assert ranks[2:5] == [0, 1, 2]  # then the cold ones, again in row-major order


def test_erase_counts_patches_row_major_across_the_width() -> None:
    rng = np.random.default_rng(2)
    crop = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)  # 2 rows of 4 patches of 16 px
    out = erase(crop, [2])  # row 0, column 2: pixels [0:16, 32:48]
    changed = (out != crop).any(axis=2)
    assert changed[:16, 32:48].any() and changed.sum() == changed[:16, 32:48].sum()


def test_share_cam_wins_counts_strict_wins_and_is_zero_without_images() -> None:
    from dermassist.faithfulness import Faithfulness

    # image 1: equal drops (a tie is no win); image 2: 0.3 > 0.1 (a win) -> 1 of 2
    result = Faithfulness(cam_drop=np.array([0.2, 0.3]), random_drop=np.array([0.2, 0.1]))
    assert result.share_cam_wins == 0.5
    empty = Faithfulness(cam_drop=np.array([]), random_drop=np.array([]))
    assert empty.share_cam_wins == 0.0 and empty.as_dict()["mean_drop_cam"] is None


def test_deletion_test_erases_a_fifth_of_the_patches_rounded() -> None:
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, (2, 16, 48, 3), dtype=np.uint8)  # 1 row of 3 patches: 20% of 3 = 0.6, rounds to 1
    cams = np.zeros((2, 16, 48), np.uint8)
    cams[:, :, 32:48] = 255  # the map points at patch 2
    originals = crops.copy()
    seen: list[np.ndarray] = []

    def score(batch: np.ndarray) -> np.ndarray:
        seen.append(batch)
        kept = (batch[:, :, 32:48] == originals[:, :, 32:48]).all(axis=(1, 2, 3))  # patch 2 untouched?
        probs = np.zeros((len(batch), 8))
        probs[:, 3] = np.where(kept, 1.0, 0.5)
        probs[:, 4] = 1.0 - probs[:, 3]
        return probs

    result = deletion_test(crops, cams, score)
    # erasing the CAM's one top patch (patch 2) drops P(MEL) from 1.0 to 0.5 in both images
    np.testing.assert_allclose(result.cam_drop, [0.5, 0.5])
    by_cam, at_random = seen[1], seen[2]
    for erased in (by_cam, at_random):  # exactly one 16 px patch of the three changed per image
        changed = [(erased[:, :, 16 * p : 16 * (p + 1)] != originals[:, :, 16 * p : 16 * (p + 1)]).any(axis=(1, 2, 3))
                   for p in range(3)]
        assert (np.sum(changed, axis=0) == 1).all()


def test_deletion_test_erases_39_of_196_patches_of_a_served_crop() -> None:
    rng = np.random.default_rng(4)
    crops = rng.integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    cams = rng.integers(0, 256, (1, 224, 224), dtype=np.uint8)
    seen: list[np.ndarray] = []

    def score(batch: np.ndarray) -> np.ndarray:
        seen.append(batch)
        return np.tile(np.eye(8)[3], (len(batch), 1))

    deletion_test(crops, cams, score)
    # 20% of 14 x 14 = 39.2 -> 39 patches blurred, by the CAM and at random alike
    for erased in seen[1:]:
        blocks = (erased[0] != crops[0]).any(axis=2).reshape(14, 16, 14, 16).any(axis=(1, 3))
        assert blocks.sum() == 39


def test_a_classifier_torch_cannot_load_is_a_repository_error_naming_the_file(tmp_path) -> None:
    """Audit finding 8: the release report's faithfulness step passed torch's raw error on."""
    import pytest

    from dermassist.base.errors import RepositoryError
    from dermassist.faithfulness import torchscript_scorer

    path = tmp_path / "model.pt"
    with pytest.raises(RepositoryError, match=rf"^{path}: expected a TorchScript module .*got nothing at that path .*"
                                              r"run `dermassist models` to export it again$"):
        torchscript_scorer(path)
