"""The released models: one folder with float16 weights, ``release.json`` (recipe, tuned values, figures),
split manifests, reports and the model card. Framework-free: the stages fill it, ``make models`` reads it."""
from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from dermassist.base.paths import PROJECT_ROOT

from .errors import TrainingError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from preprocess.triage import TriageParams

T = TypeVar("T", bound="DataclassInstance")  # a step's frozen settings

logger = logging.getLogger(__name__)

RELEASE_DIR = PROJECT_ROOT / "training" / "release"
MODEL_CARD = "MODEL_CARD.md"  # written by training.model_card from release.json
MANIFEST = "release.json"
MANIFEST_MODE = 0o644  # a new manifest is readable by the serving user, like the weights beside it
SEGMENTER_WEIGHTS = "segmenter.npz"
CLASSIFIER_WEIGHTS = "classifier.npz"
SECTIONS = ("segmenter", "classifier", "triage", "quality")


class ReleaseError(TrainingError):
    """A release folder is missing, incomplete or unreadable."""


def read_manifest(folder: Path = RELEASE_DIR) -> dict:
    """``release.json`` of a release folder as it stands (a build in progress may lack sections)."""
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise ReleaseError(f"release manifest {path} cannot be read ({e.strerror}); expected a release folder made by "
                           "`dermassist release` (the shipped one is training/release/)") from e
    except ValueError as e:
        raise ReleaseError(f"release manifest {path} is not valid JSON ({e}); restore it from git") from e


def read_release(folder: Path = RELEASE_DIR) -> dict:
    """``release.json`` of a release folder, after checking every section and weight file is there."""
    folder = Path(folder)
    release = read_manifest(folder)
    missing = [s for s in SECTIONS if s not in release]
    weights = [folder / SEGMENTER_WEIGHTS, folder / CLASSIFIER_WEIGHTS]
    absent = [w.name for w in weights if not w.is_file()]
    if missing or absent:
        raise ReleaseError(f"release {folder} is incomplete: sections {missing} and files {absent} are missing; "
                           "rebuild it with `dermassist release` or restore it from git")
    return release


def classifier_colour_constancy(release: Mapping) -> float:
    """The shades-of-grey norm a release's classifier was trained with, which ``lesion_crop`` must serve its crops
    with (0, the camera's colours, for a release that records none, as every release before the setting existed)."""
    from preprocess.contract import DEFAULT_COLOUR_CONSTANCY

    return float(release.get("classifier", {}).get("colour_constancy", DEFAULT_COLOUR_CONSTANCY))


# Triage values a release may lack because it was built before they were recorded; it was served at their defaults.
TRIAGE_ADDED_LATER = ("other_lesion_min_fraction", "other_lesion_min_share")


def recorded_triage(release: Mapping) -> TriageParams:
    """The triage values a release records (``recorded_values``); one added after the release was built is taken at
    the default it was served with then (``TRIAGE_ADDED_LATER``), so an older release exports and serves as before."""
    from preprocess.triage import TriageParams

    values = release["triage"]["values"]
    defaults = TriageParams()
    filled = {**{name: getattr(defaults, name) for name in TRIAGE_ADDED_LATER}, **values} if isinstance(values, Mapping) \
        else values
    return recorded_values(TriageParams, filled, "triage.values")


def recipe_flag(args: Sequence[str], flag: str) -> str | None:
    """The value the last ``flag value`` or ``flag=value`` in a recipe's stage arguments gives ``flag``, or None."""
    given = [args[i + 1] if a == flag else a.split("=", 1)[1] for i, a in enumerate(args)
             if (a == flag and i + 1 < len(args)) or a.startswith(f"{flag}=")]
    return given[-1] if given else None


def update_release(folder: Path, sections: Mapping[str, object], new_weights: bool = False) -> Path:
    """Merge top-level sections into ``release.json`` (created when absent), written atomically.

    ``new_weights``: the sections come with weights the release's served figures were not measured on, so its
    ``evaluation`` section and model card go (`dermassist release --evaluate-only` measures and writes them again).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST
    release = json.loads(path.read_text()) if path.is_file() else {}
    release.update(sections)
    if new_weights and (release.pop("evaluation", None) is not None or (folder / MODEL_CARD).is_file()):
        (folder / MODEL_CARD).unlink(missing_ok=True)
        logger.warning("%s: its served figures and model card described the weights replaced now; removed (run "
                       "`dermassist release --evaluate-only --out %s` to measure and write them again)", folder, folder)
    return write_json_atomic(path, release)


def write_json_atomic(path: Path, data: object, mode: int = MANIFEST_MODE) -> Path:
    """Write ``data`` as JSON to ``path`` through a temporary file in the same folder and ``os.replace``, so an
    interrupted write leaves the old file or the new one, never a cut one; an existing file keeps its mode."""
    path = Path(path)
    mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else mode
    f = tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False)
    try:
        with f:
            json.dump(data, f, indent=1, sort_keys=False)
            f.write("\n")
        os.chmod(f.name, mode)  # the temporary file is private (0600); the file keeps the mode it had
        os.replace(f.name, path)
    except BaseException:
        Path(f.name).unlink(missing_ok=True)  # a write cut short (disk full, interrupted) leaves no stray file
        raise
    return path


def to_float16(arrays: Mapping[str, np.ndarray], keep: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Floating arrays as float16 (except the names in ``keep``); integer arrays unchanged."""
    return {k: (v.astype(np.float16) if np.issubdtype(v.dtype, np.floating) and k not in keep else v)
            for k, v in arrays.items()}


def save_weights(path: Path, arrays: Mapping[str, np.ndarray], keep: tuple[str, ...] = ()) -> Path:
    """Write arrays to a compressed ``.npz``, floats as float16 unless kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")  # an interrupted write never leaves a cut file under the name
    with open(partial, "wb") as f:
        np.savez_compressed(f, **to_float16(arrays, keep))
    os.replace(partial, path)
    return path


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """Arrays of a weights ``.npz`` (float16 stays float16; the caller casts)."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ReleaseError(f"weights file {path} cannot be read ({type(e).__name__}: {e}); expected the .npz a build "
                           "writes: restore the release from git or build it again") from e


def recorded_values(cls: type[T], values: Mapping, where: str) -> T:
    """The tuned values a release records for one step (``cls``: its frozen settings), every field present, none
    unknown, each of its field's type and validated by ``cls`` itself, or ReleaseError naming what is wrong."""
    import dataclasses
    import math

    from preprocess.errors import PreprocessError

    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    missing, unknown = sorted(set(fields) - set(values)), sorted(set(values) - set(fields))
    if missing or unknown:
        raise ReleaseError(f"{where} in release.json must hold exactly {', '.join(fields)}; missing {missing or 'none'}, "
                           f"unknown {unknown or 'none'}: restore release.json from git or rebuild the release")
    for name, kind in fields.items():
        value = values[name]
        wanted_bool = kind in (bool, "bool")
        good = isinstance(value, bool) if wanted_bool else (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))
        if not good:
            raise ReleaseError(f"{where}.{name} in release.json must be {'true or false' if wanted_bool else 'a finite number'}, "
                               f"got {value!r}: restore release.json from git or rebuild the release")
    try:
        return cls(**values)
    except PreprocessError as e:
        raise ReleaseError(f"{where} in release.json: {e}; restore release.json from git or rebuild the release") from e
