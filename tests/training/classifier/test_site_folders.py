"""Several site folders in the generic labels.csv layout trained together: each is its own source, named after its
folder; the same folder twice, two folders of one public layout, and ids naming different pictures in two folders
are refused with the folders and the fix; a run's data records the copies it kept together."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from training.classifier.run import check_distinct, distinct_sources, prepare_data
from training.errors import TrainingConfigError
from training.readers import read_dataset

from ..site_folders import nevi, site


def test_two_site_folders_train_together_each_named_after_its_folder(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    a = site(tmp_path / "clinic_a", nevi("A", 10))
    b = site(tmp_path / "clinic_b", nevi("B", 10, seed=100))
    with caplog.at_level(logging.INFO, logger="training.classifier.run"):
        data = prepare_data([a, b], seed=0, full_image=True, progress=False)
    assert [d.name for d in data.datasets] == ["labels_csv:clinic_a", "labels_csv:clinic_b"]
    sources = {s.source for split in data.splits.values() for s in split}
    assert sources == {"labels_csv:clinic_a", "labels_csv:clinic_b"}
    assert set(data.sets["test"].sources) == sources  # each folder gets its own test figures
    assert all(len(v) for v in data.splits.values()) and sum(len(v) for v in data.splits.values()) == 20
    assert data.duplicates == {}
    assert any("pooling 2 labels.csv folders" in r.getMessage() for r in caplog.records)


def test_one_site_folder_keeps_the_layout_name(tmp_path: Path) -> None:
    data = prepare_data(site(tmp_path / "clinic_a", nevi("A", 10)), seed=0, full_image=True, progress=False)
    assert [d.name for d in data.datasets] == ["labels_csv"]
    assert {s.source for split in data.splits.values() for s in split} == {"labels_csv"}


def test_folders_of_one_name_are_told_apart_by_their_parents(tmp_path: Path) -> None:
    a = site(tmp_path / "clinic_b" / "2024", nevi("A", 3))
    b = site(tmp_path / "clinic_c" / "2024", nevi("B", 3, seed=100))
    named = distinct_sources([read_dataset(a), read_dataset(b)])
    assert [d.name for d in named] == ["labels_csv:clinic_b/2024", "labels_csv:clinic_c/2024"]
    check_distinct(named)


def test_the_same_site_folder_twice_is_refused_naming_it_and_the_fix(tmp_path: Path) -> None:
    a = site(tmp_path / "clinic_a", nevi("A", 10))
    with pytest.raises(TrainingConfigError, match=rf"different dataset.*labels_csv at {a}; labels_csv at {a}\).*pass "
                                                  "a folder once"):
        prepare_data([a, a], seed=0, full_image=True, progress=False)


def test_ids_naming_different_pictures_in_two_folders_are_refused_naming_them_and_the_fix(tmp_path: Path) -> None:
    """A manifest, evaluate's --split and --predicted-masks know a picture by its id: two folders' P000 to P009 let
    evaluate score one clinic's training pictures as the other's test (review 11); refused with or without masks."""
    a = site(tmp_path / "clinic_a", nevi("P", 10))
    b = site(tmp_path / "clinic_b", nevi("P", 10, seed=100))
    masks = tmp_path / "masks"
    masks.mkdir()
    for predicted in (masks, None):
        with pytest.raises(TrainingConfigError, match=r"10 image id\(s\) name different pictures in two sources \(P000, "
                                                      r"P001, P002, P003, P004 and 5 more: .*clinic_a.*P000.png of "
                                                      r"labels_csv:clinic_a and .*clinic_b.*P000.png of labels_csv:clinic_b"
                                                      r"\).*rename the files of one folder .* and their rows in its "
                                                      "labels.csv"):
            prepare_data([a, b], seed=0, predicted_masks=predicted, full_image=predicted is None, progress=False)


def test_an_id_naming_the_same_bytes_in_two_sources_is_one_picture_kept_once(tmp_path: Path) -> None:
    """ISIC 2019 holds HAM10000's pictures under their own ids: pooling them was refused under --predicted-masks with a
    message about labels.csv rows the public layouts do not have (review 11); the later copy is left out."""
    a = site(tmp_path / "clinic_a", nevi("P", 10))
    b = site(tmp_path / "clinic_b", [*nevi("P", 3), *nevi("Q", 10, seed=100)])  # P000-P002: the same bytes as a's
    masks = tmp_path / "masks"
    masks.mkdir()
    data = prepare_data([a, b], seed=0, full_image=True, progress=False)
    assert sum(len(v) for v in data.splits.values()) == 20  # 10 + 13 - the 3 copies


def test_a_runs_data_records_the_copies_kept_in_one_split(tmp_path: Path) -> None:
    rows = [*nevi("P", 10), ("COPY_P001.png", "NV", "NEW", 1)]
    data = prepare_data(site(tmp_path / "site_dup", rows), seed=0, full_image=True, progress=False)
    assert data.duplicates["identical_copies_kept_in_one_split"] == 1
    assert [Path(p).name for p in data.duplicates["identical_pictures"][0]] == ["COPY_P001.png", "P001.png"]
    where = {s.image_id: k for k, v in data.splits.items() for s in v}
    assert where["COPY_P001"] == where["P001"]


def test_a_runs_metrics_list_the_labelled_images_not_read_with_their_class(tmp_path: Path) -> None:
    from training.classifier.run import listed_not_read

    root = site(tmp_path / "site_heic", nevi("P", 4))
    (root / "labels.csv").write_text((root / "labels.csv").read_text() + "P970.heic,melanoma,L970\nP999.jpg,nv,L999\n")
    (root / "P970.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    clean = read_dataset(site(tmp_path / "clean", nevi("C", 4, seed=50)))
    assert listed_not_read([read_dataset(root), clean]) == {
        "labels_csv": [{"image": "P970.heic", "label": "MEL"}, {"image": "P999.jpg", "label": "NV"}]}
    assert listed_not_read([clean]) == {}


def test_unusable_images_anywhere_in_the_folder_are_named_in_one_error_before_the_split(tmp_path: Path) -> None:
    """Bad files in different splits were named one split at a time: a run per split to find them all."""
    from training.errors import UnreadableImageError

    root = site(tmp_path / "clinic", nevi("A", 20))
    for bad in ("A003.png", "A011.png", "A017.png"):
        (root / bad).write_bytes(b"")
    with pytest.raises(UnreadableImageError, match=r"^3 of the 20 images of --data .*clinic cannot be used") as refused:
        prepare_data(root, seed=0, full_image=True, progress=False)
    assert all(name in str(refused.value) for name in ("A003.png", "A011.png", "A017.png"))


def test_a_resized_copy_of_a_picture_in_another_site_folder_is_left_out_and_named(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Look-alikes were joined within one folder only: a clinic's resized copy of another's picture landed in train in
    one folder and test in the other, with nothing said (review 11)."""
    from ..site_folders import smooth_picture

    a = site(tmp_path / "clinic_a", [*nevi("A", 10), ("shared.png", "NV", "S1", 0)])
    b = site(tmp_path / "clinic_b", [*nevi("B", 10, seed=100), ("shared_big.png", "NV", "S2", 0)])
    (a / "shared.png").write_bytes(smooth_picture(7, 64))
    (b / "shared_big.png").write_bytes(smooth_picture(7, 96))
    with caplog.at_level(logging.WARNING, logger="training.classifier.run"):
        data = prepare_data([a, b], seed=0, full_image=True, progress=False)
    kept = {s.image_path.name for split in data.splits.values() for s in split}
    assert "shared.png" in kept and "shared_big.png" not in kept and len(kept) == 21
    assert data.duplicates["look_alikes_left_out"] == 1
    assert any("1 picture(s) look like a picture of an earlier site folder" in r.getMessage()
               and "shared_big.png" in r.getMessage() for r in caplog.records)


def test_a_folder_whose_whole_path_ends_another_is_named_without_the_root() -> None:
    from training.readers.labels_csv import site_source_name

    assert site_source_name(Path("/a/clinic"), 3) == "labels_csv:a/clinic"
    assert site_source_name(Path("/b/a/clinic"), 3) == "labels_csv:b/a/clinic"
