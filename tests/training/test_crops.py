"""Classifier crops come from ``preprocess.crop`` over ground-truth or predicted masks."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from preprocess.contract import CLS_SIZE
from training.classifier.data import build_crops, mask_prob
from training.readers import read_dataset
from training.records import Sample


def test_crop_zooms_on_the_lesion_and_full_image_does_not(synthetic_set: Path) -> None:
    sample = read_dataset(synthetic_set / "ham10000").samples[3]
    crops = build_crops([sample], progress=False)
    full = build_crops([sample], full_image=True, progress=False)
    assert crops.crops.shape == (1, CLS_SIZE, CLS_SIZE, 3) and crops.with_mask == 1 and full.with_mask == 0
    mask = cv2.imread(str(sample.mask_path), cv2.IMREAD_GRAYSCALE)
    small = cv2.resize(mask, (CLS_SIZE, CLS_SIZE), interpolation=cv2.INTER_AREA)
    assert not np.array_equal(crops.crops[0], full.crops[0])
    assert (small > 127).mean() < 0.6  # the lesion fills less of the whole image than of its crop


def test_predicted_mask_used_when_no_ground_truth(tmp_path: Path, synthetic_set: Path) -> None:
    sample = read_dataset(synthetic_set / "ham10000").samples[0]
    bare = Sample(sample.image_id, sample.image_path, None, sample.label, sample.lesion_id)
    assert mask_prob(bare, None) is None
    pred = np.zeros((256, 256), np.uint8)
    pred[100:150, 90:160] = 255
    cv2.imwrite(str(tmp_path / f"{sample.image_id}.png"), pred)
    prob = mask_prob(bare, tmp_path)
    assert prob.shape == (256, 256) and prob.max() == 1.0 and prob[120, 120] == 1.0
    assert build_crops([bare], predicted_masks=tmp_path, progress=False).with_mask == 1


def test_segmentation_arrays_are_the_served_prepare_inputs(synthetic_set: Path) -> None:
    from preprocess.prepare import prepare_image
    from training.images import load_segmentation_arrays

    samples = read_dataset(synthetic_set / "ham10000").samples[:2]
    xs, ys = load_segmentation_arrays(samples)
    for x, y, sample in zip(xs, ys, samples):
        served = prepare_image(sample.image_path.read_bytes()).seg_input
        np.testing.assert_array_equal(x.astype(np.float32) * np.float32(1.0 / 255.0), served)  # as to_seg_input scales
        assert set(np.unique(y)) <= {0, 1} and y.any()


def test_colour_balanced_crops_and_contexts_are_the_served_ones(synthetic_set: Path) -> None:
    from preprocess.colour import apply_gains, shades_of_grey_gains
    from preprocess.crop import CropParams, crop_batch
    from preprocess.prepare import prepare_image
    from training.classifier.data import mask_prob

    sample = read_dataset(synthetic_set / "ham10000").samples[3]
    params = CropParams(threshold=0.3, colour_constancy=6)
    plain = build_crops([sample], progress=False, params=CropParams(threshold=0.3), context=True)
    balanced = build_crops([sample], progress=False, params=params, context=True)
    prepared = prepare_image(sample.image_path.read_bytes())
    grid = mask_prob(sample, None)[None, ..., None]
    served = crop_batch(grid, [prepared.work_image], np.array([prepared.scale], np.float32), params).crop[0]
    np.testing.assert_array_equal(balanced.crops[0], served)
    gains = shades_of_grey_gains(prepared.work_image, 6)
    assert np.abs(gains - 1).max() > 0.05  # the synthetic light is not grey, so balancing changes the colours
    np.testing.assert_array_equal(balanced.contexts[0], apply_gains(plain.contexts[0], gains))
