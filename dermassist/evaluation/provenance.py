"""Where the evaluated images come from: the public data set to credit, and which of them the released models were
fitted or tuned on."""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from .config import shown_path

logger = logging.getLogger(__name__)

ATTRIBUTION = {
    "isic2018_task3": "ISIC 2018 Task 3 (Codella et al., arXiv:1902.03368; Tschandl et al., HAM10000, Sci. Data 5, "
                      "180161, 2018), CC BY-NC 4.0",
    "ph2": "PH2 (Mendonca et al., IEEE EMBC 2013), free for research use with this citation",
    "isic2017": "ISIC 2017 Challenge (Codella et al., ISBI 2018), ISIC Archive, CC-0",
    "ham10000": "HAM10000 (Tschandl, Rosendahl, Kittler, Sci. Data 5, 180161, 2018), CC BY-NC-SA 4.0; lesion masks "
                "Tschandl et al., Nat. Med. 2020",
    "isic2019": "ISIC 2019 Challenge (BCN20000: Combalia et al. 2019; HAM10000), CC BY-NC",
}
PUBLIC_ID = re.compile(r"^ISIC_\d{7}$")  # how the ISIC archive names its images (PH2's layout admits only its own)
FITTED_SPLITS = ("train", "val")  # the splits of a release's manifest the model was fitted or tuned on


def attribution(dataset: str, image_ids: Sequence[str]) -> str:
    """The credit line of the public set the images are, or "" for a site's own images in a public set's layout.

    The ISIC layouts are credited only for images named as the ISIC archive names them (``ISIC_<7 digits>``; a
    hospital's ``P001`` in the HAM10000 layout is not HAM10000), in part when only some are; PH2's layout admits
    only its own image names."""
    credit = ATTRIBUTION.get(dataset, "")
    if not credit or dataset == "ph2" or not image_ids:
        return credit
    public = sum(bool(PUBLIC_ID.match(i)) for i in image_ids)
    if public == len(image_ids):
        return credit
    return f"{public} of {len(image_ids)} images are named as in {credit}" if public else ""


def seen_in_training(image_ids: Iterable[str], release: Path) -> list[dict]:
    """Per split manifest of the release in ``release`` (its ``release.json`` names them): the evaluated images the
    model was fitted or tuned on (FITTED_SPLITS), counted per split, and the manifest's other splits. An unreadable
    release or manifest is logged and skipped: the check warns, it never stops an evaluation."""
    from training.release import ReleaseError, read_manifest

    ids = set(image_ids)
    try:
        manifests = read_manifest(release).get("data", {}).get("splits", {})
    except ReleaseError as e:
        logger.warning("no check against the training splits: %s", e)
        return []
    found = []
    for model, relative in sorted(manifests.items()):
        path = Path(release) / relative
        try:
            manifest = json.loads(path.read_text())
            splits = {k: {row["image_id"] for row in manifest.get(k, [])} for k in FITTED_SPLITS}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            logger.warning("no check against the %s split manifest %s: %s", model, path, e)
            continue
        counts = {k: len(ids & v) for k, v in splits.items()}
        if sum(counts.values()):
            held_out = {k: len(ids & {row["image_id"] for row in rows}) for k, rows in manifest.items()
                        if k not in FITTED_SPLITS and isinstance(rows, list)}
            found.append({"model": model, "manifest": shown_path(path), "splits": counts,
                          "images": sorted(ids & set().union(*splits.values())),
                          "unseen_splits": [k for k, n in sorted(held_out.items(), key=lambda kv: -kv[1]) if n]})
    return found


def seen_by_content(samples: Sequence, release: Path, data: Path) -> list[dict]:
    """The evaluated pictures a released model was fitted or tuned on under another name: each sample's picture
    fingerprint (``preprocess.fingerprint``) within SAME_PICTURE_BITS of one in the release's ``seen_pictures.json``,
    with the model, split and training image it matches (pictures matched by their own name are the name check's).
    A release without the file, or a picture that cannot be read, is logged and skipped: the check warns, it never
    stops an evaluation."""
    import numpy as np

    from preprocess.errors import PreprocessError
    from preprocess.fingerprint import SAME_PICTURE_BITS, bits_apart, file_fingerprint, fingerprint_rows
    from training.seen_pictures import SEEN_PICTURES

    from .selection import relative_path

    try:
        recorded = json.loads((Path(release) / SEEN_PICTURES).read_text())["models"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.warning("no check for renamed training pictures: %s cannot be read (%s); the check by name still runs",
                       Path(release) / SEEN_PICTURES, e)
        return []
    known = [(model, split, fingerprint, image_id) for model, splits in recorded.items()
             for split, table in splits.items() for fingerprint, image_id in table.items()]
    if not known:
        return []
    rows = fingerprint_rows([k[2] for k in known])
    found = []
    for sample in samples:
        try:
            distance = bits_apart(rows, file_fingerprint(sample.image_path))
        except (OSError, PreprocessError):
            continue  # the service refuses it by name
        for i in np.flatnonzero(distance <= SAME_PICTURE_BITS):
            model, split, _, image_id = known[i]
            if image_id != sample.image_id:
                found.append({"image": sample.image_id, "path": relative_path(sample.image_path, data), "model": model,
                              "split": split, "as": image_id, "bits": int(distance[i])})
    return found
