"""Seeded splits grouped by lesion (no lesion in two splits), stratified by class, and their manifest; byte-identical
pictures (a file copied under another name or lesion id) are found first and kept in one split."""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from .errors import DuplicateImageError, EmptyDatasetError, SplitError
from .records import Sample

K = TypeVar("K", str, Path, int)  # what _joined joins: lesion group names, file paths, row numbers

#: Lesion groups one class needs before a split by lesion gives it a validation (and a test) lesion.
MIN_LESIONS_TO_SPLIT = 3

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of lesions per split and the seed; validated on construction."""

    val: float = 0.15
    test: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0.0 <= self.val < 1.0 and 0.0 <= self.test < 1.0 and self.val + self.test < 1.0):
            raise SplitError(
                f"split fractions val={self.val}, test={self.test} must be >= 0 and sum below 1; "
                "e.g. --val 0.15 --test 0.15"
            )


def file_sha256(path: Path) -> str | None:
    """The sha256 of a file's bytes, or None when it cannot be read (the crop stage names unreadable files)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def identical_pictures(samples: Sequence[Sample]) -> tuple[tuple[Sample, ...], ...]:
    """The sets of ``samples`` whose image files hold the same bytes (a picture copied under another name, lesion id or
    folder), each of at least two samples sorted by image id, the sets sorted by their first image id; () when every
    file differs."""
    by_digest: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        digest = file_sha256(s.image_path)
        if digest is not None:
            by_digest[digest].append(s)
    copies = [tuple(sorted(group, key=lambda s: s.image_id)) for group in by_digest.values() if len(group) > 1]
    return tuple(sorted(copies, key=lambda g: g[0].image_id))


def near_identical_pictures(samples: Sequence[Sample], bits: int | None = None) -> tuple[tuple[Sample, ...], ...]:
    """The sets of ``samples`` whose pictures look the same: their fingerprints (``preprocess.fingerprint``, as
    evaluate and the release's seen pictures take them) differ in at most ``bits`` of 256 (``SAME_PICTURE_BITS``:
    the same picture resized or saved again), joined through any chain of such pairs; each set of at least two
    samples sorted by image id, the sets sorted by their first image id. A file that cannot be decoded is left to the
    crop stage, which names it. Every picture is decoded: a call costs about as much as reading the images once."""
    from preprocess.errors import PreprocessError
    from preprocess.fingerprint import SAME_PICTURE_BITS, bits_apart, file_fingerprint, fingerprint_rows

    limit = SAME_PICTURE_BITS if bits is None else bits
    printed: list[Sample] = []
    prints: list[str] = []
    for s in samples:
        try:
            prints.append(file_fingerprint(s.image_path))
        except (OSError, PreprocessError):
            continue
        printed.append(s)
    if len(printed) < 2:
        return ()
    rows = fingerprint_rows(prints)
    root = _joined((i, i + 1 + int(j)) for i in range(len(printed) - 1)
                   for j in np.flatnonzero(bits_apart(rows[i + 1:], prints[i]) <= limit))
    sets: dict[int, list[Sample]] = defaultdict(list)
    for i, s in enumerate(printed):
        sets[root(i)].append(s)
    found = [tuple(sorted(group, key=lambda s: s.image_id)) for group in sets.values() if len(group) > 1]
    return tuple(sorted(found, key=lambda g: g[0].image_id))


def _listed(sample: Sample) -> str:
    """A sample as a duplicate message names it: its file and class code (and its source where it has one)."""
    source = f", {sample.source}" if sample.source else ""
    return f"{sample.image_path} ({sample.code}{source})"


def refuse_conflicting_labels(copies: Sequence[Sequence[Sample]], where: str) -> None:
    """Raise DuplicateImageError when a set of byte-identical pictures holds two labels, naming every file of every such
    set with its label: one label is wrong, and which cannot be known here."""
    conflicts = [group for group in copies if len({s.label for s in group}) > 1]
    if not conflicts:
        return
    listed = "; ".join(" = ".join(_listed(s) for s in group) for group in conflicts)
    raise DuplicateImageError(
        f"{where}: {len(conflicts)} picture(s) are stored as byte-identical files labelled with different classes: "
        f"{listed}; expected one class per picture: one label is wrong, so fix the wrong label or remove the wrong "
        "copy (and its label row), then run again")


def _joined(pairs: Iterable[tuple[K, K]]) -> Callable[[K], K]:
    """The root of each key once every pair is joined (union-find): the keys of one joined set share a root, the least
    of them."""
    parent: dict[K, K] = {}

    def root(key: K) -> K:
        while parent.get(key, key) != key:
            key = parent[key]
        return key

    for a, b in pairs:
        low, high = sorted((root(a), root(b)))
        if low != high:
            parent[high] = low
    return root


def copies_merged(copies: Sequence[Sequence[Sample]]) -> int:
    """How many files of ``copies`` are copies of another: each picture's files but one, a file in two sets (a byte
    copy that is also a look-alike of a third file) joining them into one picture."""
    root = _joined((Path(group[0].image_path), Path(s.image_path)) for group in copies for s in group[1:])
    files = {Path(s.image_path) for group in copies for s in group}
    return len(files) - len({root(f) for f in files})


def merged_groups(samples: Sequence[Sample], same_picture: Sequence[Sequence[Sample]]) -> dict[str, list[Sample]]:
    """Samples by lesion group, the groups that share a picture (``same_picture``) joined into one named after its
    first group name (in sorted order), so that every copy of a picture lands in one split with its lesions."""
    pairs = [(names[0], name) for group in same_picture for names in [sorted({s.group for s in group})]
             for name in names[1:]]
    root = _joined(pairs)
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[root(s.group)].append(s)
    return groups


def _group_stratum(samples: Sequence[Sample]) -> tuple[int, int | str]:
    """The stratum of a lesion group: its majority ``stratum`` where samples carry one, else its majority class."""
    strata = [s.stratum for s in samples if s.stratum is not None]
    if strata:
        return 1, Counter(strata).most_common(1)[0][0]
    labels = [s.label for s in samples if s.label is not None]
    return 0, Counter(labels).most_common(1)[0][0] if labels else -1


def split_samples(samples: Sequence[Sample], config: SplitConfig = SplitConfig(),
                  same_picture: Sequence[Sequence[Sample]] = ()) -> dict[str, tuple[Sample, ...]]:
    """Split samples into train/val/test by lesion group, stratified by each group's majority class (or stratum).

    Within each class, groups are shuffled with the seed and cut by the fractions; a class with at
    least three groups gets at least one group in every non-empty split. Each set of ``same_picture`` (byte-identical
    files: :func:`identical_pictures`) joins the lesion groups of its samples into one, so no picture is in two
    splits; without such sets the split is the one lesion groups alone give.
    """
    if not samples:
        raise EmptyDatasetError("cannot split an empty dataset; expected at least one sample, got 0")
    groups = merged_groups(samples, same_picture)
    by_class: dict[tuple[int, int | str], list[str]] = defaultdict(list)
    for name in sorted(groups):
        by_class[_group_stratum(groups[name])].append(name)
    rng = np.random.default_rng(config.seed)
    assigned: dict[str, list[Sample]] = {k: [] for k in SPLITS}
    for label in sorted(by_class):
        names = list(by_class[label])
        rng.shuffle(names)
        n = len(names)
        n_test = int(round(n * config.test))
        n_val = int(round(n * config.val))
        if n >= MIN_LESIONS_TO_SPLIT:
            n_test = max(n_test, 1 if config.test > 0 else 0)
            n_val = max(n_val, 1 if config.val > 0 else 0)
        for i, name in enumerate(names):
            split = "test" if i < n_test else "val" if i < n_test + n_val else "train"
            assigned[split].extend(groups[name])
    out = {k: tuple(sorted(v, key=lambda s: s.image_id)) for k, v in assigned.items()}
    merged = f" ({copies_merged(same_picture)} copies of a picture kept in its split)" if same_picture else ""
    logger.info("split %d images / %d lesions%s into %s", len(samples), len(groups), merged,
                {k: len(v) for k, v in out.items()})
    return out


def manifest(splits: Mapping[str, Sequence[Sample]]) -> dict:
    """JSON-ready manifest: per split, the image id, lesion id, class code and file of every sample."""
    return {
        split: [
            {"image_id": s.image_id, "lesion_id": s.lesion_id, "label": s.code, "image": str(s.image_path)}
            for s in items
        ]
        for split, items in splits.items()
    }


def same_splits(a: Mapping[str, Sequence[Mapping]], b: Mapping[str, Sequence[Mapping]]) -> bool:
    """Whether two split manifests put the same images (id, lesion, class, file name) in the same splits, wherever
    the data folder lies (a manifest records the paths as the run spelled them)."""
    def key(m: Mapping[str, Sequence[Mapping]]) -> dict[str, list[tuple]]:
        return {split: [(r["image_id"], r["lesion_id"], r["label"], Path(r["image"]).name) for r in rows]
                for split, rows in m.items()}
    return key(a) == key(b)


def splits_difference(current: Mapping[str, Sequence[Mapping]], recorded: Mapping[str, Sequence[Mapping]]) -> str:
    """How two split manifests differ, for a message: the images that moved between splits, those added or gone, and
    those whose lesion, class or file differs (what differs named), a few of each, e.g. "B moved from train to test;
    train: 1 not recorded (E), 1 otherwise (C: class NV, was MEL)"."""
    fields = ("lesion", "class", "file")

    def rows(m: Mapping[str, Sequence[Mapping]]) -> dict[str, tuple[str, tuple]]:
        return {r["image_id"]: (split, (r["lesion_id"], r["label"], Path(r["image"]).name))
                for split, split_rows in m.items() if isinstance(split_rows, (list, tuple)) for r in split_rows}

    def names(ids: Sequence[str]) -> str:
        return ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")

    now, then = rows(current), rows(recorded)
    both = sorted(set(now) & set(then))
    moved = [i for i in both if now[i][0] != then[i][0]]
    parts = [f"{names([f'{i} moved from {then[i][0]} to {now[i][0]}' for i in moved])}"] if moved else []
    for split in sorted({s for s, _ in (*now.values(), *then.values())}):
        added = sorted(i for i, (s, _) in now.items() if s == split and i not in then)
        gone = sorted(i for i, (s, _) in then.items() if s == split and i not in now)
        changed = [i for i in both if now[i][0] == split and now[i][1] != then[i][1]]

        def what(i: str) -> str:
            return " and ".join(f"{f} {a}, was {b}" for f, a, b in zip(fields, now[i][1], then[i][1]) if a != b)
        said = [f"{len(added)} not recorded ({names(added)})" if added else "",
                f"{len(gone)} recorded but not found now ({names(gone)})" if gone else "",
                f"{len(changed)} otherwise ({names([f'{i}: {what(i)}' for i in changed])})" if changed else ""]
        if any(said):
            parts.append(f"{split}: " + ", ".join(p for p in said if p))
    return "; ".join(parts) or "the same images in another order"


def write_manifest(splits: Mapping[str, Sequence[Sample]], path: Path) -> Path:
    """Write the split manifest as JSON (beside the model it was used for)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest(splits), indent=1))
    return path
