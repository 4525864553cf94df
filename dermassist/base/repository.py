"""Where the model repository and its build artifacts live, and how to stage a copy of it."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from preprocess.contract import (
    ALL_MODELS,
    CLASSIFIER_MODEL,
    CROP_MODEL,
    ENSEMBLE_NAME,
    PREPARE_MODEL,
    SEGMENTER_MODEL,
    TRIAGE_MODEL,
)
from preprocess.errors import PreprocessError
from preprocess.params import TUNED_FILENAME, read_tuned, resolve_params

from .errors import RepositoryError
from .paths import SOURCE_REPOSITORY

if TYPE_CHECKING:
    from tritonclient.grpc.model_config_pb2 import ModelConfig

T = TypeVar("T")

SAVEDMODEL_DIRNAME = "model.savedmodel"
KERAS_FILENAME = "model.keras"
TORCHSCRIPT_FILENAME = "model.pt"
LABELS_FILENAME = "labels.txt"
CALIBRATION_FILENAME = "calibration.json"
# Which models a repository serves: the fingerprint of the release `dermassist models` exported, or (beginning with
# IMPORTED) the models put there another way (`dermassist import`, a training stage's --repository).
RELEASE_STAMP = ".release-stamp"
IMPORTED = "imported:"
# The release's name and version (``NAME version V``) beside the stamp, written by the export: what the served answers
# name as their release (``served_release``).
RELEASE_NAME = ".release-name"
UNNAMED = ("unnamed models (no .release-name: exported before release names were recorded, or not by `dermassist "
           "models`; run `dermassist models` to name them)")
# The Python steps whose settings an exported release tunes (each reads its version's tuned.json in initialize).
TUNED_STEPS = (PREPARE_MODEL, CROP_MODEL, TRIAGE_MODEL)
_ARTIFACT_NAMES = {SAVEDMODEL_DIRNAME, KERAS_FILENAME, TORCHSCRIPT_FILENAME, LABELS_FILENAME, TUNED_FILENAME,
                   CALIBRATION_FILENAME, "__pycache__"}


def segmenter_artifact(repository: Path) -> Path:
    """Path of the exported SavedModel inside a model repository."""
    return Path(repository) / SEGMENTER_MODEL / "1" / SAVEDMODEL_DIRNAME


def segmenter_keras_copy(repository: Path) -> Path:
    """Path of the ``.keras`` copy saved beside the SavedModel."""
    return Path(repository) / SEGMENTER_MODEL / "1" / KERAS_FILENAME


def classifier_artifact(repository: Path) -> Path:
    """Path of the exported TorchScript classifier inside a model repository."""
    return Path(repository) / CLASSIFIER_MODEL / "1" / TORCHSCRIPT_FILENAME


def tuned_file(repository: Path, model: str) -> Path:
    """Path of a step's tuned-values artifact (``<model>/1/tuned.json``), read by its ``initialize``."""
    return Path(repository) / model / "1" / TUNED_FILENAME


def labels_file(repository: Path) -> Path:
    """Path of the class labels file (one code per line, contract order)."""
    return Path(repository) / CLASSIFIER_MODEL / LABELS_FILENAME


def read_model_config(path: Path) -> ModelConfig:
    """Parse one Triton ``config.pbtxt`` with Triton's own protobuf (``model_config_pb2.ModelConfig``)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        return text_format.Parse(Path(path).read_text(), model_config_pb2.ModelConfig())
    except (OSError, text_format.ParseError) as e:
        raise RepositoryError(f"cannot read the Triton config {path}: {e}; expected a ModelConfig in protobuf text "
                              f"format: fix the file, or copy it again from {SOURCE_REPOSITORY}") from e


def model_config_path(repository: Path, model: str, config_name: str = "embedded") -> Path:
    """The config a profile gives one model: ``<model>/configs/<config_name>.pbtxt``, else ``<model>/config.pbtxt``."""
    folder = Path(repository) / model
    path = folder / "configs" / f"{config_name}.pbtxt"
    return path if path.is_file() else folder / "config.pbtxt"


def model_parameters(repository: Path, model: str, config_name: str = "embedded") -> dict[str, str]:
    """The ``parameters`` of one model's config (``configs/<config_name>.pbtxt``, else ``config.pbtxt``)."""
    config = read_model_config(model_config_path(repository, model, config_name))
    return {key: value.string_value for key, value in config.parameters.items()}


def step_settings(repository: Path, model: str, cls: type[T], config_name: str = "embedded") -> T:
    """A step's typed settings as its ``initialize`` resolves them: config parameter > tuned.json > default.

    A value ``preprocess`` refuses (a misspelt key or a bad value in tuned.json, a bad config parameter) is a
    RepositoryError naming both files, with ``preprocess``'s message, which names the value's source and the fix."""
    tuned = tuned_file(repository, model)
    config = model_config_path(repository, model, config_name)
    try:
        return resolve_params(cls, model_parameters(repository, model, config_name), read_tuned(str(tuned.parent)), model,
                              tuned_source=str(tuned), config_source=f"the parameters of {config}")
    except PreprocessError as e:
        raise RepositoryError(f"settings of {model} from {config} and {tuned}: {e}") from e


def missing_artifacts(repository: Path) -> list[Path]:
    """Artifacts a servable repository needs that are not there yet."""
    needed = [segmenter_artifact(repository), classifier_artifact(repository), labels_file(repository)]
    return [p for p in needed if not p.exists()]


def serves_imported(repository: Path) -> bool:
    """Whether ``repository`` serves models brought with ``dermassist import`` (its release stamp says so)."""
    stamp = Path(repository) / RELEASE_STAMP
    return stamp.is_file() and stamp.read_text().startswith(IMPORTED)


def missing_tuned_values(repository: Path) -> list[Path]:
    """The tuned-values artifacts an exported release's steps need and its repository lacks ([] for a repository that
    serves no exported release: its steps run on the contract's defaults where a file is absent).

    Without them a release is served on defaults it was not tuned to (REFER at the contract's default threshold, not
    the release's own), and nothing else notices: Triton loads the steps all the same."""
    if not (Path(repository) / RELEASE_STAMP).is_file() or serves_imported(repository):
        return []
    return [path for model in TUNED_STEPS if not (path := tuned_file(repository, model)).is_file()]


def tuned_value_problems(repository: Path) -> list[str]:
    """What keeps a repository's steps from their tuned values: a file an exported release lacks
    (``missing_tuned_values``), one that cannot be read, one naming a value no setting of its step has, or one whose
    value its step refuses (out of range: Triton would fail to load the step)."""
    from preprocess.crop import CropParams
    from preprocess.params import unknown_tuned_values
    from preprocess.quality import QualityLimits
    from preprocess.triage import TriageParams

    problems = [f"it lacks {path}" for path in missing_tuned_values(repository)]
    for model, settings in ((PREPARE_MODEL, QualityLimits), (CROP_MODEL, CropParams), (TRIAGE_MODEL, TriageParams)):
        path = tuned_file(repository, model)
        try:
            tuned = read_tuned(str(path.parent))
        except PreprocessError as e:
            problems.append(str(e))
            continue
        unknown = unknown_tuned_values(settings, tuned)
        if unknown:
            problems.append(f"{path}: {unknown}")
            continue
        try:  # the values alone, as the step resolves them where its config sets none of them
            resolve_params(settings, {}, tuned, model, tuned_source=str(path))
        except PreprocessError as e:
            problems.append(str(e))
    return problems


def require_artifacts(repository: Path, error: type[Exception], alternative: str = "pass --repository") -> None:
    """Raise ``error`` naming every missing build artifact unless ``repository`` is servable."""
    missing = missing_artifacts(repository)
    if not missing:
        return
    if Path(repository).resolve() == SOURCE_REPOSITORY.resolve():
        raise error(f"model repository {repository} lacks {', '.join(map(str, missing))}; "
                    f"run `make models` first (or {alternative})")
    raise error(f"model repository {repository} lacks {', '.join(map(str, missing))}; put models there: "
                f"`dermassist models --repository {repository}` (the release's), then `dermassist import ... --repository "
                f"{repository}` for your own (or {alternative})")


def require_servable(repository: Path, error: type[Exception]) -> None:
    """Raise ``error`` unless ``repository`` holds the ensemble and every model it runs, as they were written: a folder
    that is none, or whose models are missing, would start a server that stays not ready until stopped; a weights file
    damaged or replaced since it was written (its SEAL_FILE says) would be served, its answers changed, under the
    release's name."""
    if not (Path(repository) / ENSEMBLE_NAME / "config.pbtxt").is_file():
        raise error(f"{repository} is not a DermAssist model repository (it has no {ENSEMBLE_NAME}/config.pbtxt); pass "
                    "--repository the folder that `make models` or `dermassist models --repository DIR` filled")
    require_artifacts(repository, error)
    problems = seal_problems(repository)
    if problems:
        raise error(f"the model files of {repository} are not those written there ({SEAL_FILE}): "
                    f"{'; '.join(problems[:5])}{f'; and {len(problems) - 5} more' if len(problems) > 5 else ''}; a copy "
                    "cut short or damaged, or models copied over others, would be served as the models named: export "
                    f"them again (`dermassist models --repository {repository} --force`, or the `dermassist import` "
                    "that brought them), or copy the whole folder again, its dot files included")


#: The SHA-256 of every artifact of a repository (weights, tuned values, labels, calibration), in ``sha256sum``'s format
#: (``sha256sum -c`` checks it), written by whatever wrote the models (``seal``) and checked before they are served.
SEAL_FILE = ".artifacts.sha256"


def artifact_files(repository: Path) -> list[str]:
    """The artifacts of ``repository``'s model folders (files of _ARTIFACT_NAMES, a SavedModel's included), as paths
    relative to it, in a stable order."""
    root = Path(repository)
    found = []
    for model in ALL_MODELS:
        for path in _served_files(root / model):
            relative = path.relative_to(root)
            if any(part in _ARTIFACT_NAMES and part != "__pycache__" for part in relative.parts):
                found.append(relative.as_posix())
    return sorted(found)


def _digest_file(digest: Any, path: Path) -> None:
    """Feed ``path``'s bytes to ``digest`` (a hashlib object), a MiB at a time."""
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex (read in 1 MiB blocks)."""
    import hashlib

    digest = hashlib.sha256()
    _digest_file(digest, path)
    return digest.hexdigest()


def seal(repository: Path) -> Path:
    """Write SEAL_FILE: the SHA-256 of every artifact of ``repository`` as it is now (the last act of an export)."""
    path = Path(repository) / SEAL_FILE
    lines = [f"{file_sha256(Path(repository) / name)}  {name}\n" for name in artifact_files(repository)]
    path.write_text("".join(lines))
    return path


def seal_problems(repository: Path) -> list[str] | None:
    """What differs between ``repository``'s artifacts and its SEAL_FILE (a file missing, changed, or not written
    with the others); [] when nothing does, None when there is no seal (models written before seals, or by hand)."""
    path = Path(repository) / SEAL_FILE
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return None
    sealed = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if name:
            sealed[name] = digest
    present = artifact_files(repository)
    problems = [f"{name} is missing" for name in sorted(set(sealed) - set(present))]
    problems += [f"{name} was not written with the others" for name in present if name not in sealed]
    problems += [f"{name} has changed" for name in present
                 if name in sealed and file_sha256(Path(repository) / name) != sealed[name]]
    return problems


def stage_repository(destination: Path, source: Path = SOURCE_REPOSITORY) -> Path:
    """Copy the repository's source files (configs, ``model.py``) without any build artifact."""
    destination = Path(destination)
    for model in ALL_MODELS:
        shutil.copytree(
            Path(source) / model,
            destination / model,
            ignore=lambda _dir, names: [n for n in names if n in _ARTIFACT_NAMES],
            dirs_exist_ok=True,
        )
    return destination


#: The first word of an import's origin, by the model it brought (``keras ...``, ``classifier stage ...``).
_ORIGIN_MODELS = {"keras": "segmenter", "segmenter": "segmenter", "torch": "classifier", "classifier": "classifier"}
MODELS_SERVED = ("segmenter", "classifier")
OF_RELEASE = "of release"
# Beside an ``imported:`` stamp: each model's origin, {"origin": ...} or {"release": "NAME version V"} for one kept from a
# release, as JSON (the stamp's one line is for people and answers; a path may hold any character).
ORIGINS_FILE = ".release-origins.json"


def _origins(repository: Path) -> dict[str, dict[str, str]]:
    """Each model's recorded origin in a repository of imported models ({} for a release's): its ORIGINS_FILE, else
    (a stamp written before it) the stamp's entries."""
    stamp = Path(repository) / RELEASE_STAMP
    text = stamp.read_text(errors="replace").strip() if stamp.is_file() else ""
    if not text.startswith(IMPORTED):
        return {}
    try:
        recorded = json.loads((Path(repository) / ORIGINS_FILE).read_text())
    except (OSError, ValueError):
        recorded = None
    if isinstance(recorded, dict):
        return {m: {k: str(v) for k, v in recorded[m].items() if k in ("origin", "release")}
                for m in MODELS_SERVED if isinstance(recorded.get(m), dict)}
    origins: dict[str, dict[str, str]] = {}
    for entry in (e.strip() for e in text.removeprefix(IMPORTED).split(";")):
        model = _ORIGIN_MODELS.get(entry.split(" ", 1)[0])
        if model is not None:
            kept = entry.removeprefix(f"{model} {OF_RELEASE} ")
            origins[model] = {"release": kept} if kept != entry else {"origin": entry}
    return origins


def _shown(model: str, origin: dict[str, str]) -> str:
    return f"{model} {OF_RELEASE} {origin['release']}" if "release" in origin else origin.get("origin", model)


def imported_models(repository: Path) -> dict[str, str]:
    """What a repository's stamp says of each model not the release's: model -> origin (``keras NAME
    (sha256:16 hex)``, ``classifier stage RUN``); a model kept from a release is ``<model> of release NAME version V``.
    {} for a release's repository."""
    return {model: _shown(model, origin) for model, origin in _origins(repository).items()}


def mark_not_release(repository: Path, origin: str) -> Path:
    """Stamp a repository as serving models that are not an exported release (``origin`` says what: its first word
    names the model, ``keras``/``segmenter`` or ``torch``/``classifier``), so `dermassist models` leaves them in place
    instead of reporting the release's figures for them. The stamp names every model's origin: the other model's from
    an earlier import, or the release it was kept from (``classifier of release NAME version V``), and ORIGINS_FILE
    records them."""
    path = Path(repository) / RELEASE_STAMP
    path.parent.mkdir(parents=True, exist_ok=True)
    origins = _origins(repository)
    name = Path(repository) / RELEASE_NAME
    if not origins and name.is_file():  # a release's repository: the model not replaced stays the release's
        release = name.read_text(errors="replace").strip()
        origins = {model: {"release": release} for model in MODELS_SERVED}
    model = _ORIGIN_MODELS.get(origin.split(" ", 1)[0])
    origins = {} if model is None else {**origins, model: {"origin": origin}}
    ordered = [_shown(m, origins[m]) for m in MODELS_SERVED if m in origins] or [origin]
    (Path(repository) / ORIGINS_FILE).write_text(json.dumps(origins, indent=1))
    path.write_text(f"{IMPORTED} {'; '.join(ordered)}\n")
    name.unlink(missing_ok=True)  # the release's name no longer says what is served
    return path


def release_models(repository: Path) -> tuple[str, ...]:
    """The models a repository serves as its release exported them: both for a release's repository, none for a
    repository of imported models but those its stamp says were kept from a release."""
    if not (Path(repository) / RELEASE_STAMP).is_file() or not serves_imported(repository):
        return MODELS_SERVED
    origins = _origins(repository)
    return tuple(m for m in MODELS_SERVED if "release" in origins.get(m, {}))


def name_release(repository: Path, name: object, version: object) -> None:
    """Record the exported release's name and version in ``repository`` (``served_release`` reads it); a repository
    that already names it is left untouched (it may be read-only)."""
    path = Path(repository) / RELEASE_NAME
    text = f"{name} version {version}\n"
    try:
        if path.read_text(errors="replace") == text:
            return
    except OSError:
        pass
    path.write_text(text)


def served_release(repository: Path) -> str:
    """What the served answers name as their release: the exported release's ``NAME version V``, the origin of
    imported models (``imported: ...``), or UNNAMED."""
    for name in (RELEASE_STAMP, RELEASE_NAME):
        try:
            text = (Path(repository) / name).read_text(errors="replace").strip()
        except OSError:
            continue
        if name == RELEASE_NAME or text.startswith(IMPORTED):
            return text
    return UNNAMED


def served_identity(repository: Path) -> tuple[str, str]:
    """(``served_release``, ``served_build``) of ``repository``: what every served answer names as its models."""
    return served_release(repository), served_build(repository)


#: The modules of dermassist.base whose code the served steps run on their models (``served_build`` covers them).
STEP_CODE = ("frameworks.py", "steps.py")


def served_build(repository: Path) -> str:
    """``sha256:`` and 16 hex digits of the served files that decide an answer: every file of the repository's model
    folders (weights, tuned values, labels, configs, the Python steps), of the ``preprocess`` package those steps
    import and of the base modules that run their models (STEP_CODE), by relative path and content (caches left out).
    Two builds with one digest serve the same models, but two exports of one release differ (TorchScript and Keras files
    are not byte-reproducible: a serialization id, dates, generated names); the installed libraries (OpenCV, Pillow,
    TensorFlow, PyTorch) and the CPU or GPU profile are not in it."""
    import hashlib

    import preprocess

    digest = hashlib.sha256()
    # (prefix, the folder names are taken relative to, its files)
    here = Path(__file__).resolve().parent  # the base modules whose code runs the steps' models: calls and loaders
    sources = [(f"{model}/", Path(repository) / model, _served_files(Path(repository) / model)) for model in ALL_MODELS]
    preprocess_root = Path(preprocess.__file__).resolve().parent
    sources.append(("preprocess/", preprocess_root, _served_files(preprocess_root)))
    sources.append(("dermassist/base/", here, [here / name for name in STEP_CODE]))
    for prefix, root, paths in sources:
        for path in paths:
            name = os.fsencode(path.relative_to(root).as_posix())
            digest.update(prefix.encode() + name + b"\0" + str(path.stat().st_size).encode() + b"\0")
            _digest_file(digest, path)
    return f"sha256:{digest.hexdigest()[:16]}"


def _served_files(root: Path) -> list[Path]:
    """Every file under ``root``, through folder links too (a version folder linked to another's weights), each
    folder once, caches left out, in a stable order."""
    found: list[Path] = []
    seen: set[str] = set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        found += [Path(folder) / n for n in sorted(names) if (Path(folder) / n).is_file()]
    return sorted(found)


FileMarks = dict[str, tuple[int, int, int]]


def repository_marks(repository: Path) -> FileMarks:
    """Each file of ``repository``'s model folders (relative path) with its inode, size and modification time: what
    tells, without reading them, whether the files are still those Triton loaded."""
    marks = {}
    for model in ALL_MODELS:
        for path in _served_files(Path(repository) / model):
            try:
                status = path.stat()
            except OSError:
                continue
            marks[path.relative_to(repository).as_posix()] = (status.st_ino, status.st_size, status.st_mtime_ns)
    return marks


def changed_files(loaded: FileMarks, now: FileMarks) -> list[str]:
    """The files changed, added or removed between two ``repository_marks``, sorted."""
    return sorted(name for name in set(loaded) | set(now) if loaded.get(name) != now.get(name))


def served_models(repository: Path) -> str:
    """Which models a repository serves, for a report's header: its release stamp."""
    try:
        stamp = (Path(repository) / RELEASE_STAMP).read_text().strip()
    except OSError:
        return f"{repository} (no {RELEASE_STAMP}: models not from `dermassist models`)"
    return f"{repository} ({RELEASE_STAMP} {stamp})"
