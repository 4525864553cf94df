"""Byte-identical pictures before the lesion-grouped split: copies under new names and lesion ids land in one split,
copies labelled with two classes are refused naming every file, copies across sources are left out of the later one,
and the shared sets split as the release recorded."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from training.classifier.run import classification_splits, pool_sources, source_splits
from training.errors import DuplicateImageError, TrainingError
from training.readers import read_dataset
from training.records import Sample
from training.splits import SPLITS, SplitConfig, identical_pictures, manifest, same_splits, split_samples

from .site_folders import nevi, site


def _split_of(splits: dict[str, tuple[Sample, ...]]) -> dict[str, str]:
    return {s.image_id: k for k, samples in splits.items() for s in samples}


def _samples(n: int) -> list[Sample]:
    return [Sample(f"P{i:03d}", Path(f"P{i:03d}.png"), label=1, lesion_id=f"L{i}") for i in range(n)]


def test_same_picture_sets_join_their_lesion_groups_in_every_seed_where_lesions_alone_part_them() -> None:
    samples = _samples(20)
    copy = Sample("COPY_P003", Path("COPY_P003.png"), label=1, lesion_id="NEW_LESION")
    both = [*samples, copy]
    lesions_only = [_split_of(split_samples(both, SplitConfig(seed=seed))) for seed in range(20)]
    parted = [seed for seed, where in enumerate(lesions_only) if where["P003"] != where["COPY_P003"]]
    assert parted, "without the copy sets, some seed must put the copy and its original in two splits"
    for seed in range(20):
        where = _split_of(split_samples(both, SplitConfig(seed=seed), same_picture=[(samples[3], copy)]))
        assert where["P003"] == where["COPY_P003"], seed
        assert len(where) == 21


def test_no_same_picture_sets_split_exactly_as_before() -> None:
    samples = _samples(30)
    assert split_samples(samples, SplitConfig(seed=3), same_picture=()) == split_samples(samples, SplitConfig(seed=3))


def test_identical_pictures_finds_byte_copies_under_other_names_only(tmp_path: Path) -> None:
    root = site(tmp_path / "s", [*nevi("P", 6), ("COPY_P001.png", "NV", "X1", 1), ("COPY_P004.png", "NV", "X4", 4),
                                 ("COPY2_P004.png", "NV", "X5", 4)])
    copies = identical_pictures(read_dataset(root).samples)
    assert [[s.image_id for s in group] for group in copies] == [["COPY2_P004", "COPY_P004", "P004"],
                                                                 ["COPY_P001", "P001"]]


def test_a_sites_byte_copies_under_new_lesion_ids_stay_with_their_originals_and_are_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = nevi("P", 20) + [(f"COPY_P{i:03d}.png", "NV", f"NEW{i}", i) for i in range(0, 20, 2)]
    dataset = read_dataset(site(tmp_path / "site_dup", rows))
    for seed in range(5):
        where = _split_of(classification_splits(dataset, seed))
        assert all(where[f"COPY_P{i:03d}"] == where[f"P{i:03d}"] for i in range(0, 20, 2)), seed
    with caplog.at_level(logging.WARNING):
        _, report = pool_sources((dataset,), seed=0)
    assert report["identical_copies_kept_in_one_split"] == 10 and report["identical_copies_left_out"] == 0
    assert len(report["identical_pictures"]) == 10
    assert any("10 file(s) are byte-identical copies" in r.getMessage() and "COPY_P000 = P000" in r.getMessage()
               for r in caplog.records)


def test_identical_pictures_labelled_otherwise_are_refused_naming_every_file_label_and_the_fix(tmp_path: Path) -> None:
    rows = nevi("P", 10) + [("P901.png", "melanoma", "L901", 2), ("P902.png", "BCC", "L902", 5),
                            ("P903.png", "NV", "L903", 5)]
    dataset = read_dataset(site(tmp_path / "site", rows))
    with pytest.raises(DuplicateImageError) as caught:
        source_splits(dataset, 0)
    message = str(caught.value)
    assert isinstance(caught.value, TrainingError)
    assert "2 picture(s) are stored as byte-identical files labelled with different classes" in message
    for name, code in (("P002.png", "NV"), ("P901.png", "MEL"), ("P005.png", "NV"), ("P902.png", "BCC"),
                       ("P903.png", "NV")):
        assert f"{name} ({code}, labels_csv)" in message, name
    assert "one label is wrong, so fix the wrong label or remove the wrong copy" in message


def test_a_picture_in_two_sources_is_left_out_of_the_later_one_and_refused_when_labelled_otherwise(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from training.classifier.run import distinct_sources

    a = site(tmp_path / "clinic_a", nevi("A", 12))
    b = site(tmp_path / "clinic_b", [*nevi("B", 12, seed=100), ("B_COPY_A003.png", "NV", "BX", 3)])
    first, second = distinct_sources([read_dataset(a), read_dataset(b)])
    with caplog.at_level(logging.WARNING):
        pooled, report = pool_sources((first, second), seed=0)
    ids = {s.image_id for split in pooled.values() for s in split}
    assert "A003" in ids and "B_COPY_A003" not in ids and len(ids) == 24
    assert report["identical_copies_left_out"] == 1 and report["identical_copies_kept_in_one_split"] == 0
    assert any("left out of their later source" in r.getMessage() and "B_COPY_A003.png (labels_csv:clinic_b)"
               in r.getMessage() for r in caplog.records)
    c = site(tmp_path / "clinic_c", [*nevi("C", 12, seed=200), ("C_COPY_A003.png", "MEL", "CX", 3)])
    first, third = distinct_sources([read_dataset(a), read_dataset(c)])
    with pytest.raises(DuplicateImageError, match=r"A003.png \(NV, labels_csv:clinic_a\) = .*C_COPY_A003.png "
                                                  r"\(MEL, labels_csv:clinic_c\)"):
        pool_sources((first, third), seed=0)


def test_a_lesion_in_two_pooled_folders_stays_in_one_split_and_is_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A site's folders per year hold follow-up pictures of one lesion (other pictures, one lesion id): each folder was
    split on its own, and 4 of 37 lesions had been trained on in one folder and tested on in the other (training input
    audit, finding 1). Each lesion now follows its split in the earliest folder; a training-only source's pictures of a
    lesion validated or tested elsewhere are left out."""
    from training.classifier.run import distinct_sources

    followed = range(0, 30, 2)  # the 2024 folder: follow-ups of half the 2023 lesions, and new lesions
    y2023 = site(tmp_path / "site2023", [(f"A{i:03d}.png", "NV", f"LES{i:03d}", i) for i in range(30)])
    y2024 = site(tmp_path / "site2024", [*((f"B{i:03d}.png", "NV", f"LES{i:03d}", 100 + i) for i in followed),
                                         *((f"N{i:03d}.png", "NV", f"NEW{i:03d}", 200 + i) for i in range(20))])
    first, second = distinct_sources([read_dataset(y2023), read_dataset(y2024)])
    alone = [_split_of(source_splits(d, 0)[0]) for d in (first, second)]
    parted = [i for i in followed if alone[0][f"A{i:03d}"] != alone[1][f"B{i:03d}"]]
    assert parted, "split on its own, some lesion must land in two splits (the audit's case)"
    with caplog.at_level(logging.WARNING):
        pooled, report = pool_sources((first, second), seed=0)
    where = _split_of(pooled)
    assert len(where) == 65 and all(where[f"A{i:03d}"] == where[f"B{i:03d}"] for i in followed)
    assert all(where[f"A{i:03d}"] == alone[0][f"A{i:03d}"] for i in range(30))  # the earliest folder's split holds
    assert report["lesion_pictures_moved_to_their_lesions_split"] == len(parted)
    assert report["lesion_pictures_left_out"] == 0
    assert any(f"{len(parted)} picture(s) show a lesion that an earlier source holds in another split" in r.getMessage()
               for r in caplog.records)


def test_a_lesion_moves_with_its_copies_and_two_clinics_numbering_lesions_alike_are_named(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A follow-up moved alone had left its byte copy (under another lesion id) in the split the folder gave them both:
    13 of 30 pairs were trained on and tested on (review 16, finding 1). Two clinics that both number their lesions
    1, 2, 3 are named when a shared number means two diagnoses (review 16, finding 5)."""
    from training.classifier.run import distinct_sources

    y2023 = site(tmp_path / "site2023", [(f"A{i:03d}.png", "NV", f"LES{i:03d}", i) for i in range(30)])
    y2024 = site(tmp_path / "site2024", [*((f"B{i:03d}.png", "NV", f"LES{i:03d}", 100 + i) for i in range(30)),
                                         *((f"C{i:03d}.png", "NV", f"OTHER{i:03d}", 100 + i) for i in range(30)),
                                         *((f"N{i:03d}.png", "NV", f"NEW{i:03d}", 300 + i) for i in range(20))])
    pooled, report = pool_sources(tuple(distinct_sources([read_dataset(y2023), read_dataset(y2024)])), seed=0)
    where = _split_of(pooled)
    assert len(where) == 110 and report["lesion_pictures_moved_to_their_lesions_split"] > 0
    assert all(where[f"A{i:03d}"] == where[f"B{i:03d}"] == where[f"C{i:03d}"] for i in range(30))
    clinic_a = site(tmp_path / "clinic_a", [(f"P{i:03d}.png", "NV", str(i), 500 + i) for i in range(20)])
    clinic_b = site(tmp_path / "clinic_b", [(f"Q{i:03d}.png", "BCC" if i == 3 else "NV", str(i), 700 + i)
                                           for i in range(20)])
    with caplog.at_level(logging.WARNING):
        pool_sources(tuple(distinct_sources([read_dataset(clinic_a), read_dataset(clinic_b)])), seed=0)
    assert ("1 lesion id(s) name lesions of two diagnoses in two sources (3 (NV in labels_csv:clinic_a, BCC in "
            "labels_csv:clinic_b)): two lesions under one id?") in caplog.text


def test_a_unit_whose_lesions_earlier_sources_split_apart_is_left_out() -> None:
    from training.classifier.run import _lesions_kept_together

    a1 = Sample("A1", Path("A1.png"), label=1, lesion_id="L1", source="a")
    a2 = Sample("A2", Path("A2.png"), label=1, lesion_id="L2", source="a")
    b1 = Sample("B1", Path("B1.png"), label=1, lesion_id="L1", source="b")
    b2 = Sample("B2", Path("B2.png"), label=1, lesion_id="L2", source="b")  # a copy of B1 in source b: one unit
    pooled, report = _lesions_kept_together([{"train": (a1,), "test": (a2,)}, {"val": (b1, b2)}], 2, set(),
                                            [(), ((b1, b2),)])
    assert pooled == {"train": (a1,), "val": (), "test": (a2,)}
    assert report == {"lesion_pictures_moved_to_their_lesions_split": 0, "lesion_pictures_left_out": 2}


def test_a_lesion_reached_through_a_copy_under_another_id_follows_the_copys_split(tmp_path: Path) -> None:
    """Clinic B numbers clinic A's lesion BX: a byte copy of A's picture (left out as a copy) and two follow-ups. The
    follow-ups had stayed where B's own split drew them, training while the lesion was validated or tested in 9 of 10
    seeds (review 17, finding 1)."""
    from training.classifier.run import distinct_sources

    rows_a = nevi("A", 14)
    a = read_dataset(site(tmp_path / "clinic_a", rows_a))
    for seed in range(4):
        where_a = _split_of(pool_sources((a,), seed=seed)[0])
        held = next(i for i, k in where_a.items() if k != "train")
        picture_seed = {name[:-4]: seed_ for name, _, _, seed_ in rows_a}[held]
        b = site(tmp_path / f"clinic_b{seed}", [("B900.png", "NV", "BX", picture_seed), ("B901.png", "NV", "BX", 901),
                                                ("B902.png", "NV", "BX", 902), *nevi("B", 14, seed=300)])
        pooled, _ = pool_sources(tuple(distinct_sources([a, read_dataset(b)])), seed=seed)
        where = _split_of(pooled)
        assert "B900" not in where and where["B901"] == where["B902"] == where_a[held], seed


def test_a_training_only_picture_of_a_lesion_tested_elsewhere_is_left_out() -> None:
    from training.classifier.run import _lesions_kept_together

    tested = Sample("T1", Path("T1.png"), label=1, lesion_id="L1", source="site")
    again = Sample("X1", Path("X1.png"), label=1, lesion_id="L1", source="extra")
    other = Sample("X2", Path("X2.png"), label=1, lesion_id="L2", source="extra")
    pooled, report = _lesions_kept_together([{"test": (tested,)}, {"train": (again, other)}], 1, set())
    assert pooled == {"train": (other,), "val": (), "test": (tested,)}
    assert report == {"lesion_pictures_moved_to_their_lesions_split": 0, "lesion_pictures_left_out": 1}
    # the training-only source's byte copy of the picture left out, under another lesion id, goes with it (review 17, 2)
    pooled, report = _lesions_kept_together([{"test": (tested,)}, {"train": (again, other)}], 1, set(),
                                            [(), ((again, other),)])
    assert pooled == {"train": (), "val": (), "test": (tested,)}
    assert report["lesion_pictures_left_out"] == 2


def test_the_shared_sets_split_as_the_release_recorded_with_no_copy_found(shared_data: Path) -> None:
    from training.release import RELEASE_DIR

    recorded = json.loads((RELEASE_DIR / "splits" / "classifier_split.json").read_text())
    sources = tuple(read_dataset(shared_data.resolve() / name) for name in ("isic2018_task3", "ph2"))
    pooled, report = pool_sources(sources, seed=0)
    assert report == {}
    current = json.loads(json.dumps(manifest(pooled)))
    assert same_splits(current, recorded) and set(current) == set(SPLITS)


def test_near_identical_pictures_join_a_picture_resized_and_saved_again_and_nothing_else(tmp_path: Path) -> None:
    from training.splits import near_identical_pictures

    from .site_folders import smooth_picture

    root = site(tmp_path / "s", nevi("P", 8))
    (root / "P100.png").write_bytes(smooth_picture(7))
    (root / "P902.jpg").write_bytes(smooth_picture(7, side=96, suffix=".jpg"))  # resized, JPEG
    (root / "P101.png").write_bytes(smooth_picture(8))
    (root / "labels.csv").write_text((root / "labels.csv").read_text() + "P100.png,NV,L100\nP902.jpg,NV,L902\n"
                                     "P101.png,NV,L101\n")
    samples = read_dataset(root).samples
    assert [[s.image_id for s in group] for group in near_identical_pictures(samples)] == [["P100", "P902"]]
    assert near_identical_pictures(samples, bits=-1) == ()


def test_a_sites_look_alike_copy_under_a_new_lesion_stays_with_its_original_and_is_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from .site_folders import smooth_picture

    rows = nevi("P", 14)
    root = site(tmp_path / "site", rows)
    (root / "P003.png").write_bytes(smooth_picture(3))
    (root / "P902.jpg").write_bytes(smooth_picture(3, side=96, suffix=".jpg"))
    (root / "labels.csv").write_text((root / "labels.csv").read_text() + "P902.jpg,melanoma,NEW\n")
    dataset = read_dataset(root)
    lesions_only = [_split_of(split_samples(dataset.samples, SplitConfig(seed=seed))) for seed in range(10)]
    assert any(w["P003"] != w["P902"] for w in lesions_only), "some seed must part them by lesion alone"
    for seed in range(10):
        where = _split_of(classification_splits(dataset, seed))
        assert where["P003"] == where["P902"], seed
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _, report = pool_sources((dataset,), seed=0)
    assert report["look_alikes_kept_in_one_split"] == 1 and report["identical_copies_kept_in_one_split"] == 0
    assert [[Path(p).name for p in g] for g in report["look_alike_pictures"]] == [["P003.png", "P902.jpg"]]
    warned = [r.getMessage() for r in caplog.records if "look like one picture" in r.getMessage()]
    assert len(warned) == 1 and "P003 (NV) ~ P902 (MEL)" in warned[0] and "check which label is right" in warned[0]


def test_a_public_layout_is_not_searched_for_look_alikes(tmp_path: Path) -> None:
    from dataclasses import replace

    from training.classifier.run import _near_copies

    from .site_folders import smooth_picture

    root = site(tmp_path / "site", nevi("P", 3))
    (root / "P000.png").write_bytes(smooth_picture(1))
    (root / "P001.png").write_bytes(smooth_picture(1, side=96))
    dataset = read_dataset(root)
    assert len(_near_copies(dataset, dataset.samples, ())) == 1
    assert _near_copies(replace(dataset, name="isic2018_task3"), dataset.samples, ()) == ()


def test_copies_merged_counts_a_file_in_two_sets_once() -> None:
    from training.splits import copies_merged

    a, b, c, d = _samples(4)
    assert copies_merged([(a, b), (b, c)]) == 2 and copies_merged([(a, b), (c, d)]) == 2
    assert copies_merged([(a, b, c), (a, b)]) == 2 and copies_merged([]) == 0


def test_a_changed_split_is_described_image_by_image() -> None:
    """A refused re-tune had said only that the splits differ, naming the folders as Path reprs (training input
    audit, finding 12)."""
    from training.splits import splits_difference

    def row(image_id: str, label: str) -> dict:
        return {"image_id": image_id, "lesion_id": None, "label": label, "image": f"/data/{image_id}.jpg"}

    recorded = {"train": [row("A", "NV"), row("B", "NV"), row("C", "MEL"), row("F", "NV")], "test": [row("D", "BCC")],
                "seed": 0}
    relesioned = {**row("F", "NV"), "lesion_id": "L2", "image": "/data/F.png"}
    current = {"train": [row("A", "NV"), row("C", "NV"), row("E", "NV"), relesioned],
               "test": [row("D", "BCC"), row("B", "NV")], "seed": 0}
    assert splits_difference(current, recorded) == (
        "B moved from train to test; train: 1 not recorded (E), 2 otherwise (C: class NV, was MEL, F: lesion L2, "
        "was None and file F.png, was F.jpg)")
    assert splits_difference(recorded, recorded) == "the same images in another order"


def test_a_file_given_as_a_dataset_folder_is_called_a_file(tmp_path: Path) -> None:
    from training.errors import MissingFolderError

    (tmp_path / "afile").write_text("notes")
    with pytest.raises(MissingFolderError, match="dataset folder .*afile is a file; expected a folder"):
        read_dataset(tmp_path / "afile")
    with pytest.raises(MissingFolderError, match="dataset folder .*nothing does not exist"):
        read_dataset(tmp_path / "nothing")
