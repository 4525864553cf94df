"""Bring your own models: a full Keras ``.keras`` segmenter and a torchvision ResNet18 state_dict.

Each export runs in its own subprocess (``python -m training.importer keras|torch FILE REPO``) so
TensorFlow and PyTorch never share a process; errors come back as ImportModelError.
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

from .child import child_main, run_child
from .errors import ImportModelError


def check_file(path: Path, what: str, suffixes: tuple[str, ...]) -> Path:
    """Raise ImportModelError unless ``path`` is an existing file with one of the suffixes."""
    path = Path(path)
    if not path.is_file():
        raise ImportModelError(f"{what} file {path} does not exist; expected a {'/'.join(suffixes)} file")
    if path.suffix not in suffixes:
        raise ImportModelError(f"{what} file {path} must end in {' or '.join(suffixes)}, got {path.suffix or 'no suffix'!r}")
    return path


def import_keras(path: Path, repository: Path) -> str:
    """Load a full Keras model file and export it as the served segmenter (TensorFlow process)."""
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
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as e:
        reason = str(e).splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ImportModelError(
            f"PyTorch file {path} cannot be loaded ({reason}); expected torch.save(model.state_dict())"
        ) from e
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise ImportModelError(
            f"{path} is not a torchvision ResNet18 state_dict (no 'fc.weight'); save model.state_dict(), not the model"
        )
    classes = int(state["fc.weight"].shape[0])
    if classes != NUM_CLASSES:
        raise ImportModelError(
            f"{path} has a {classes}-class fc layer; the served classifier needs {NUM_CLASSES} classes in the order "
            f"{', '.join(CLASS_CODES)}: replace model.fc with nn.Linear(512, {NUM_CLASSES}) and fine-tune"
        )
    model = resnet18(weights=None, num_classes=NUM_CLASSES)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0:3]
        raise ImportModelError(f"{path} is not a torchvision ResNet18 state_dict: {' '.join(first)[:400]}") from e
    result = export_classifier(model.eval(), repository)
    return f"classifier {path} -> {result.torchscript} (parity {result.max_abs_diff:.1e})"


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
