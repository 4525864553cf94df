"""The fingerprints of the pictures a release's models were fitted or tuned on (``preprocess.fingerprint``), written
beside the release as ``seen_pictures.json``: a site validating on its own export can then be told that some of its
pictures are ones the models learnt from, renamed (a hospital that contributed to a public archive exports them under
its own accession numbers)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from dermassist.base.paths import PROJECT_ROOT
from preprocess.errors import PreprocessError
from preprocess.fingerprint import SAME_PICTURE_BITS, file_fingerprint

from .progress import ProgressLog
from .release import read_manifest, write_json_atomic

logger = logging.getLogger(__name__)

SEEN_PICTURES = "seen_pictures.json"
FITTED_SPLITS = ("train", "val")  # the splits of a model's manifest it was fitted (train) or tuned (val) on


def _picture_path(recorded: str) -> Path:
    """A manifest's image path: as recorded, relative to the project where the build ran from it."""
    path = Path(recorded)
    return path if path.is_absolute() else PROJECT_ROOT / path


def write_seen_pictures(release: Path) -> Path:
    """Fingerprint each picture of the train and val splits of every split manifest ``release`` records, read from the
    paths the manifests hold, into ``release/seen_pictures.json`` ({model: {split: {fingerprint: image id}}}); a
    picture that cannot be read here is counted and logged, and the file says how many."""
    release = Path(release)
    manifests = read_manifest(release).get("data", {}).get("splits", {})
    models: dict[str, dict[str, dict[str, str]]] = {}
    unread: list[str] = []
    for model, relative in sorted(manifests.items()):
        manifest = json.loads((release / relative).read_text())
        rows = [(split, row) for split in FITTED_SPLITS for row in manifest.get(split, [])]
        progress = ProgressLog(logger, f"fingerprinting the pictures the {model} learnt from", len(rows))
        for split, row in rows:
            try:
                fingerprint = file_fingerprint(_picture_path(row["image"]))
            except (OSError, PreprocessError) as e:
                unread.append(f"{row['image']} ({e})")
            else:
                models.setdefault(model, {}).setdefault(split, {})[fingerprint] = row["image_id"]
            progress.advance(1)
    if unread:
        logger.warning("%d picture(s) of the release's training splits could not be read, so renamed copies of them "
                       "cannot be recognised: %s", len(unread), "; ".join(unread[:3]))
    target = release / SEEN_PICTURES
    write_json_atomic(target, {"same_picture_bits": SAME_PICTURE_BITS, "unread": len(unread), "models": models})
    return target
