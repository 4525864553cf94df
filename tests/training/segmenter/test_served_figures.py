"""The segmenter's recorded figures and its tuned threshold are those of the masks lesion_crop serves (threshold, then
the largest component), checked on probability maps whose answers are worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from preprocess.contract import SEG_SIZE
from training.segmenter.train import served_masks, served_metrics, tune_served_threshold


def _square(top: int, left: int, side: int) -> np.ndarray:
    out = np.zeros((SEG_SIZE, SEG_SIZE), bool)
    out[top:top + side, left:left + side] = True
    return out


def test_the_served_mask_keeps_the_largest_component_only() -> None:
    """A 40x40 and a 10x10 blob above the threshold: plain thresholding scores 1600/1700 against the big one, the
    served mask (the big one alone) 1.0; against the small one the served mask scores 0."""
    big, small = _square(20, 20, 40), _square(150, 150, 10)
    prob = np.where(big | small, 0.9, 0.05).astype(np.float32)[None]
    np.testing.assert_array_equal(served_masks(prob, 0.5)[0], big.astype(np.uint8))
    figures = served_metrics(big[None].astype(np.float32), prob, 0.5)
    assert figures["jaccard"] == pytest.approx(1.0) and figures["dice"] == pytest.approx(1.0)
    assert served_metrics(small[None].astype(np.float32), prob, 0.5)["jaccard"] == pytest.approx(0.0)


def test_the_tuned_threshold_is_the_one_whose_served_masks_score_best() -> None:
    """The lesion (40x40) is a 30x30 core at 0.9 in a ring at 0.42; far off, a 50x50 patch of skin at 0.32. At 0.35 and
    0.40 the served mask is the whole lesion (Jaccard 1); at 0.30 and below the skin patch is the largest component
    (Jaccard 0); from 0.45 the core alone, 900/1600 = 0.5625, under ISIC's 0.65 floor: thresholded 0. The first of
    the two best candidates wins."""
    lesion, core, skin = _square(20, 20, 40), _square(25, 25, 30), _square(150, 150, 50)
    prob = np.full((SEG_SIZE, SEG_SIZE), 0.05, np.float32)
    prob[lesion], prob[core], prob[skin] = 0.42, 0.9, 0.32
    best, scores = tune_served_threshold(lesion[None].astype(np.float32), prob[None])
    assert best == 0.35 and scores[0.4]["thresholded_jaccard"] == pytest.approx(1.0)
    assert scores[0.3]["jaccard"] == pytest.approx(0.0)
    assert scores[0.45]["jaccard"] == pytest.approx(0.5625) and scores[0.45]["thresholded_jaccard"] == 0.0
