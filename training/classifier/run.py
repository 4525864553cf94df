"""One classifier run end to end: read, split, crop, train, report, optionally export (PyTorch only)."""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from preprocess.contract import CLASS_CODES
from preprocess.crop import CropParams
from preprocess.fingerprint import SAME_PICTURE_BITS

from ..errors import EmptyDatasetError, TrainingConfigError
from ..metrics import classification_metrics, melanoma_auc
from ..readers import read_dataset
from ..readers.common import shown_names
from ..readers.labels_csv import LAYOUT as LABELS_CSV_LAYOUT
from ..readers.labels_csv import site_source_name
from ..records import Dataset, Sample
from ..release import write_json_atomic
from ..resume import RESUME_HINT, Checkpointing
from ..run_folder import CLASSIFIER_STATE_DICT, INTERRUPTED, refuse_file_out
from ..run_folder import staged_outputs as staged_run_outputs
from ..splits import (
    MIN_LESIONS_TO_SPLIT,
    SPLITS,
    SplitConfig,
    copies_merged,
    file_sha256,
    identical_pictures,
    merged_groups,
    near_identical_pictures,
    refuse_conflicting_labels,
    split_samples,
    write_manifest,
)
from .checkpoint import checkpoint_path
from .data import CropSet, build_crops, check_images, warn_classes_without_images
from .train import ClassifierConfig, Reached, predict_logits, train_classifier, write_classifier_report
from .weights import round_to_float16

logger = logging.getLogger(__name__)

STATE_DICT = CLASSIFIER_STATE_DICT


@dataclass(frozen=True)
class ClassifierData:
    """Datasets split (each on its own, then pooled per split) and turned into crop sets."""

    datasets: tuple[Dataset, ...]
    splits: dict[str, tuple[Sample, ...]]
    sets: dict[str, CropSet]
    # what the split did with byte-identical pictures (``pool_sources``); empty when every picture differs
    duplicates: dict = field(default_factory=dict)

    @property
    def dataset(self) -> Dataset:
        """The first (primary) dataset."""
        return self.datasets[0]


Copies = tuple[tuple[Sample, ...], ...]


def is_site_folder(dataset: Dataset) -> bool:
    """Whether ``dataset`` is a site's own folder (the ``labels.csv`` layout, pooled or not) rather than a public set."""
    return dataset.name == LABELS_CSV_LAYOUT or dataset.name.startswith(f"{LABELS_CSV_LAYOUT}:")


def _near_copies(dataset: Dataset, labelled: Sequence[Sample], copies: Copies) -> Copies:
    """For a site's own folder: the sets of pictures that look the same without being byte-identical (resized or saved
    again: ``splits.near_identical_pictures``), named in a WARNING (with their labels where those differ); () for a
    public set, whose split the release records (lesion ids, or none, are its publisher's)."""
    if not is_site_folder(dataset):
        return ()
    byte_sets = [{s.image_id for s in group} for group in copies]
    near = tuple(group for group in near_identical_pictures(labelled)
                 if not any({s.image_id for s in group} <= ids for ids in byte_sets))
    if near:
        def shown(group: Sequence[Sample]) -> str:
            labels = len({s.label for s in group}) > 1
            return " ~ ".join(f"{s.image_id} ({s.code})" if labels else s.image_id for s in group)
        relabel = any(len({s.label for s in group}) > 1 for group in near)
        logger.warning("%s: %d set(s) of files look like one picture resized or saved again (fingerprints at most %d of "
                       "256 bits apart): %s; each set is kept in one split with its lesions%s; give each set one lesion "
                       "id, or remove the copies", dataset.root, len(near), SAME_PICTURE_BITS,
                       shown_names([shown(group) for group in near]),
                       " (some are labelled with different classes: check which label is right)" if relabel else "")
    return near


def source_splits(dataset: Dataset, seed: int) -> tuple[dict[str, tuple[Sample, ...]], Copies, Copies]:
    """Labelled samples split train/val/test (70/15/15) by lesion id where known, stratified by class, byte-identical
    pictures kept in one split with their lesions (``splits.identical_pictures``), with the pictures that look the
    same in a site's own folder (:func:`_near_copies`); and those sets: (splits, byte copies, look-alikes). Copies
    labelled with different classes are refused (DuplicateImageError naming each file and its label)."""
    labelled = tuple(s for s in dataset.samples if s.label is not None)
    if not labelled:
        raise EmptyDatasetError(
            f"dataset {dataset.name!r} at {dataset.root} has no class labels; the classifier needs the HAM10000 "
            "metadata, the ISIC 2019 / ISIC 2018 Task 3 ground truth, the PH2 diagnosis file or the ISIC 2017 Part 3 CSVs"
        )
    copies = identical_pictures(labelled)
    refuse_conflicting_labels(copies, f"dataset {dataset.name!r} at {dataset.root}")
    if copies:
        logger.warning("%s: %d file(s) are byte-identical copies of another file (%s): each picture's copies are kept in "
                       "one split with their lesions, so none is trained on and tested on; remove the copies to count "
                       "each picture once", dataset.root, copies_merged(copies),
                       shown_names([" = ".join(s.image_id for s in group) for group in copies]))
    near = _near_copies(dataset, labelled, copies)
    return split_samples(labelled, SplitConfig(seed=seed), (*copies, *near)), copies, near


def classification_splits(dataset: Dataset, seed: int) -> dict[str, tuple[Sample, ...]]:
    """Labelled samples split train/val/test (70/15/15) by lesion id where known, stratified by class, byte-identical
    pictures in one split (:func:`source_splits`)."""
    return source_splits(dataset, seed)[0]


def official_training(dataset: Dataset) -> dict[str, tuple[Sample, ...]]:
    """The labelled images of a dataset's official Training split, all for training (none for validation or test)."""
    train = tuple(s for s in dataset.splits.get("train", ()) if s.label is not None)
    if not train:
        raise EmptyDatasetError(
            f"training-only source {dataset.name!r} at {dataset.root} has no labelled official Training split; "
            "expected e.g. ISIC-2017_Training_Data/ with ISIC-2017_Training_Part3_GroundTruth.csv, or pass it with "
            "--data to split it train/val/test"
        )
    return {"train": train}


def distinct_sources(datasets: Sequence[Dataset]) -> tuple[Dataset, ...]:
    """``datasets`` with each of several ``labels.csv`` folders (a site's folders per clinic or per year) named after
    its folder (``labels_csv:clinic_a``: ``labels_csv.site_source_name``), its samples' source too, so that they can
    be pooled and each gets its own figures; a single such folder, and every public layout, keeps its name. The same
    folder given twice keeps one name (``check_distinct`` refuses it)."""
    sites = [d for d in datasets if d.name == LABELS_CSV_LAYOUT]
    roots = {d.root.resolve() for d in sites}
    if len(roots) < 2:
        return tuple(datasets)
    parts = 1
    while len({site_source_name(r, parts) for r in roots}) < len(roots) and parts < max(len(r.parts) for r in roots):
        parts += 1

    def renamed(d: Dataset) -> Dataset:
        if d.name != LABELS_CSV_LAYOUT:
            return d
        name = site_source_name(d.root, parts)

        def own(samples: Sequence[Sample]) -> tuple[Sample, ...]:
            return tuple(replace(s, source=name) for s in samples)
        return replace(d, name=name, samples=own(d.samples), splits={k: own(v) for k, v in d.splits.items()})
    out = tuple(renamed(d) for d in datasets)
    logger.info("pooling %d labels.csv folders, each named after its folder: %s", len(roots),
                ", ".join(f"{d.name} ({d.root})" for d in out if d.name.startswith(f"{LABELS_CSV_LAYOUT}:")))
    return out


def check_distinct(sources: Sequence[Dataset]) -> None:
    """Refuse (TrainingConfigError) two classification sources of one name: the same dataset given twice, or two
    folders of one public layout, named with their folders and the fix."""
    names = [d.name for d in sources]
    twice = sorted({n for n in names if names.count(n) > 1})
    if not twice:
        return
    folders = "; ".join(f"{d.name} at {d.root}" for d in sources if d.name in twice)
    raise TrainingConfigError(
        f"each classification source must be a different dataset, got {names} ({folders}); expected each dataset "
        "once: pass a folder once (with --data to split it, or with --train-only to add its official Training split "
        "to training); two folders of one public layout cannot be told apart: merge them into one folder, or give "
        "each a labels.csv (several labels.csv folders are pooled, each named after its folder)")


def _cross_source_copies(parts: Sequence[dict[str, tuple[Sample, ...]]]) -> tuple[set[Sample], Copies]:
    """The samples to leave out because the same bytes are in an earlier source (each source is split on its own, so
    copies in two sources could land in two splits), and the sets of copies that span sources; copies labelled with
    different classes are refused."""
    index = {s: i for i, part in enumerate(parts) for split in SPLITS for s in part.get(split, ())}
    copies = identical_pictures(list(index))
    refuse_conflicting_labels(copies, "the classification sources")
    spanning = tuple(group for group in copies if len({index[s] for s in group}) > 1)
    return _in_later_sources(spanning, index), spanning


def _in_later_sources(sets: Copies, index: Mapping[Sample, int]) -> set[Sample]:
    """The samples of each set of copies that are not in its earliest source (``index``: sample -> source order)."""
    later: set[Sample] = set()
    for group in sets:
        first = min(index[s] for s in group)
        later.update(s for s in group if index[s] != first)
    return later


def pool_sources(split_sources: Sequence[Dataset], train_only: Sequence[Dataset] = (),
                 seed: int = 0) -> tuple[dict[str, tuple[Sample, ...]], dict]:
    """Each of ``split_sources`` split on its own (byte-identical pictures kept in one split: :func:`source_splits`),
    each ``train_only`` source's official Training split added to training, pooled per split; a picture whose bytes an
    earlier source holds too is left out of the later one (a WARNING names them). Also returns what was done with
    copies, for the run's metrics (empty when every picture differs)."""
    check_distinct((*split_sources, *train_only))
    split = [source_splits(d, seed) for d in split_sources]
    parts = [sp for sp, _, _ in split] + [official_training(d) for d in train_only]
    dropped, spanning = _cross_source_copies(parts)
    if dropped:
        listed = [f"{s.image_path} ({s.source})" for s in sorted(dropped, key=lambda s: str(s.image_path))]
        logger.warning("%d picture(s) are byte-identical to a picture of an earlier source and were left out of their "
                       "later source: %s; remove the copies from one folder to silence this", len(dropped),
                       shown_names(listed))
    alike_dropped, alike_spanning = _cross_site_look_alikes(split_sources, parts, dropped)
    # a training-only source's own copies are one picture too (its unit, whole, is kept or left out)
    joined = [(*copies, *look_alikes) for _, copies, look_alikes in split] + \
        [identical_pictures(list(part.get("train", ()))) for part in parts[len(split_sources):]]
    pooled, lesions = _lesions_kept_together(parts, len(split_sources), dropped | alike_dropped, joined,
                                             (*spanning, *alike_spanning))
    within = [group for _, copies, _ in split for group in copies]
    near = [group for _, _, look_alikes in split for group in look_alikes]
    picture = {s: i for i, group in enumerate(within) for s in group}  # a look-alike set counts byte copies once
    if not within and not spanning and not near and not alike_spanning:
        return pooled, lesions
    return pooled, {**lesions,
        "identical_copies_kept_in_one_split": copies_merged(within),
        "identical_copies_left_out": len(dropped),
        "identical_pictures": [[str(s.image_path) for s in group] for group in (*within, *spanning)],
        "look_alikes_kept_in_one_split": sum(len({picture.get(s, s) for s in group}) - 1 for group in near),
        "look_alikes_left_out": len(alike_dropped),
        "look_alike_pictures": [[str(s.image_path) for s in group] for group in (*near, *alike_spanning)],
    }


def _lesions_kept_together(parts: Sequence[dict[str, tuple[Sample, ...]]], split_count: int, left_out: set[Sample],
                           joined: Sequence[Copies] = (), across: Copies = ()) -> tuple[dict[str, tuple[Sample, ...]], dict]:
    """``parts`` (the split sources' splits, then the training-only sources') pooled per split, without ``left_out``,
    each lesion in one split: a lesion id that more than one source holds (a site's folders per year, HAM10000 and
    ISIC 2019) follows its split in the earliest source. A later source's unit (``splits.merged_groups``: a lesion with
    its copies and look-alikes, ``joined[i]`` for source i) moves whole; a training-only source's unit of a lesion validated or
    tested elsewhere is left out, and so is a unit whose lesions earlier sources put in two splits (no split keeps them
    apart). Each source is split on its own, and a lesion's follow-up pictures had been trained on in one folder and
    tested on in another (training input audit, finding 1). A picture left out as a copy (or look-alike) of an earlier
    source's, in ``across``, ties its unit to that picture's split as a shared lesion id does: under another lesion id
    its follow-ups had trained while the lesion was tested (review 17, finding 1). A shared lesion id with two
    diagnoses is named: two clinics' lesions under one number, most likely. Also what was done, for the metrics."""
    first: dict[str, tuple[str, str, str | None]] = {}  # lesion id -> (its split, its earliest source, its class)
    source_of = {s: i for i, part in enumerate(parts) for split in SPLITS for s in part.get(split, ())}
    placed_in: dict[Sample, str] = {}  # each picture placed so far -> its split
    earliest = {s: min(group, key=lambda m: source_of.get(m, len(parts))) for group in across for s in group}
    pooled: dict[str, list[Sample]] = {k: [] for k in SPLITS}
    moved: list[str] = []
    dropped: list[str] = []
    clashes: list[str] = []
    for i, part in enumerate(parts):
        where = {s: split for split in SPLITS for s in part.get(split, ())}
        seen: dict[str, tuple[str, str, str | None]] = {}
        placed: dict[str, list[Sample]] = {k: [] for k in SPLITS}
        # the units its split kept together: a lesion with its copies and look-alikes (as ``split_samples`` groups them)
        for unit in merged_groups(list(where), joined[i] if i < len(joined) else ()).values():
            split = where[unit[0]]
            kept = [s for s in unit if s not in left_out]
            earlier = {lid: first[lid] for lid in {s.lesion_id for s in kept if s.lesion_id} if lid in first}
            clashes += [f"{lid} ({held[2]} in {held[1]}, {s.code} in {s.source})" for lid, held in earlier.items()
                        for s in kept if s.lesion_id == lid and s.code != held[2]][:1]
            targets = {held[0] for held in earlier.values()} | {
                placed_in[earliest[s]] for s in unit if s in earliest and earliest[s] in placed_in and earliest[s] is not s}
            target = targets.pop() if len(targets) == 1 else split
            named = [f"{s.image_id} ({s.source}, lesion {s.lesion_id}"
                     + (f" in {first[s.lesion_id][1]}'s {first[s.lesion_id][0]})" if s.lesion_id in first else ")")
                     for s in kept]
            if len(targets) > 1 or (target != split and i >= split_count):
                dropped += named
                continue
            if target != split:
                moved += named
            placed[target] += kept
            placed_in.update((s, target) for s in kept)
            for s in kept:
                if s.lesion_id:
                    seen.setdefault(s.lesion_id, (target, str(s.source), s.code))
        for lid, held in seen.items():
            first.setdefault(lid, held)
        order = {s: n for n, s in enumerate(where)}
        for split in SPLITS:  # each split in the source's reading order: sources without shared lesions split as before
            pooled[split] += sorted(placed[split], key=order.__getitem__)
    if clashes:
        logger.warning("%d lesion id(s) name lesions of two diagnoses in two sources (%s): two lesions under one id? "
                       "Pooled folders must give one lesion one id and two lesions two (e.g. prefix each clinic's)",
                       len(clashes), shown_names(clashes))
    if not moved and not dropped:
        return {k: tuple(v) for k, v in pooled.items()}, {}
    logger.warning("%d picture(s) show a lesion that an earlier source holds in another split; each lesion stays in one "
                   "split with its copies (%d moved to it: %s%s), so none is trained on and tested on",
                   len(moved) + len(dropped), len(moved), shown_names(moved) if moved else "none",
                   f"; {len(dropped)} left out (of a training-only source, or of lesions held in two splits): "
                   f"{shown_names(dropped)}" if dropped else "")
    return {k: tuple(v) for k, v in pooled.items()}, {"lesion_pictures_moved_to_their_lesions_split": len(moved),
                                                      "lesion_pictures_left_out": len(dropped)}


def _cross_site_look_alikes(split_sources: Sequence[Dataset], parts: Sequence[dict[str, tuple[Sample, ...]]],
                            dropped: set[Sample]) -> tuple[set[Sample], Copies]:
    """Across pooled site folders (each split on its own): the pictures that look like one of an earlier site folder
    (resized or saved again) are left out of their later folder, as byte copies are, and named in a WARNING (a clinic's
    resized copy of another's picture otherwise lands in another split); and the sets that span folders."""
    sites = [i for i, d in enumerate(split_sources) if is_site_folder(d)]
    if len(sites) < 2:
        return set(), ()
    index = {s: i for i in sites for split in SPLITS for s in parts[i].get(split, ()) if s not in dropped}
    spanning = tuple(group for group in near_identical_pictures(list(index)) if len({index[s] for s in group}) > 1)
    left_out = _in_later_sources(spanning, index)
    if left_out:
        relabel = any(len({s.label for s in group}) > 1 for group in spanning)
        logger.warning("%d picture(s) look like a picture of an earlier site folder (resized or saved again: fingerprints "
                       "at most %d of 256 bits apart) and were left out of their later folder: %s%s; remove the copies "
                       "from one folder to silence this", len(left_out), SAME_PICTURE_BITS,
                       shown_names([f"{s.image_path} ({s.source})" for s in sorted(left_out, key=lambda s: str(s.image_path))]),
                       " (some are labelled with different classes there: check which label is right)" if relabel else "")
    return left_out, spanning


def pooled_splits(split_sources: Sequence[Dataset], train_only: Sequence[Dataset] = (),
                  seed: int = 0) -> dict[str, tuple[Sample, ...]]:
    """Each of ``split_sources`` split on its own, each ``train_only`` source's official Training split added
    to training, pooled per split (:func:`pool_sources`)."""
    return pool_sources(split_sources, train_only, seed)[0]


def refuse_shared_ids(sources: Sequence[Dataset]) -> None:
    """Refuse (TrainingConfigError) pooled sources in which one image id names different pictures in two sources: a
    split manifest, ``dermassist evaluate --split`` and ``--predicted-masks`` (one ``<image_id>.png`` per id) know a
    picture by its id, so one would be taken for the other (a training picture scored as test, a crop cut with another's
    mask). One id naming the same bytes in two sources (ISIC 2019 holds HAM10000's pictures under their ids) is one
    picture: the later source's copy is left out (``pool_sources``)."""
    owners: dict[str, list[tuple[Dataset, Sample]]] = {}
    for d in sources:
        for sample in {s.image_id: s for s in d.samples}.values():
            owners.setdefault(sample.image_id, []).append((d, sample))
    shared = sorted(i for i, found in owners.items()
                    if len(found) > 1 and len({file_sha256(s.image_path) for _, s in found}) > 1)
    if shared:
        first = owners[shared[0]]
        rows = any(d.name.startswith(LABELS_CSV_LAYOUT) for d, _ in first)
        raise TrainingConfigError(
            f"{len(shared)} image id(s) name different pictures in two sources ({shown_names(shared)}: "
            f"{' and '.join(f'{s.image_path} of {d.name}' for d, s in first)}), but a picture is known by its id (the "
            "split manifest, `dermassist evaluate --split`, --predicted-masks' <image_id>.png), so one would be taken for "
            "the other; expected each id to name one picture: rename the files of one folder (e.g. prefix them with the "
            f"clinic){' and their rows in its labels.csv' if rows else ''}, then predict its masks again")


def prepare_data(data: Path | Sequence[Path], seed: int, full_image: bool = False, predicted_masks: Path | None = None,
                 progress: bool = True, crop: CropParams = CropParams(), context: bool = False,
                 train_only: Sequence[Path] = ()) -> ClassifierData:
    """Read each dataset, split each by its own lesions and classes, pool the splits and crop them
    (the training split also gets augmentation contexts when ``context``). Each ``train_only`` source adds
    the images of its official Training split to the training split only, so validation and test stay
    what ``data`` alone would give."""
    roots = [Path(data)] if isinstance(data, (str, Path)) else [Path(d) for d in data]
    datasets = distinct_sources([read_dataset(root) for root in (*roots, *train_only)])
    split_sources, extra_sources = datasets[:len(roots)], datasets[len(roots):]
    check_distinct(datasets)
    refuse_shared_ids(datasets)
    # every image decodes, or one error names them all: before the split reads them and the crops are cut
    check_images([s.image_path for d in datasets for s in d.samples], f"--data {' '.join(map(str, (*roots, *train_only)))}")
    splits, duplicates = pool_sources(split_sources, extra_sources, seed)
    for needed in SPLITS:
        if not splits[needed]:
            images = sum(len(d.samples) for d in split_sources)
            lesions = len({s.group for d in split_sources for s in d.samples})
            raise EmptyDatasetError(
                f"split {needed!r} of {roots} is empty: {images} labelled images of {lesions} lesions are too few to split "
                f"by lesion (a class reaches validation and test only with at least {MIN_LESIONS_TO_SPLIT} lesions of its "
                "own); add labelled images of more lesions")
    sets = {k: build_crops(v, full_image, predicted_masks, progress, crop, context=context and k == "train", split=k)
            for k, v in splits.items()}
    for name, crops in sets.items():
        warn_classes_without_images(crops.labels, name)
    return ClassifierData(datasets, splits, sets, duplicates)


def listed_not_read(datasets: Sequence[Dataset]) -> dict[str, list[dict[str, str | None]]]:
    """For a run's metrics: per dataset, each image its labels list that was not read (absent, or on disk in a format
    not accepted: the reader's warnings tell which) with the class its row gives; datasets without any are left out."""
    return {d.name: [{"image": image, "label": CLASS_CODES[d.missing_labels[image]] if image in d.missing_labels else None}
                     for image in d.missing_images] for d in datasets if d.missing_images}


def by_source(model: torch.nn.Module, data: CropSet) -> dict[str, dict]:
    """Test metrics (with melanoma ROC AUC where both classes occur) for each source of a crop set."""
    import numpy as np

    logits = predict_logits(model, data.crops)
    out = {}
    for source in sorted(set(data.sources)):
        keep = np.array([s == source for s in data.sources])
        metrics = classification_metrics(data.labels[keep], logits[keep].argmax(axis=1))
        probs = torch.softmax(torch.from_numpy(logits[keep]), dim=1).numpy()
        out[source] = {**metrics, "images": int(keep.sum()), "melanoma_auc": melanoma_auc(data.labels[keep], probs)}
    return out


def check_out_dir(out_dir: Path, name: str) -> None:
    """Refuse an ``--out`` that is a file; warn, naming them, of the outputs of an earlier run named ``name`` there
    that this run replaces."""
    refuse_file_out(out_dir)
    checkpoint = checkpoint_path(out_dir, name).name  # not a run's output: the training says what becomes of it
    earlier = sorted(p.name for p in Path(out_dir).glob(f"{name}_*") if p.name != checkpoint) \
        if Path(out_dir).is_dir() else []
    if earlier:
        shown = ", ".join(earlier[:6]) + (f" and {len(earlier) - 6} more" if len(earlier) > 6 else "")
        logger.warning("--out %s holds the outputs of an earlier run named %r (%s): this run replaces them; pass another "
                       "--out or --name to keep them", out_dir, name, shown)


def interrupted_files(out_dir: Path, name: str) -> tuple[Path, Path]:
    """Where a run stopped by Ctrl-C keeps what it reached: its weights and a JSON saying what they are. Their names
    are not a finished run's, so nothing that reads a run folder (``--retune``, the release build, ``export``)
    takes them for one."""
    out_dir = Path(out_dir)
    return out_dir / f"{name}{INTERRUPTED}_{STATE_DICT}", out_dir / f"{name}{INTERRUPTED}.json"


def save_interrupted(out_dir: Path, name: str, reached: Reached, config: ClassifierConfig) -> Path | None:
    """Save the weights a run stopped by Ctrl-C reached (its best epoch so far) beside a JSON marking them unfinished,
    each written whole or not at all, and log one line saying where, which epoch and that the run did not finish;
    returns the weights' path (None when no epoch ended). The run's resumable checkpoint (saved as each epoch ends)
    is what ``--resume`` continues from: the line says so."""
    out_dir = Path(out_dir)
    if reached.state is None:
        logger.warning("interrupted in epoch %d of %d, before any epoch ended: the run did not finish and nothing was "
                       "saved (--out %s is as it was); a rerun starts again from epoch 1", reached.epochs_done + 1,
                       reached.epochs, out_dir)
        return None
    weights, marker = interrupted_files(out_dir, name)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = weights.with_name(weights.name + ".partial")
    torch.save(reached.state, partial)
    os.replace(partial, weights)
    which = "the best epoch so far" if reached.best else "the latest epoch (none was past --select-after yet)"
    write_json_atomic(marker, {
        "finished": False, "interrupted_after_epoch": reached.epochs_done, "epochs": reached.epochs,
        "saved_epoch": reached.epoch, "saved_is_best": reached.best, "val": reached.val, "weights": weights.name,
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "checkpoint": checkpoint_path(out_dir, name).name,
        "note": f"interrupted (Ctrl-C or SIGTERM): {which}, not a finished run (no test figures, no tuned values); {RESUME_HINT} "
                f"from epoch {reached.epochs_done + 1} (same --out, --name, flags and data)",
    })
    logger.warning("interrupted after epoch %d of %d: the run did NOT finish; %s (epoch %d, val balanced acc %.3f) is "
                   "saved in %s (marked unfinished in %s), not as a finished run's %s_%s; %s from epoch %d (its "
                   "checkpoint is %s)", reached.epochs_done, reached.epochs, which, reached.epoch,
                   reached.val["balanced_accuracy"], weights, marker.name, name, STATE_DICT, RESUME_HINT,
                   reached.epochs_done + 1, checkpoint_path(out_dir, name))
    return weights


@contextmanager
def staged_outputs(out_dir: Path, name: str) -> Iterator[Path]:
    """A hidden folder in ``out_dir`` for a run's outputs: when the block ends normally they replace an earlier run's
    together (``<name>_metrics.json``, the mark of a finished run, last) and an earlier interrupted run's files and the
    run's resumable checkpoint are removed; when it raises (an error, Ctrl-C) the folder goes and ``out_dir`` keeps the
    earlier run whole (and the checkpoint, for ``--resume``)."""
    stale = (*(p.name for p in interrupted_files(out_dir, name)), checkpoint_path(out_dir, name).name)
    with staged_run_outputs(out_dir, name, f"{name}_metrics.json", stale) as staging:
        yield staging


def run_classifier(data: ClassifierData, out_dir: Path, name: str, config: ClassifierConfig,
                   staging: Path | None = None, resume: bool = False) -> tuple[torch.nn.Module, dict]:
    """Train on prepared data and write ``<name>_metrics.json``, confusion + curve PNGs, the split manifest and the
    state_dict, all after the training (into ``staging`` when given: see :func:`staged_outputs`), so an earlier run in
    ``out_dir`` stays whole until this one has weights; Ctrl-C saves the best epoch reached (:func:`save_interrupted`).
    The training keeps a resumable checkpoint in ``out_dir`` (``<name>_resume.pt``), which ``resume`` continues from;
    a finished run removes it (with ``staging``, once the staged outputs are in place)."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    check_out_dir(out_dir, name)
    checkpoint = Checkpointing(checkpoint_path(out_dir, name), resume)
    model, info = train_classifier(data.sets["train"], data.sets["val"], config,
                                   on_interrupt=lambda reached: save_interrupted(out_dir, name, reached, config),
                                   checkpoint=checkpoint)
    target = Path(staging) if staging is not None else out_dir
    target.mkdir(parents=True, exist_ok=True)
    round_to_float16(model)  # every figure below is measured on the weights the release stores
    torch.save(model.state_dict(), target / f"{name}_{STATE_DICT}")
    write_manifest(data.splits, target / f"{name}_split.json")
    extra = {
        **info,
        "dataset": {d.name: d.report() for d in data.datasets},
        "crops_with_mask": {k: v.with_mask for k, v in data.sets.items()},
        "splits": {k: len(v) for k, v in data.splits.items()},
        **({"duplicates": data.duplicates} if data.duplicates else {}),
        **({"listed_not_read": not_read} if (not_read := listed_not_read(data.datasets)) else {}),
        "test_by_source": by_source(model, data.sets["test"]),
        "val_by_source": by_source(model, data.sets["val"]),
        "seconds": round(time.perf_counter() - start, 1),
    }
    report = write_classifier_report(target, name, model, data.sets["test"], extra, config)
    if staging is None:  # the run's outputs are in place: nothing is left to resume
        checkpoint.path.unlink(missing_ok=True)
    t = report["test"]
    logger.info("%s test: accuracy %.3f macro P %.3f R %.3f F1 %.3f balanced acc %.3f", name, t["accuracy"],
                t["macro_precision"], t["macro_recall"], t["macro_f1"], t["balanced_accuracy"])
    for source, m in report["test_by_source"].items():
        logger.info("%s test on %s (%d images): balanced acc %.3f macro F1 %.3f accuracy %.3f melanoma AUC %s", name,
                    source, m["images"], m["balanced_accuracy"], m["macro_f1"], m["accuracy"], auc_text(m["melanoma_auc"]))
    return model, report


def auc_text(auc: float | None) -> str:
    """A melanoma ROC AUC for a log line: 3 decimals, or why there is none (a source without both classes)."""
    return "n/a (needs melanoma and other images)" if auc is None else f"{auc:.3f}"
