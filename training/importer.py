"""Bring your own models: a full Keras ``.keras`` segmenter and a torchvision ResNet18 state_dict.

Each export runs in its own subprocess (``python -m training.importer keras|torch FILE REPO``) so
TensorFlow and PyTorch never share a process; errors come back as ImportModelError.
"""
from __future__ import annotations

import pickle
import re
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .child import child_main, run_child
from .errors import ImportModelError
from .run_folder import CLASSIFIER_STATE_DICT, INTERRUPTED

DDP_PREFIX = "module."  # what torch.nn.parallel.DistributedDataParallel / DataParallel put before every key
# Where training scripts commonly keep the weights inside a checkpoint dict.
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "ema_state_dict")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def check_file(path: Path, what: str, suffixes: tuple[str, ...]) -> Path:
    """Raise ImportModelError unless ``path`` is an existing file with one of the suffixes."""
    path = Path(path)
    if not path.is_file():
        raise ImportModelError(f"{what} file {path} does not exist; expected a {'/'.join(suffixes)} file")
    if path.suffix not in suffixes:
        raise ImportModelError(f"{what} file {path} must end in {' or '.join(suffixes)}, got {path.suffix or 'no suffix'!r}")
    return path


def check_keras_file(path: Path) -> None:
    """Raise ImportModelError unless ``path`` is a zip archive, as every ``.keras`` file ``model.save`` writes is."""
    if zipfile.is_zipfile(path):
        return
    with open(path, "rb") as f:
        head = f.read(8)
    found = "an HDF5 file (the legacy .h5 format): load it with keras and save it as .keras" \
        if head == b"\x89HDF\r\n\x1a\n" else "not a Keras file (a .keras file is a zip archive)"
    raise ImportModelError(f"Keras model {path} cannot be loaded: it is {found}; expected a full model saved with "
                           "model.save('segmenter.keras')")


def import_keras(path: Path, repository: Path) -> str:
    """Load a full Keras model file and export it as the served segmenter (TensorFlow process)."""
    check_keras_file(path)
    import keras

    from .export.segmenter import export_segmenter
    from .segmenter.losses import CUSTOM_OBJECTS

    try:
        model = keras.models.load_model(str(path), custom_objects=CUSTOM_OBJECTS, compile=False)
    except (ValueError, OSError, TypeError, KeyError) as e:
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ImportModelError(
            f"Keras model {path} cannot be loaded ({reason}); expected a full model saved with model.save()"
        ) from e
    result = export_segmenter(model, repository)
    return f"segmenter {path} -> {result.savedmodel} (parity {result.max_abs_diff:.1e})"


def import_torch(path: Path, repository: Path) -> str:
    """Load a torchvision ResNet18 state_dict with an 8-class fc and export it (PyTorch process)."""
    import torch
    from torchvision.models import resnet18

    from preprocess.contract import CLASS_CODES, NUM_CLASSES

    from .export.classifier import export_classifier

    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as e:
        raise ImportModelError(load_failure(path, e)) from e
    state, note = resnet_state(path, loaded)
    classes = int(state["fc.weight"].shape[0])
    if classes != NUM_CLASSES:
        raise ImportModelError(
            f"{path} has a {classes}-class fc layer; the served classifier needs {NUM_CLASSES} classes in the order "
            f"{', '.join(CLASS_CODES)}: replace model.fc with nn.Linear(512, {NUM_CLASSES}) and fine-tune"
        )
    blocks = resnet_blocks(state)
    if blocks != RESNET18_BLOCKS:
        known: dict[tuple[int, ...], str] = {(3, 4, 6, 3): "ResNet34 or ResNet50", (3, 4, 23, 3): "ResNet101",
                                             (3, 8, 36, 3): "ResNet152"}
        raise ImportModelError(f"{path} is not a torchvision ResNet18 state_dict: its stages hold {list(blocks)} blocks "
                               f"(a {known.get(blocks, 'network of another depth')}); expected {list(RESNET18_BLOCKS)}: "
                               "train or fine-tune torchvision's resnet18 and save its state_dict")
    model = resnet18(weights=None, num_classes=NUM_CLASSES)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0:3]
        raise ImportModelError(f"{path} is not a torchvision ResNet18 state_dict: {' '.join(first)[:400]}") from e
    result = export_classifier(model.eval(), repository)
    return f"classifier {path} -> {result.torchscript} (parity {result.max_abs_diff:.1e}){note}"


RESNET18_BLOCKS = (2, 2, 2, 2)
_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


def resnet_blocks(state: Mapping[str, Any]) -> tuple[int, ...]:
    """The residual blocks in each of a torchvision ResNet state_dict's four stages (``layerN.M.`` keys)."""
    counts = [0, 0, 0, 0]
    for key in state:
        found = _BLOCK_KEY.match(str(key))
        if found:
            stage, block = int(found.group(1)) - 1, int(found.group(2))
            counts[stage] = max(counts[stage], block + 1)
    return tuple(counts)


def load_failure(path: Path, error: Exception) -> str:
    """A short message for a file ``torch.load(weights_only=True)`` refuses: a whole pickled model is named as such
    (it is never unpickled: that would run the file's code), anything else by the first line of torch's reason."""
    text = _ANSI.sub("", str(error))
    pickled = _UNSUPPORTED_GLOBAL.search(text)
    if pickled:
        return (f"PyTorch file {path} holds a pickled {pickled.group(1)} object, which a state_dict does not "
                "(torch.save(model) saves the whole model, a checkpoint may carry other objects), and it is not "
                "unpickled (that would run code from the file); expected the weights alone: "
                "torch.save(model.state_dict(), 'resnet18.pt')")
    _, unpickler, detail = text.partition("WeightsUnpickler error:")
    lines = [ln.strip() for ln in (detail if unpickler else text).splitlines() if ln.strip()]
    reason = _first_sentence(lines[0]) if lines else type(error).__name__
    return f"PyTorch file {path} cannot be loaded ({reason}); expected torch.save(model.state_dict())"


def _first_sentence(text: str, limit: int = 200) -> str:
    """``text`` up to its first sentence's end, or cut at a word within ``limit`` characters with an ellipsis."""
    end = text.find(". ")
    if 0 < end < limit:
        return text[:end]
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def resnet_state(path: Path, loaded: Any) -> tuple[dict, str]:
    """The state_dict in what ``torch.load`` gave, and a note for the import's message: a DataParallel /
    DistributedDataParallel one loses its ``module.`` prefix (the same weights); a training checkpoint, or anything
    else without ``fc.weight``, is refused with what to save instead."""
    if not isinstance(loaded, Mapping):
        raise ImportModelError(f"{path} holds a {type(loaded).__name__}, not a state_dict; expected "
                               "torch.save(model.state_dict(), 'resnet18.pt')")
    keys = [str(k) for k in loaded]
    state, note = dict(loaded), ""
    if keys and all(k.startswith(DDP_PREFIX) for k in keys):
        state = {k[len(DDP_PREFIX):]: v for k, v in state.items()}
        note = f" (the '{DDP_PREFIX}' prefix DataParallel gives every key was stripped)"
    if "fc.weight" in state:
        return state, note
    nested = [k for k in CHECKPOINT_KEYS if isinstance(loaded.get(k), Mapping)]
    if nested:
        raise ImportModelError(
            f"{path} is a training checkpoint (keys {', '.join(map(repr, keys[:6]))}), not a state_dict; its weights are "
            f"under {nested[0]!r}: save them alone with torch.save(checkpoint[{nested[0]!r}], 'resnet18.pt') and import "
            "that file")
    raise ImportModelError(f"{path} is not a torchvision ResNet18 state_dict (no 'fc.weight' among its keys "
                           f"{', '.join(map(repr, keys[:6]))}{', ...' if len(keys) > 6 else ''}); expected "
                           "torch.save(model.state_dict(), 'resnet18.pt') of a torchvision resnet18")


#: What a training run writes beside its model file: the segmenter's and the classifier's figures and settings.
SEGMENTER_METRICS, CLASSIFIER_METRICS = "segmenter_metrics.json", "classifier_metrics.json"
# A classifier run's weights end in _resnet18.pt (run_folder.CLASSIFIER_STATE_DICT); an interrupted run's files carry
# run_folder.INTERRUPTED (the segmenter's: segmenter_interrupted.keras and .json).
CLASSIFIER_WEIGHTS_SUFFIX = "_" + Path(CLASSIFIER_STATE_DICT).stem


def classifier_metrics_file(torch_file: Path) -> Path:
    """The metrics file of the run that wrote ``torch_file``: NAME_metrics.json for NAME_resnet18.pt (a run's
    ``--name``; a finished run may be named ``x_interrupted``: its own metrics file decides), else the default run's
    classifier_metrics.json beside it."""
    path = Path(torch_file)
    if path.stem.endswith(CLASSIFIER_WEIGHTS_SUFFIX):
        own = path.with_name(f"{path.stem.removesuffix(CLASSIFIER_WEIGHTS_SUFFIX)}_metrics.json")
        if own.is_file() or not path.stem.endswith(INTERRUPTED + CLASSIFIER_WEIGHTS_SUFFIX):
            return own
    return path.with_name(CLASSIFIER_METRICS)


def unfinished_run_problem(model_file: Path) -> str | None:
    """Why ``model_file`` is not a finished run's model (it is the best epoch an interrupted run saved, and its note
    beside it says the run did not finish), else None."""
    import json

    path = Path(model_file)
    stem = path.stem.removesuffix(CLASSIFIER_WEIGHTS_SUFFIX)
    if not stem.endswith(INTERRUPTED):
        return None
    note = path.with_name(f"{stem}.json")
    try:
        record = json.loads(note.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("finished") is not False:
        return None
    run = stem.removesuffix(INTERRUPTED)
    finished = f"{run}{CLASSIFIER_WEIGHTS_SUFFIX}.pt" if path.suffix in (".pt", ".pth") else f"{run}{path.suffix}"
    return (f"{path} is the best epoch ({record.get('saved_epoch')}) of a run interrupted after epoch "
            f"{record.get('interrupted_after_epoch')} of {record.get('epochs')} ({note.name} beside it): not a finished "
            f"run's model (no test figures, no tuned values); finish the run (rerun its command with --resume) and import "
            f"{finished}, or copy the file elsewhere under another name to import it as it is")


def _run_metrics(path: Path, name: str) -> dict | None:
    """The metrics a training run wrote beside ``path`` (``name``), or None where there are none; an unreadable file
    is refused by name, as its tuned values would otherwise be dropped without a word."""
    import json

    metrics = Path(path).parent / name
    if not metrics.is_file():
        return None
    try:
        data = json.loads(metrics.read_text())
    except (OSError, ValueError) as e:
        raise ImportModelError(f"{metrics} beside {path} cannot be read ({e}); expected the JSON the training run wrote: "
                               "restore it, or move the model file to a folder without it to import it untuned") from e
    if not isinstance(data, dict):
        raise ImportModelError(f"{metrics} beside {path} holds {type(data).__name__}; expected the training run's JSON object")
    return data


def tuned_mask_threshold(keras: Path) -> float | None:
    """The mask threshold the segmenter's training run tuned on validation (its ``segmenter_metrics.json`` beside the
    file), or None without one."""
    metrics = _run_metrics(keras, SEGMENTER_METRICS)
    value = None if metrics is None else metrics.get("threshold")
    if value is None:
        return None
    if not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ImportModelError(f"{Path(keras).parent / SEGMENTER_METRICS} gives the mask threshold {value!r}; expected a "
                               "number in (0, 1), as the segmenter's training run writes it")
    return float(value)


WHOLE_PICTURES_FIX = ("but the served pipeline classifies the lesion crop its segmenter finds: it would be served other "
                      "pictures than it learnt; train it on crops (--predicted-masks from a segmenter run, at that run's "
                      "--crop-threshold)")


def whole_pictures(full_image: bool, train_with_mask: int | None) -> str | None:
    """Why a classifier run trained on whole pictures, not lesion crops (``--full-image``, or no training image with a
    mask), else None: the one rule import and the classifier stage's --repository hold it to."""
    if full_image:
        return "--full-image"
    if train_with_mask == 0:
        return "no training image had a mask"
    return None


def trained_crops(torch_file: Path) -> tuple[float, float] | None:
    """(mask threshold, colour balance) of the crops the classifier's training run trained on (its metrics beside the
    file: ``classifier_metrics_file``), or None without them. A run that classified whole pictures (``--full-image``,
    or no mask for any training image) is refused: the served pipeline classifies crops."""
    metrics_file = classifier_metrics_file(torch_file)
    metrics = _run_metrics(torch_file, metrics_file.name)
    if metrics is None or metrics.get("crop_threshold") is None:
        return None
    whole = whole_pictures(bool(metrics.get("full_image")), (metrics.get("crops_with_mask") or {}).get("train"))
    if whole is not None:
        raise ImportModelError(f"the classifier {torch_file} was trained on whole pictures ({whole}: {metrics_file.name}), "
                               f"{WHOLE_PICTURES_FIX}")
    try:
        return float(metrics["crop_threshold"]), float(metrics.get("colour_constancy") or 0.0)
    except (TypeError, ValueError) as e:
        raise ImportModelError(f"{metrics_file} gives crop_threshold {metrics['crop_threshold']!r}; expected a number, "
                               "as the classifier's run writes it") from e


def run_import(kind: str, path: Path, repository: Path) -> str:
    """Run one import in a fresh subprocess; raise ImportModelError with the child's message on failure."""
    return run_child("training.importer", [kind, str(path), str(repository)], ImportModelError, f"{kind} import of {path}")


def main(argv: list[str] | None = None) -> int:
    """Subprocess entry: ``python -m training.importer keras|torch FILE REPOSITORY``."""
    kind, path, repository = (argv if argv is not None else sys.argv[1:])[:3]
    importer = import_keras if kind == "keras" else import_torch
    return child_main(lambda: importer(Path(path), Path(repository)))


if __name__ == "__main__":
    sys.exit(main())
