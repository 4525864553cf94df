"""The classifier's release file: float16 state_dict plus the float32 OOD statistics (PyTorch process)."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import TrainingConfigError
from ..export.classifier import ClassifierCalibration
from .train import build_resnet18

OOD_MEANS, OOD_PRECISION = "ood.means", "ood.precision"


def state_arrays(model: torch.nn.Module, calibration: ClassifierCalibration) -> dict[str, np.ndarray]:
    """The network's state_dict as numpy arrays plus the OOD statistics, ready for ``save_weights``."""
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    arrays[OOD_MEANS] = np.asarray(calibration.ood_means, np.float32)
    arrays[OOD_PRECISION] = np.asarray(calibration.ood_precision, np.float32)
    return arrays


def model_from_arrays(arrays: dict[str, np.ndarray], source: str) -> torch.nn.Module:
    """A ResNet18 holding the release's weights (float16 widened to float32)."""
    model = build_resnet18(None)
    state = model.state_dict()
    missing = sorted(set(state) - set(arrays))
    if missing:
        raise TrainingConfigError(f"{source} lacks classifier weights {missing[:3]} ({len(missing)} in all); "
                                  "expected a torchvision ResNet18 state_dict with an 8-class head")
    model.load_state_dict({k: torch.from_numpy(np.asarray(arrays[k]).astype(state[k].numpy().dtype)) for k in state})
    return model.eval()


def round_to_float16(model: torch.nn.Module) -> torch.nn.Module:
    """Round every floating tensor of the state through float16 in place (what the release stores)."""
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.copy_(value.half().float())
    return model
