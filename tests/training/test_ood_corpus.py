"""The out-of-distribution corpus behind the OOD AUROC of every release report: the same files every build."""
from __future__ import annotations

from pathlib import Path

from training.ood_corpus import KINDS, build_ood_corpus


def test_two_builds_with_one_seed_write_the_same_files(tmp_path: Path) -> None:
    """scikit-image's binary_blobs drew new blobs on every call, so three OOD images (photo_023 and its two crops)
    changed between two re-evaluations of one release, and their answers with them."""
    sizes = dict(crops_per_photo=2, documents=1, plain=1, noise=1, synthetic=1)
    counts = build_ood_corpus(tmp_path / "a", seed=0, **sizes)
    assert build_ood_corpus(tmp_path / "b", seed=0, **sizes) == counts
    assert set(counts) == set(KINDS) and all(counts[kind] >= 1 for kind in KINDS), counts
    first = sorted(p.name for p in (tmp_path / "a").glob("*.png"))
    assert first == sorted(p.name for p in (tmp_path / "b").glob("*.png")) and len(first) == sum(counts.values())
    differing = [name for name in first if (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()]
    assert differing == []
