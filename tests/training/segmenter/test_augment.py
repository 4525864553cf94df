"""The segmenter's joint augmentation moves the mask with its image: a red channel painted where the mask is must
come out where the augmented mask is, for every seed (the training run's dice bar did not notice a mask left behind)."""
from __future__ import annotations

import numpy as np
import pytest

from preprocess.contract import SEG_SIZE

SEEDS = range(6)


def _pair() -> tuple[np.ndarray, np.ndarray]:
    """An L-shaped, off-centre mask (no flip or turn leaves it where it was) and an image whose red channel is the mask
    (255 on it, 0 off it), its other channels a constant and a ramp."""
    mask = np.zeros((SEG_SIZE, SEG_SIZE), np.uint8)
    mask[40:120, 30:70] = 1
    mask[100:120, 70:160] = 1
    image = np.zeros((SEG_SIZE, SEG_SIZE, 3), np.uint8)
    image[..., 0] = mask * 255
    image[..., 1] = 50
    image[..., 2] = np.arange(SEG_SIZE, dtype=np.uint8)[None, :] // 2
    return image, mask


def _augmented(strong: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf

    from training.segmenter.augment import augment_fn

    image, mask = _pair()
    tf.random.set_seed(seed)
    x, y = augment_fn(strong, False)(tf.constant(image), tf.constant(mask))
    return x.numpy(), y.numpy()[..., 0] >= 0.5


def test_flips_and_quarter_turns_move_the_mask_exactly_with_its_image() -> None:
    _, mask = _pair()
    dihedral = [np.rot90(m, k) for m in (mask, mask[:, ::-1]) for k in range(4)]
    moved = 0
    for seed in SEEDS:
        x, y = _augmented(False, seed)
        np.testing.assert_array_equal(y, x[..., 0] >= 0.5)
        assert any(np.array_equal(y, d.astype(bool)) for d in dihedral)
        moved += not np.array_equal(y, mask.astype(bool))
    assert moved > 0  # the seeds did turn or flip it


@pytest.mark.parametrize("seed", SEEDS)
def test_the_strong_geometry_keeps_the_mask_on_its_lesion_through_the_colour_jitter(seed: int) -> None:
    x, y = _augmented(True, seed)
    red = x[..., 0] > 0.5  # the colour jitter moves a 0/255 red channel, seldom across half way
    assert (red & y).sum() / (red | y).sum() >= 0.97
    assert y.sum() > 1000  # the lesion is still in the picture
