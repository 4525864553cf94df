"""Small deterministic models for tests, each built and exported in its own process.

``python -m tests.support.tiny_models segmenter|classifier REPOSITORY``

The segmenter is a fixed 1x1 convolution that calls dark pixels lesion (as a dermoscopic lesion is
darker than the skin around it), so served masks are meaningful without training. The classifier is
a freshly initialised (seeded) torchvision ResNet18 with an 8-class head.
"""
from __future__ import annotations

import sys
from pathlib import Path

DARKNESS_GAIN = 12.0
DARKNESS_CUTOFF = 0.45


def build_darkness_segmenter():
    """Keras model (256,256,3) -> (256,256,1): sigmoid(gain * (cutoff - mean RGB))."""
    import keras
    import numpy as np

    from preprocess.contract import SEG_SIZE

    inputs = keras.Input((SEG_SIZE, SEG_SIZE, 3), name="image")
    conv = keras.layers.Conv2D(1, 1, activation="sigmoid", name="darkness")
    outputs = conv(inputs)
    conv.set_weights([
        np.full((1, 1, 3, 1), -DARKNESS_GAIN / 3.0, dtype=np.float32),
        np.array([DARKNESS_GAIN * DARKNESS_CUTOFF], dtype=np.float32),
    ])
    return keras.Model(inputs, outputs, name="darkness_segmenter")


def build_classifier(seed: int = 0):
    """Seeded, untrained torchvision ResNet18 with the contract's 8-class head."""
    from dermassist.base.frameworks import import_torch

    torch = import_torch()
    import torchvision

    from preprocess.contract import NUM_CLASSES

    torch.manual_seed(seed)
    return torchvision.models.resnet18(num_classes=NUM_CLASSES).eval()


def main(argv: list[str]) -> int:
    """Build and export one tiny model into a repository."""
    kind, repository = argv[0], Path(argv[1])
    if kind == "segmenter":
        from training.export.segmenter import export_segmenter

        export_segmenter(build_darkness_segmenter(), repository)
    elif kind == "classifier":
        from training.export.classifier import export_classifier

        export_classifier(build_classifier(), repository)
    else:
        raise SystemExit(f"unknown kind {kind!r}; expected segmenter or classifier")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
