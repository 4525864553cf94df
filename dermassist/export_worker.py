"""Subprocess entry point of one export: ``python -m dermassist.export_worker KIND SOURCE REPOSITORY``.

KIND is ``segmenter`` (loads a .keras file with TensorFlow) or ``classifier`` (loads a ResNet18
state_dict with PyTorch); the last line on stderr is the error when the exit code is non-zero."""
from __future__ import annotations

import sys
from pathlib import Path

from .errors import DermAssistError, ExportError, ModelArchitectureError


def export_keras_file(source: Path, repository: Path) -> str:
    """Load a full Keras model file and export it as the served segmenter."""
    import keras

    from .export_segmenter import export_segmenter

    try:
        model = keras.saving.load_model(str(source), compile=False)
    except (ValueError, TypeError, OSError) as e:
        raise ExportError(f"{source} is not a loadable Keras model file: {e}") from e
    done = export_segmenter(model, repository)
    return f"segmenter -> {done.savedmodel} (parity {done.max_abs_diff:.1e})"


def export_state_dict(source: Path, repository: Path) -> str:
    """Load a ResNet18 state_dict into torchvision's resnet18(num_classes=8) and export it."""
    sys.modules.setdefault("triton", None)
    import torch
    import torchvision

    from preprocess.contract import NUM_CLASSES

    from .export_classifier import export_classifier

    try:
        state = torch.load(str(source), map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError) as e:
        raise ExportError(f"{source} is not a loadable PyTorch state_dict: {e}") from e
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise ModelArchitectureError(f"{source} is not a ResNet18 state_dict (no fc.weight); save model.state_dict()")
    classes = int(state["fc.weight"].shape[0])
    if classes != NUM_CLASSES:
        raise ModelArchitectureError(f"{source} has a {classes}-class fc; the contract needs {NUM_CLASSES} classes")
    model = torchvision.models.resnet18(num_classes=NUM_CLASSES)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelArchitectureError(f"{source} does not fit torchvision resnet18: {str(e).splitlines()[0]}") from e
    done = export_classifier(model, repository)
    return f"classifier -> {done.torchscript} (parity {done.max_abs_diff:.1e})"


def main(argv: list[str]) -> int:
    """Run one export; print a one-line result or the error."""
    if len(argv) != 3 or argv[0] not in ("segmenter", "classifier"):
        sys.stderr.write("usage: python -m dermassist.export_worker segmenter|classifier SOURCE REPOSITORY\n")
        return 2
    kind, source, repository = argv[0], Path(argv[1]), Path(argv[2])
    try:
        fn = export_keras_file if kind == "segmenter" else export_state_dict
        sys.stdout.write(fn(source, repository) + "\n")
    except DermAssistError as e:
        sys.stderr.write(f"{type(e).__name__}: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
