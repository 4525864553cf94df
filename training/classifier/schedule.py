"""Torch-free facts of the classifier recipe (the pipeline, CLI and model card use them): the
progressive-resizing rule and the pretrained file's identity."""
from __future__ import annotations

DEFAULT_LOW_RES_EPOCHS = 4
# torchvision's ImageNet ResNet18 (ResNet18_Weights.IMAGENET1K_V1) is resnet18-f37072fd.pth: torch.hub names
# its files by the first hex digits of their SHA-256.
PRETRAINED_SHA256_PREFIX = "f37072fd"


def low_res_epochs_for(epochs: int, wanted: int = DEFAULT_LOW_RES_EPOCHS) -> int:
    """Low-resolution epochs of a schedule: ``wanted``, leaving at least one epoch at full size."""
    return max(0, min(wanted, epochs - 1))
