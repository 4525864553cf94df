"""Torch-free facts of the classifier recipe (the pipeline, CLI and model card use them): the
progressive-resizing rule, the pretrained file's identity and the rules its tuned values are chosen by."""
from __future__ import annotations

DEFAULT_LOW_RES_EPOCHS = 4
# torchvision's ImageNet ResNet18 (ResNet18_Weights.IMAGENET1K_V1) is resnet18-f37072fd.pth: torch.hub names
# its files by the first hex digits of their SHA-256.
PRETRAINED_SHA256_PREFIX = "f37072fd"
REFER_SENSITIVITY = 0.95  # the melanoma sensitivity the REFER threshold keeps on new melanomas (issue 10)
DEFAULT_REFER_SAFETY = 1.0  # factor on the chosen REFER threshold (--refer-safety; below 1 refers more)
# OOD_SCORE 1.0 is this quantile of the validation distances: the limit passes 98% of the in-distribution
# images, so with the quality gate at most a few percent of real test images come back not assessable.
OOD_VALIDATION_QUANTILE = 0.98


def low_res_epochs_for(epochs: int, wanted: int = DEFAULT_LOW_RES_EPOCHS) -> int:
    """Low-resolution epochs of a schedule: ``wanted``, leaving at least one epoch at full size."""
    return max(0, min(wanted, epochs - 1))
