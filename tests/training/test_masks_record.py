"""The record beside a folder of predicted masks (training input audit, finding 10: masks of two segmenters mixed in
one folder, and cut at another threshold than their segmenter's, had trained a classifier without a word)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from training.masks_record import MASKS_RECORD, read_masks_record, record_masks, warn_masks_disagree


def _weights(folder: Path, name: str, content: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return folder / name


def test_a_second_segmenters_masks_in_one_folder_are_recorded_as_mixed_and_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    masks = tmp_path / "masks"
    first, second = _weights(tmp_path / "a", "segmenter.keras", b"one"), _weights(tmp_path / "b", "segmenter.keras", b"two")
    record_masks(masks, first, 0.5)
    (masks / "ISIC_0000001.png").write_bytes(b"png")
    record_masks(masks, first, 0.5)  # the same segmenter again: nothing mixed
    assert "mixed_with" not in read_masks_record(masks) and not caplog.records
    with caplog.at_level(logging.WARNING, logger="training.masks_record"):
        record_masks(masks, second, 0.6, shown=Path("/runs/b/segmenter.keras"))
    record = json.loads((masks / MASKS_RECORD).read_text())
    assert record["threshold"] == 0.6 and record["segmenter"] == "/runs/b/segmenter.keras"
    assert len(record["mixed_with"]) == 1 and "held masks of another segmenter" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="training.masks_record"):
        warn_masks_disagree(masks, 0.5)
    assert "holds masks of 2 segmenters" in caplog.text
    assert "tuned to threshold 0.6, but the crops are cut at --crop-threshold 0.5: pass --crop-threshold 0.6" in caplog.text


def test_the_release_pipeline_records_its_stages_masks_under_the_release_weights_without_calling_them_mixed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    masks = tmp_path / "masks"
    staged = _weights(tmp_path / "run", "segmenter.keras", b"keras file")
    released = _weights(tmp_path / "release", "segmenter.npz", b"npz file of the same model")
    record_masks(masks, staged, 0.45)
    (masks / "ISIC_0000001.png").write_bytes(b"png")
    with caplog.at_level(logging.WARNING):
        record_masks(masks, released, same_model=True)
        warn_masks_disagree(masks, 0.45)
    record = read_masks_record(masks)
    assert record is not None and "mixed_with" not in record and record["threshold"] == 0.45
    assert not caplog.records
    assert read_masks_record(tmp_path / "nothing") is None


def test_a_rebuild_that_rewrites_every_mask_is_not_mixed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The build's segmenter stage, run again, rewrites every mask of the folder the release's weights were recorded
    for: it had always been called mixed (review 17, finding 5); a mask left from before still is."""
    masks = tmp_path / "masks"
    released = _weights(tmp_path / "release", "segmenter.npz", b"npz")
    rebuilt = _weights(tmp_path / "run", "segmenter.keras", b"keras of the rebuild")
    for name in ("ISIC_1.png", "ISIC_2.png"):
        _weights(masks, name, b"png")
    record_masks(masks, released, same_model=True)
    with caplog.at_level(logging.WARNING, logger="training.masks_record"):
        record_masks(masks, rebuilt, 0.5, written={"ISIC_1.png", "ISIC_2.png"})
    assert not caplog.records and "mixed_with" not in read_masks_record(masks)
    record_masks(masks, released, same_model=True)
    with caplog.at_level(logging.WARNING, logger="training.masks_record"):
        record_masks(masks, rebuilt, 0.5, written={"ISIC_1.png"})
    assert "held masks of another segmenter" in caplog.text and read_masks_record(masks)["mixed_with"]
