"""Dataset readers on the real samples in ../shared/data and on broken copies of them."""
from __future__ import annotations

import csv
import shutil
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.errors import (
    DuplicateImageError,
    EmptyDatasetError,
    MaskMismatchError,
    MissingFolderError,
    UnknownLabelError,
    UnknownLayoutError,
)
from training.readers import read_dataset
from training.readers.ham import read_ham, read_ham_metadata
from training.readers.isic2019 import read_isic2019, read_isic2019_labels
from training.records import Sample
from training.splits import SplitConfig, split_samples


def test_isic2017_real_sample_pairs_and_part3_labels(shared_data: Path) -> None:
    ds = read_dataset(shared_data / "isic2017_seg_256")
    assert ds.name == "isic2017"
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 200, "val": 150}
    assert ds.has_masks
    assert all(s.mask_path.name == f"{s.image_id}_segmentation.png" for s in ds.samples)
    counts = ds.class_counts()
    assert counts["MEL"] > 0 and counts["BKL"] > 0 and counts["NV"] > 0
    assert sum(counts.values()) == 350


def test_ham_real_sample_maps_dx_and_finds_masks(shared_data: Path) -> None:
    ds = read_dataset(shared_data / "ham10000_sample")
    assert ds.name == "ham10000" and len(ds.samples) == 75 and not ds.missing_images
    counts = ds.class_counts()
    assert counts == {"AK": 10, "BCC": 10, "DF": 10, "MEL": 10, "NV": 13, "BKL": 12, "SCC": 0, "VASC": 10}
    assert sum(s.mask_path is not None for s in ds.samples) == 5
    assert all(s.lesion_id and s.lesion_id.startswith("HAM_") for s in ds.samples)


def test_ham_akiec_refined_into_ak_and_scc_by_isic2019(shared_data: Path) -> None:
    ds = read_ham(shared_data / "ham10000_sample", shared_data / "reference" / "ISIC_2019_Training_GroundTruth.csv")
    counts = ds.class_counts()
    assert (counts["AK"], counts["SCC"]) == (3, 7)


@pytest.mark.parametrize(("image_id", "ham", "isic2019"), [("ISIC_0026083", "AK", "MEL"), ("ISIC_0024311", "NV", "MEL")])
def test_an_isic2019_label_that_disagrees_with_ham_beyond_ak_or_scc_is_refused(
        shared_data: Path, tmp_path: Path, image_id: str, ham: str, isic2019: str) -> None:
    """The ISIC 2019 ground truth only tells an akiec image AK from SCC; it had turned an akiec image into MEL, and a
    nevus it calls MEL kept NV without a word (training input audit, finding 4)."""
    reference = (shared_data / "reference" / "ISIC_2019_Training_GroundTruth.csv").read_text().splitlines()
    columns = reference[0].split(",")
    edited = [",".join([image_id, *("1.0" if c == isic2019 else "0.0" for c in columns[1:])])
              if row.startswith(image_id + ",") else row for row in reference]
    (tmp_path / "gt.csv").write_text("\n".join(edited) + "\n")
    with pytest.raises(UnknownLabelError, match=f"{image_id} is {ham} in .*HAM10000_metadata.csv but {isic2019} in "
                                                ".*gt.csv; the ISIC 2019 ground truth only tells an akiec image AK from SCC"):
        read_ham(shared_data / "ham10000_sample", tmp_path / "gt.csv")


def test_isic2019_real_sample_covers_all_classes(shared_data: Path) -> None:
    ds = read_dataset(shared_data / "isic2019_sample")
    assert ds.name == "isic2019" and len(ds.samples) == 18 and ds.skipped_unknown == 0
    counts = ds.class_counts()
    assert all(v > 0 for v in counts.values())
    assert counts["AK"] == 3 and counts["SCC"] == 3


def test_isic2019_unk_rows_are_skipped_and_counted(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "isic2019_sample"
    (tmp_path / "ISIC_2019_Training_Input").symlink_to(src / "ISIC_2019_Training_Input")
    rows = (src / "ISIC_2019_Training_GroundTruth.csv").read_text().splitlines()
    rows += ["ISIC_0099991,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0", "ISIC_0099992,0,0,0,0,0,0,0,0,1"]
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text("\n".join(rows) + "\n")
    ds = read_isic2019(tmp_path)
    assert ds.skipped_unknown == 2 and len(ds.samples) == 18
    assert ds.report()["skipped_unknown"] == 2


def test_isic2019_row_with_two_classes_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "gt.csv").write_text("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\nISIC_0000001,1,1,0,0,0,0,0,0,0\n")
    with pytest.raises(UnknownLabelError, match="exactly one class"):
        read_isic2019_labels(tmp_path / "gt.csv")


def test_isic2019_value_that_is_not_a_number_is_named(tmp_path: Path) -> None:
    (tmp_path / "gt.csv").write_text("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\nISIC_0000001,1,0,0,0,0,0,0,0,0\n"
                                     "ISIC_0000002,yes,0,0,0,0,0,0,0,0\n")
    with pytest.raises(UnknownLabelError, match=r"gt.csv line 3 \(ISIC_0000002\): column MEL holds 'yes'; expected 1 or 0"):
        read_isic2019_labels(tmp_path / "gt.csv")


def test_reference_labels_map_to_contract(shared_data: Path) -> None:
    labels, unknown, repeated = read_isic2019_labels(shared_data / "reference" / "ISIC_2019_Training_GroundTruth.csv")
    assert len(labels) + len(unknown) == 25331 and repeated == ()
    assert set(labels.values()) == set(range(8))


def _ham_copy(shared_data: Path, tmp_path: Path) -> Path:
    src = shared_data / "ham10000_sample"
    dst = tmp_path / "ham"
    dst.mkdir()
    (dst / "HAM10000_images_part_1").symlink_to(src / "HAM10000_images_part_1")
    shutil.copy(src / "HAM10000_metadata.csv", dst / "HAM10000_metadata.csv")
    return dst


def test_ham_image_listed_but_absent_is_counted_not_fatal(shared_data: Path, tmp_path: Path) -> None:
    root = _ham_copy(shared_data, tmp_path)
    with (root / "HAM10000_metadata.csv").open("a") as f:
        f.write("HAM_9999999,ISIC_9999999,nv,histo,40.0,male,back\n")
    ds = read_ham(root)
    assert ds.missing_images == ("ISIC_9999999",)
    assert len(ds.samples) == 75 and ds.report()["missing_images"] == 1


def test_ham_unknown_dx_is_an_error(shared_data: Path, tmp_path: Path) -> None:
    root = _ham_copy(shared_data, tmp_path)
    text = (root / "HAM10000_metadata.csv").read_text().replace(",df,", ",xyz,", 1)
    (root / "HAM10000_metadata.csv").write_text(text)
    with pytest.raises(UnknownLabelError, match="'xyz'"):
        read_ham(root)


def test_ham_without_image_folder_is_missing_folder(shared_data: Path, tmp_path: Path) -> None:
    shutil.copy(shared_data / "ham10000_sample" / "HAM10000_metadata.csv", tmp_path / "HAM10000_metadata.csv")
    with pytest.raises(MissingFolderError, match="no image folder"):
        read_ham(tmp_path)


def test_ham_mask_of_another_size_is_an_error(shared_data: Path, tmp_path: Path) -> None:
    root = _ham_copy(shared_data, tmp_path)
    masks = root / "HAM10000_segmentations_lesion_tschandl"
    masks.mkdir()
    cv2.imwrite(str(masks / "ISIC_0024311_segmentation.png"), np.zeros((100, 120), np.uint8))
    with pytest.raises(MaskMismatchError, match="120x100"):
        read_ham(root)


def _tiny_isic2018(tmp_path: Path, n: int = 3) -> Path:
    images = tmp_path / "ISIC2018_Task1-2_Training_Input"
    masks = tmp_path / "ISIC2018_Task1_Training_GroundTruth"
    images.mkdir()
    masks.mkdir()
    for i in range(n):
        cv2.imwrite(str(images / f"ISIC_{i:07d}.jpg"), np.full((60, 80, 3), 128, np.uint8))
        cv2.imwrite(str(masks / f"ISIC_{i:07d}_segmentation.png"), np.zeros((60, 80), np.uint8))
    return tmp_path


def test_isic2018_layout_reads(tmp_path: Path) -> None:
    ds = read_dataset(_tiny_isic2018(tmp_path))
    assert ds.name == "isic2018" and len(ds.splits["train"]) == 3


def test_isic2018_mask_size_mismatch(tmp_path: Path) -> None:
    root = _tiny_isic2018(tmp_path)
    cv2.imwrite(str(root / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000001_segmentation.png"),
                np.zeros((30, 40), np.uint8))
    with pytest.raises(MaskMismatchError, match="40x30 but its image"):
        read_dataset(root)


def test_isic2018_image_without_mask_and_mask_without_image(tmp_path: Path) -> None:
    root = _tiny_isic2018(tmp_path)
    (root / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000002_segmentation.png").unlink()
    with pytest.raises(MaskMismatchError, match="have no mask"):
        read_dataset(root)
    (root / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000002.jpg").unlink()
    cv2.imwrite(str(root / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000005_segmentation.png"),
                np.zeros((60, 80), np.uint8))
    with pytest.raises(MaskMismatchError, match="have no image"):
        read_dataset(root)


def test_empty_dataset_and_unknown_layout_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "ISIC2018_Task1-2_Training_Input").mkdir()
    (tmp_path / "ISIC2018_Task1_Training_GroundTruth").mkdir()
    with pytest.raises(EmptyDatasetError, match="holds no usable image"):
        read_dataset(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(UnknownLayoutError, match="matches no accepted layout"):
        read_dataset(other)
    with pytest.raises(MissingFolderError):
        read_dataset(tmp_path / "absent")


def test_reference_splits_group_lesions_and_stratify(shared_data: Path) -> None:
    from training.readers.ham import dx_to_label

    rows = read_ham_metadata(shared_data / "reference" / "HAM10000_metadata.csv")
    samples = [Sample(r["image_id"], Path(r["image_id"]), None, dx_to_label(r["dx"], "ref"), r["lesion_id"]) for _, r in rows]
    assert len({s.lesion_id for s in samples}) < len(samples)
    splits = split_samples(samples, SplitConfig(seed=3))
    where: dict[str, set[str]] = defaultdict(set)
    for name, items in splits.items():
        for s in items:
            where[s.lesion_id].add(name)
    assert all(len(v) == 1 for v in where.values())
    assert sum(len(v) for v in splits.values()) == len(samples)
    for name in ("train", "val", "test"):
        assert {s.label for s in splits[name]} == {0, 1, 2, 3, 4, 5, 7}  # HAM has no SCC dx
    assert 0.10 < len(splits["test"]) / len(samples) < 0.20
    again = split_samples(samples, SplitConfig(seed=3))
    assert [s.image_id for s in again["test"]] == [s.image_id for s in splits["test"]]
    other = split_samples(samples, SplitConfig(seed=4))
    assert [s.image_id for s in other["test"]] != [s.image_id for s in splits["test"]]


def test_split_manifest_written(tmp_path: Path, shared_data: Path) -> None:
    import json

    from training.splits import write_manifest

    ds = read_dataset(shared_data / "ham10000_sample")
    splits = split_samples(ds.samples)
    data = json.loads(write_manifest(splits, tmp_path / "m.json").read_text())
    assert sum(len(v) for v in data.values()) == 75
    assert {"image_id", "lesion_id", "label", "image"} <= set(data["train"][0])


def test_ham_metadata_csv_columns_checked(tmp_path: Path) -> None:
    with (tmp_path / "HAM10000_metadata.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["lesion_id", "image_id", "diagnosis"], ["L1", "ISIC_0000001", "nv"]])
    with pytest.raises(UnknownLabelError, match=r"required column\(s\) \['dx'\] are missing, got \['lesion_id', "
                                                r"'image_id', 'diagnosis'\]; expected image_id, dx .*"
                                                r"dx_type, age, sex, localization and any other columns are optional "
                                                r"\(lesion_id: the lesion each image shows, which training needs: "):
        read_ham_metadata(tmp_path / "HAM10000_metadata.csv")


def test_a_sites_own_csv_is_read_as_it_is_written(shared_data: Path, tmp_path: Path) -> None:
    """What a hospital's folder looks like: a spreadsheet's byte-order mark, its own file names, subfolders, TIFF and
    BMP files, only its own classes, and a row listed twice."""
    from PIL import Image

    src = sorted((shared_data / "isic2019_sample" / "ISIC_2019_Training_Input").glob("*.jpg"))[:4]
    root = tmp_path / "site"
    images = root / "ISIC_2019_Training_Input"
    (images / "clinic_b").mkdir(parents=True)
    names = ["P001.jpg", "clinic_b/P002.tif", "P003.bmp", "P004.JPG"]
    for path, name in zip(src, names):
        Image.open(path).save(images / name)
    rows = ["image,MEL,NV,BKL", "P001,1,0,0", "P002,0,1,0", "P003,0,0,1", "P004,0,1,0", "P004,0,1,0"]
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text("\ufeff" + "\n".join(rows) + "\n", encoding="utf-8")
    ds = read_isic2019(root)
    assert [(s.image_id, s.image_path.name, s.code) for s in ds.samples] == [
        ("P001", "P001.jpg", "MEL"), ("P002", "P002.tif", "NV"), ("P003", "P003.bmp", "BKL"), ("P004", "P004.JPG", "NV")]
    assert ds.duplicate_rows == ("P004",)
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text("\n".join([*rows, "P004,1,0,0"]) + "\n")
    with pytest.raises(DuplicateImageError, match="lines 5 and 7 both list P004, with different diagnoses"):
        read_isic2019(root)
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text("\n".join(rows) + "\n")
    Image.open(src[0]).save(images / "P001.png")
    with pytest.raises(DuplicateImageError, match="image id P001 names two files"):
        read_isic2019(root)


def test_a_ham_row_listed_twice_is_read_once_and_a_conflicting_one_is_refused(shared_data: Path, tmp_path: Path) -> None:
    root = _ham_copy(shared_data, tmp_path)
    metadata = root / "HAM10000_metadata.csv"
    lines = metadata.read_text().splitlines()
    before = read_ham(root)
    metadata.write_text("\n".join([*lines, lines[1]]) + "\n")
    again = read_ham(root)
    assert len(again.samples) == len(before.samples) and again.duplicate_rows == (before.samples[0].image_id,)
    first = lines[1].split(",")
    first[2] = "mel" if first[2] != "mel" else "nv"
    metadata.write_text("\n".join([*lines, ",".join(first)]) + "\n")
    with pytest.raises(DuplicateImageError, match=rf"lines 2 and {len(lines) + 1} both list {first[1]}"):
        read_ham(root)


def test_an_unreadable_dataset_file_is_named_not_a_traceback(tmp_path: Path, ham_jpeg: bytes) -> None:
    from training.errors import UnreadableImageError
    from training.images import load_prepared
    from training.readers.common import image_size

    cut = tmp_path / "ISIC_0000001.jpg"
    cut.write_bytes(ham_jpeg[: len(ham_jpeg) // 3])
    with pytest.raises(UnreadableImageError, match="dataset image .*ISIC_0000001.jpg cannot be used: .*truncated"):
        load_prepared(cut)
    garbage = tmp_path / "ISIC_0000002_segmentation.png"
    garbage.write_bytes(b"not a png at all")
    with pytest.raises(UnreadableImageError, match="ISIC_0000002_segmentation.png cannot be read as an image"):
        image_size(garbage)
