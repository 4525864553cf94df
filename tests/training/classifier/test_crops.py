"""Classifier crops come from ``preprocess.crop`` over ground-truth or predicted masks."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocess.contract import CLASS_CODES, CLS_SIZE
from training.classifier.data import (
    build_crops,
    check_predicted_masks,
    classes_without_images,
    mask_prob,
    warn_classes_without_images,
)
from training.errors import MaskMismatchError, MissingFolderError
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
    cv2.imwrite(str(tmp_path / f"{sample.image_id}.png"), np.zeros((512, 512), np.uint8))
    with pytest.raises(MaskMismatchError, match=r"predicted mask .* is 512x512; expected a 256x256 PNG as the segmenter "
                                                "writes them .*predict the masks again"):
        mask_prob(bare, tmp_path)


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


def _bare(sample: Sample) -> Sample:
    return Sample(sample.image_id, sample.image_path, None, sample.label, sample.lesion_id)


def test_a_predicted_masks_folder_that_does_not_exist_is_refused(tmp_path: Path, synthetic_set: Path) -> None:
    """`--predicted-masks seg1/predicted_mask` (a typo) trained every image whole, with exit 0."""
    sample = _bare(read_dataset(synthetic_set / "ham10000").samples[0])
    absent = tmp_path / "predicted_mask"
    with pytest.raises(MissingFolderError, match=rf"--predicted-masks folder {re.escape(str(absent))} does not exist; "
                                                 r"expected a folder of one `<image_id>.png` per image at 256x256"):
        build_crops([sample], predicted_masks=absent, progress=False)
    assert build_crops([sample], predicted_masks=absent, full_image=True, progress=False).with_mask == 0


def test_a_predicted_masks_folder_naming_no_image_is_refused_for_images_without_ground_truth(
        tmp_path: Path, synthetic_set: Path, caplog: pytest.LogCaptureFixture) -> None:
    samples = read_dataset(synthetic_set / "ham10000").samples[:2]
    cv2.imwrite(str(tmp_path / f"{samples[0].image_id}_pred.png"), np.zeros((256, 256), np.uint8))
    with pytest.raises(MaskMismatchError, match=rf"has no mask for any of the 2 images \(it holds 1 PNG file\(s\), e.g. "
                                                rf"{samples[0].image_id}_pred.png\); expected one `<image_id>.png` .*e.g. "
                                                rf"{samples[0].image_id}.png"):
        check_predicted_masks(tmp_path, [_bare(s) for s in samples])
    with caplog.at_level(logging.WARNING, logger="training.classifier.data"):
        assert build_crops(samples, predicted_masks=tmp_path, progress=False).with_mask == 2  # ground truth cut instead
    assert "their ground-truth masks are cut instead" in caplog.text
    cv2.imwrite(str(tmp_path / f"{samples[1].image_id}.png"), np.zeros((256, 256), np.uint8))
    assert check_predicted_masks(tmp_path, [_bare(s) for s in samples]) == 1


def test_images_without_any_mask_are_named(tmp_path: Path, synthetic_set: Path, caplog: pytest.LogCaptureFixture) -> None:
    samples = read_dataset(synthetic_set / "ham10000").samples[:2]
    cv2.imwrite(str(tmp_path / f"{samples[0].image_id}.png"), np.zeros((256, 256), np.uint8))
    with caplog.at_level(logging.WARNING, logger="training.classifier.data"):
        build_crops([_bare(s) for s in samples], predicted_masks=tmp_path, progress=False)
    assert (f"1 of 2 images had no mask (no ground-truth mask and no <image_id>.png in {tmp_path}, e.g. "
            f"{samples[1].image_id})") in caplog.text


def test_classes_without_images_are_named(caplog: pytest.LogCaptureFixture) -> None:
    labels = [CLASS_CODES.index(c) for c in CLASS_CODES if c not in ("DF", "VASC")]
    assert classes_without_images(labels) == ("DF", "VASC")
    with caplog.at_level(logging.WARNING, logger="training.classifier.data"):
        assert warn_classes_without_images(labels, "train") == ("DF", "VASC")
        assert warn_classes_without_images(range(len(CLASS_CODES)), "val") == ()
    assert len(caplog.records) == 1
    assert "the train split (6 images) has no image of class(es) DF, VASC: the classifier cannot learn them" in caplog.text


def test_the_training_batches_normalisation_is_the_served_one() -> None:
    """Jittered training batches are normalised in float by training's own function; it must give what
    ``lesion_crop`` serves (``preprocess.crop.normalise``) for the same pixels."""
    import torch

    from preprocess.crop import normalise
    from training.classifier.train import normalise_unit

    crops = np.random.default_rng(0).integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    unit = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255.0)
    np.testing.assert_allclose(normalise_unit(unit).numpy(), normalise(crops), rtol=0, atol=1e-6)
