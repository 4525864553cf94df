"""Export a torchvision ResNet18 as the served TorchScript classifier (PyTorch process only)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from preprocess.contract import CLASS_CODES, CLS_SIZE, NUM_CLASSES

from .errors import ExportError, ModelArchitectureError
from .parity import check_parity
from .repository import classifier_artifact, labels_file

logger = logging.getLogger(__name__)


class SoftmaxClassifier(nn.Module):
    """A logits classifier with softmax appended, as the contract serves it."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


@dataclass(frozen=True)
class ClassifierExport:
    """What the export wrote and how closely TorchScript matched eager PyTorch."""

    torchscript: Path
    labels: Path
    max_abs_diff: float


def check_classifier_architecture(model: nn.Module) -> None:
    """Raise ModelArchitectureError unless the model is a ResNet18 with an 8-class head."""
    from torchvision.models import ResNet
    from torchvision.models.resnet import BasicBlock

    if not isinstance(model, ResNet):
        raise ModelArchitectureError(f"classifier must be a torchvision ResNet18, got {type(model).__name__}")
    blocks = [len(getattr(model, f"layer{i}")) for i in range(1, 5)]
    if blocks != [2, 2, 2, 2] or not isinstance(model.layer1[0], BasicBlock):
        raise ModelArchitectureError(f"classifier must be ResNet18 (blocks [2, 2, 2, 2]), got blocks {blocks}")
    if model.fc.out_features != NUM_CLASSES:
        raise ModelArchitectureError(
            f"classifier head must have {NUM_CLASSES} outputs ({', '.join(CLASS_CODES)}), got {model.fc.out_features}"
        )


def export_classifier(model: nn.Module, repository: Path, *, seed: int = 0) -> ClassifierExport:
    """Script ``model`` with softmax appended into the repository after a parity check, plus labels."""
    check_classifier_architecture(model)
    wrapped = SoftmaxClassifier(model).eval()
    target = classifier_artifact(repository)
    target.parent.mkdir(parents=True, exist_ok=True)
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((2, 3, CLS_SIZE, CLS_SIZE), dtype=np.float32))
    staged = target.with_name(target.name + ".tmp")
    try:
        with torch.no_grad():
            eager = wrapped(x).numpy()
            torch.jit.script(wrapped).save(str(staged))
            exported = torch.jit.load(str(staged)).eval()(x).numpy()
        diff = check_parity("classifier TorchScript", eager, exported)
    except (RuntimeError, torch.jit.Error) as e:
        staged.unlink(missing_ok=True)
        raise ExportError(f"TorchScript export of the classifier failed: {e}") from e
    except ExportError:
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, target)
    labels = labels_file(repository)
    labels.write_text("\n".join(CLASS_CODES) + "\n")
    logger.info("classifier exported to %s (max |TorchScript - eager| = %.2e)", target, diff)
    return ClassifierExport(target, labels, diff)
