"""Unusable images given to `train segmenter` (site audit 6): the training's and the --predict-masks data's are all
named in one error before the first epoch, not one per run after the training."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

from training.errors import UnreadableImageError


def _rewrite(path: Path, content: bytes) -> None:
    """Replace a file's bytes without touching the files it is hard-linked to (the synthetic layouts share images)."""
    path.unlink()
    path.write_bytes(content)


def _break(folder: Path, names: list[str], masks: Path | None = None) -> list[Path]:
    """Make three named JPEGs of ``folder`` empty, text and truncated (removing their masks from ``masks``)."""
    paths = [folder / name for name in names]
    whole = paths[-1].read_bytes()
    for path, content in zip(paths, (b"", b"not an image\n", whole[: len(whole) // 3])):
        _rewrite(path, content)
    if masks is not None:
        for p in paths:
            (masks / f"{p.stem}_segmentation.png").unlink()
    return paths


def test_unusable_training_and_prediction_images_are_named_together_before_the_first_epoch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import training.segmenter.train as train
    from training.segmenter.stage import add_arguments, run
    from training.synth.generator import SynthConfig, generate

    generate(tmp_path / "synth", SynthConfig(count=24, seed=7, width=300, height=225), progress=False)
    data, site = tmp_path / "synth" / "isic2018", tmp_path / "synth" / "ham10000"
    val = sorted((data / "ISIC2018_Task1-2_Validation_Input").glob("*.jpg"))
    broken = val[:2]  # truncated: their headers (all the reader checks, against their masks') are whole
    for path in broken:
        _rewrite(path, path.read_bytes()[:2000])
    site_images = sorted((site / "HAM10000_images_part_1").glob("*.jpg"))
    broken += _break(site_images[0].parent, [p.name for p in site_images[:3]], site / "HAM10000_segmentations_lesion_tschandl")

    def no_training(*args, **kwargs):
        raise AssertionError("the images were loaded for training before they were checked")

    monkeypatch.setattr(train, "load_segmentation_arrays", no_training)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "seg"
    args = parser.parse_args(["--data", str(data), "--out", str(out), "--width", "0.0625", "--epochs", "2",
                              "--batch-size", "4", "--warmup-epochs", "0", "--predict-masks", str(site)])
    with pytest.raises(UnreadableImageError) as refused:
        run(args)
    message = str(refused.value)
    assert message.startswith(f"5 of the 48 images of --data {data} and --predict-masks {site} cannot be used")
    for path in broken:
        assert str(path) in message
    assert "image is empty (0 bytes)" in message and "is not an image (it starts with text)" in message
    assert "the file is truncated" in message and "remove it from the data folder" in message
    assert not (out / train.CHECKPOINT).exists() and not (out / "segmenter_metrics.json").exists()


def test_mask_prediction_names_every_unusable_image_and_logs_the_folder_the_masks_end_up_in(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import numpy as np

    from training.readers import read_dataset
    from training.segmenter.train import write_predicted_masks
    from training.synth.generator import SynthConfig, generate

    generate(tmp_path / "synth", SynthConfig(count=12, seed=3, width=120, height=90), progress=False)
    site = tmp_path / "synth" / "ham10000"
    dataset = read_dataset(site)

    class Half:  # a "model" answering 0.5 everywhere: only the files and the log are tested
        def __call__(self, x, training=False):
            return np.full((*x.shape[:3], 1), 0.5, np.float32)

    with caplog.at_level(logging.INFO, logger="training.segmenter.train"):
        assert write_predicted_masks(Half(), dataset, tmp_path / ".staging" / "masks", shown=tmp_path / "masks") == 12
    assert f"wrote 12 predicted masks for {dataset.root} to {tmp_path / 'masks'}" in caplog.text
    images = sorted((site / "HAM10000_images_part_1").glob("*.jpg"))
    shutil.rmtree(tmp_path / ".staging")
    _break(images[0].parent, [p.name for p in images[:3]])
    with pytest.raises(UnreadableImageError, match=r"^3 of the 12 images of .* \(predicting their masks\) cannot be used"):
        write_predicted_masks(Half(), dataset, tmp_path / ".staging" / "masks")
    assert len(list((tmp_path / ".staging" / "masks").iterdir())) == 9  # the others are predicted, then all 3 named
