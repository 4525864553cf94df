"""Synthetic generator: layouts readable by the real readers, determinism, class imbalance, speed."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from preprocess.contract import CLASS_CODES
from training.readers import read_dataset
from training.synth.generator import SynthConfig, generate, plan
from training.synth.grid import sample_grid
from training.synth.render import render


def test_layouts_are_read_by_the_real_readers(synthetic_set: Path) -> None:
    ham = read_dataset(synthetic_set / "ham10000")
    isic = read_dataset(synthetic_set / "isic2018")
    assert ham.name == "ham10000" and len(ham.samples) == 160 and ham.has_masks and ham.has_labels
    assert isic.name == "isic2018" and set(isic.splits) == {"train", "val", "test"}
    assert sum(len(v) for v in isic.splits.values()) == 160
    assert len({s.lesion_id for s in ham.samples}) < 160  # several images per lesion
    lesion_of = {s.image_id: s.lesion_id for s in ham.samples}
    split_of_lesion: dict[str, set[str]] = {}
    for split, items in isic.splits.items():
        for s in items:
            split_of_lesion.setdefault(lesion_of[s.image_id], set()).add(split)
    assert all(len(v) == 1 for v in split_of_lesion.values())
    assert (synthetic_set / "ham10000" / "HAM10000_images_part_2").is_dir()


def test_scc_is_labelled_akiec_in_metadata_and_refined_by_isic2019(synthetic_set: Path) -> None:
    text = (synthetic_set / "ham10000" / "HAM10000_metadata.csv").read_text()
    assert "scc" not in text.split("\n", 1)[1]
    ds = read_dataset(synthetic_set / "ham10000")
    planned = Counter(CLASS_CODES[p.label] for p in plan(SynthConfig(count=160, seed=7)))
    assert ds.class_counts() == {c: planned.get(c, 0) for c in CLASS_CODES}


def test_images_look_like_600x450_dermoscopy_with_matching_masks(synthetic_set: Path) -> None:
    ds = read_dataset(synthetic_set / "ham10000")
    s = ds.samples[0]
    img = cv2.imread(str(s.image_path))
    mask = cv2.imread(str(s.mask_path), cv2.IMREAD_GRAYSCALE)
    assert img.shape == (450, 600, 3) and mask.shape == (450, 600)
    assert set(np.unique(mask)) <= {0, 255} and 0.005 < (mask > 0).mean() < 0.6
    assert img.std() > 10
    corners = [cv2.imread(str(t.image_path))[:6, :6].mean() for t in ds.samples[:30]]
    assert 0.2 < np.mean(np.array(corners) < 20) < 1.0  # the dermoscope's dark vignette, on most images


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", SynthConfig(count=12, seed=5), progress=False)
    b = generate(tmp_path / "b", SynthConfig(count=12, seed=5), progress=False)
    c = generate(tmp_path / "c", SynthConfig(count=12, seed=6), progress=False)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file() and p.name != "synth_manifest.json")
    assert len(files) >= 12 * 4 + 2
    for rel in files:
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    first = sorted((a.ham_root / "HAM10000_images_part_1").iterdir())[0].name
    part = "HAM10000_images_part_1"
    assert (a.ham_root / part / first).read_bytes() != (c.ham_root / part / first).read_bytes()


def test_class_imbalance_is_ham_like() -> None:
    counts = Counter(CLASS_CODES[p.label] for p in plan(SynthConfig(count=4000, seed=1)))
    assert counts.most_common(1)[0][0] == "NV" and counts["NV"] > 0.3 * 4000
    assert set(CLASS_CODES) == set(counts)
    rarest = {c for c, _ in counts.most_common()[-3:]}
    assert {"SCC", "VASC"} <= rarest
    views = Counter(p.lesion_id for p in plan(SynthConfig(count=4000, seed=1)))
    assert max(views.values()) == 3 and min(views.values()) == 1


def test_classes_differ_in_colour() -> None:
    def lesion_mean(code: str) -> np.ndarray:
        vals = []
        for i in range(6):
            r = render(code, 100 + i, 200 + i)
            vals.append(r.image[r.mask > 0].mean(axis=0))
        return np.mean(vals, axis=0)

    mel, vasc, nv = lesion_mean("MEL"), lesion_mean("VASC"), lesion_mean("NV")
    assert mel.sum() < nv.sum()  # melanoma darker than nevus
    assert vasc[0] - vasc[1] > nv[0] - nv[1]  # vascular lesions redder


def test_sample_grid_png(tmp_path: Path) -> None:
    path = sample_grid(tmp_path / "grid.png", per_class=2)
    grid = cv2.imread(str(path))
    assert grid.shape[0] == 8 * 150 and grid.shape[1] == 190 + 2 * 200
