"""Export a torchvision ResNet18 as the served TorchScript classifier (PyTorch process only).

The exported module returns, in one call, the calibrated probabilities (logits / temperature, then
softmax), the out-of-distribution score (Mahalanobis distance of the pooled features to the nearest
training class mean, divided by the limit set on validation) and the class activation map of the
top class (Grad-CAM of its log-probability: sum_k (w[c, k] - sum_j p_j w[j, k]) * layer4[k], exact up to a
positive scale for ResNet18, no gradients needed), each checked
against the eager module before anything is written.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dermassist.base.repository import CALIBRATION_FILENAME, classifier_artifact, labels_file
from preprocess.contract import CLASS_CODES, CLS_SIZE, NUM_CLASSES

from ..errors import ExportError, ModelArchitectureError
from .parity import check_parity

logger = logging.getLogger(__name__)

FEATURES = 512


@dataclass(frozen=True)
class ClassifierCalibration:
    """Values fitted after training that the TorchScript carries: temperature and OOD statistics.

    ``figures`` are the validation figures behind them, written beside the model for people to read.
    The defaults (temperature 1, one zero mean, identity precision, scale 1) leave the probabilities
    as the network gives them and make the OOD score the plain feature norm.
    """

    temperature: float = 1.0
    ood_means: np.ndarray = field(default_factory=lambda: np.zeros((1, FEATURES), np.float32))
    ood_precision: np.ndarray = field(default_factory=lambda: np.eye(FEATURES, dtype=np.float32))
    ood_scale: float = 1.0
    figures: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.temperature > 0 or not self.ood_scale > 0:
            raise ExportError(f"temperature and OOD scale must be positive, got {self.temperature} and {self.ood_scale}")
        means, precision = np.asarray(self.ood_means), np.asarray(self.ood_precision)
        if means.ndim != 2 or means.shape[1] != FEATURES or precision.shape != (FEATURES, FEATURES):
            raise ExportError(
                f"OOD statistics must be means (K, {FEATURES}) and precision ({FEATURES}, {FEATURES}), "
                f"got {means.shape} and {precision.shape}"
            )


class ServedClassifier(nn.Module):
    """ResNet18 as served: (probabilities (N, 8), OOD score (N, 1), CAM uint8 (N, 224, 224))."""

    def __init__(self, net: Any, calibration: ClassifierCalibration = ClassifierCalibration()) -> None:  # net: a ResNet18
        super().__init__()
        self.net = net
        self.register_buffer("temperature", torch.tensor(float(calibration.temperature)))
        self.register_buffer("class_means", torch.as_tensor(np.asarray(calibration.ood_means, np.float32)))
        self.register_buffer("precision", torch.as_tensor(np.asarray(calibration.ood_precision, np.float32)))
        self.register_buffer("ood_scale", torch.tensor(float(calibration.ood_scale)))
        self.cam_size = CLS_SIZE

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last block's feature maps (N, 512, h, w) and their average (N, 512)."""
        n = self.net
        f = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        f = n.layer4(n.layer3(n.layer2(n.layer1(f))))
        return f, torch.flatten(n.avgpool(f), 1)

    def _calibrated(self, pooled: torch.Tensor) -> torch.Tensor:
        """Softmax of the head's logits divided by the temperature."""
        return torch.softmax(self.net.fc(pooled) / self.temperature, dim=1)

    @torch.jit.export
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """The calibrated probabilities alone, without the OOD score and CAM (what the bench prices them against)."""
        return self._calibrated(self._features(x)[1])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Calibrated probabilities, OOD score and the top class's CAM of a batch of normalised crops."""
        n = self.net
        f, pooled = self._features(x)
        probs = self._calibrated(pooled)
        # the calibration buffers: torch types a registered buffer Tensor | Module (TorchScript rejects class annotations here)
        diff = pooled.unsqueeze(1) - self.class_means.unsqueeze(0)  # type: ignore[operator]
        d2 = ((diff @ self.precision) * diff).sum(dim=2)  # type: ignore[operator]
        ood = torch.sqrt(torch.clamp(d2.min(dim=1).values, min=0.0)) / self.ood_scale  # type: ignore[operator]
        # Grad-CAM of the top class's calibrated log-probability, which is what a clinician reads (and what erasing
        # the map's top patches lowers): d log p_c / d pooled = (w_c - sum_j p_j w_j) / T, a positive scale dropped.
        # The logit's map (w_c alone) also credits what raises every class; validation deletion test 76% -> 80%.
        weights = n.fc.weight[probs.argmax(dim=1)] - probs @ n.fc.weight
        cam = torch.relu(torch.einsum("nc,nchw->nhw", weights, f)).unsqueeze(1)
        # the bilinear resize F.interpolate does, called directly: scripting F.interpolate compiles every mode it has,
        # and a libtorch older than this torch (the GPU image's) refuses an operator the newer ones added
        # (aten::_upsample_lanczos2d_aa): the exported model would not load there
        cam = torch._C._nn.upsample_bilinear2d(cam, [self.cam_size, self.cam_size], False, None).squeeze(1)
        peak = cam.amax(dim=(1, 2), keepdim=True)
        cam = torch.where(peak > 0, cam * (255.0 / torch.clamp(peak, min=1e-12)), torch.zeros_like(cam))
        return probs, ood.unsqueeze(1), torch.round(cam).to(torch.uint8)


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


def _parity(eager: tuple[torch.Tensor, ...], scripted: tuple[torch.Tensor, ...]) -> float:
    diff = check_parity("classifier TorchScript probabilities", eager[0].numpy(), scripted[0].numpy())
    scale = max(1.0, float(eager[1].abs().max()))
    diff = max(diff, check_parity("classifier TorchScript OOD score", eager[1].numpy() / scale, scripted[1].numpy() / scale))
    cam_diff = check_parity("classifier TorchScript CAM", eager[2].numpy().astype(np.float32),
                            scripted[2].numpy().astype(np.float32), atol=1.0)
    logger.debug("CAM parity within %.0f grey level(s)", cam_diff)
    return diff


def export_classifier(model: nn.Module, repository: Path, calibration: ClassifierCalibration = ClassifierCalibration(),
                      *, seed: int = 0) -> ClassifierExport:
    """Script ``model`` with calibration, OOD score and CAM into the repository after a parity check;
    write the labels and the calibration figures beside it."""
    check_classifier_architecture(model)
    wrapped = ServedClassifier(model.eval(), calibration).eval()
    target = classifier_artifact(repository)
    target.parent.mkdir(parents=True, exist_ok=True)
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((2, 3, CLS_SIZE, CLS_SIZE), dtype=np.float32))
    staged = target.with_name(target.name + ".tmp")
    try:
        with torch.no_grad():
            eager = wrapped(x)
            torch.jit.script(wrapped).save(str(staged))
            exported = torch.jit.load(str(staged)).eval()(x)
        diff = _parity(eager, exported)
    except (RuntimeError, torch.jit.Error) as e:
        staged.unlink(missing_ok=True)
        raise ExportError(f"TorchScript export of the classifier failed: {e}") from e
    except ExportError:
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, target)
    labels = labels_file(repository)
    labels.write_text("\n".join(CLASS_CODES) + "\n")
    summary = {"temperature": calibration.temperature, "ood_scale": calibration.ood_scale,
               "ood_classes": int(np.asarray(calibration.ood_means).shape[0]), "figures": calibration.figures}
    (target.parent / CALIBRATION_FILENAME).write_text(json.dumps(summary, indent=1))
    logger.info("classifier exported to %s (T %.3f, OOD scale %.3g, max |TorchScript - eager| = %.2e)", target,
                calibration.temperature, calibration.ood_scale, diff)
    return ClassifierExport(target, labels, diff)
