"""Train torchvision ResNet18 on lesion crops with class-weighted cross entropy (PyTorch only).

Epochs run at a reduced resolution first and at the served 224x224 last (progressive resizing),
so a CPU-only machine can train the full-width ResNet18 in minutes.
"""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

sys.modules.setdefault("triton", None)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm import tqdm  # noqa: E402

from preprocess.contract import CLASS_CODES, CLS_SIZE, NUM_CLASSES  # noqa: E402
from preprocess.crop import normalise  # noqa: E402

from ..errors import TrainingConfigError  # noqa: E402
from ..metrics import classification_metrics  # noqa: E402
from ..plots import plot_confusion, plot_curves  # noqa: E402
from .data import CropSet  # noqa: E402
from .schedule import DEFAULT_LOW_RES_EPOCHS  # noqa: E402

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything one classifier run needs; validated on construction."""

    epochs: int = 6
    low_res_epochs: int = DEFAULT_LOW_RES_EPOCHS
    low_res: int = 112
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    brightness: bool = False
    pretrained: Path | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or not 0 <= self.low_res_epochs <= self.epochs:
            raise TrainingConfigError(
                f"need epochs >= 1 and 0 <= low-res epochs <= epochs, got {self.epochs} and {self.low_res_epochs}"
            )
        if not 32 <= self.low_res <= CLS_SIZE:
            raise TrainingConfigError(f"low resolution must lie in [32, {CLS_SIZE}], got {self.low_res}")
        if self.batch_size < 2:
            raise TrainingConfigError(f"batch size must be >= 2 (batch norm), got {self.batch_size}")
        if self.pretrained is not None and not Path(self.pretrained).is_file():
            raise TrainingConfigError(
                f"--pretrained {self.pretrained} does not exist; give a local torchvision resnet18 state_dict "
                "(nothing is downloaded)"
            )


def build_resnet18(pretrained: Path | None = None) -> torch.nn.Module:
    """torchvision resnet18 with an 8-class head; backbone weights from a local state_dict when given."""
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=NUM_CLASSES)
    if pretrained is not None:
        state = torch.load(str(pretrained), map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
            raise TrainingConfigError(
                f"--pretrained {pretrained} is not a torchvision resnet18 state_dict: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
        logger.info("backbone weights loaded from %s", pretrained)
    return model


def class_weights(labels: np.ndarray) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 over present classes (absent classes weigh 1)."""
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max(1, (counts > 0).sum()), 1.0)
    w = np.where(counts > 0, w / w[counts > 0].mean(), 1.0)
    return torch.tensor(w, dtype=torch.float32)


def _batch(crops: np.ndarray, rng: np.random.Generator, train: bool, brightness: bool, size: int) -> torch.Tensor:
    x = crops
    if train:
        x = x.copy()
        if rng.random() < 0.5:
            x = x[:, :, ::-1]
        if rng.random() < 0.5:
            x = x[:, ::-1]
        x = np.rot90(x, int(rng.integers(4)), axes=(1, 2))
        if brightness:
            gain = rng.uniform(0.7, 1.3, (len(x), 1, 1, 1)).astype(np.float32)
            shift = rng.uniform(-20, 20, (len(x), 1, 1, 1)).astype(np.float32)
            x = np.clip(x.astype(np.float32) * gain + shift, 0, 255).astype(np.uint8)
    t = torch.from_numpy(normalise(np.ascontiguousarray(x)))
    if size != CLS_SIZE:
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t


def predict_logits(model: torch.nn.Module, crops: np.ndarray, batch_size: int = 64, size: int = CLS_SIZE) -> np.ndarray:
    """Logits (N, 8) for uint8 224x224 crops, seen at ``size`` px (224, as served, unless told)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(crops), batch_size):
            out.append(model(_batch(crops[i : i + batch_size], None, False, False, size)).numpy())
    return np.concatenate(out) if out else np.zeros((0, NUM_CLASSES), np.float32)


def evaluate(model: torch.nn.Module, data: CropSet) -> dict:
    """Classification metrics of the model on a crop set."""
    return classification_metrics(data.labels, predict_logits(model, data.crops).argmax(axis=1))


def train_classifier(train: CropSet, val: CropSet, config: ClassifierConfig = ClassifierConfig()) -> tuple[torch.nn.Module, dict]:
    """Train, keeping the epoch with the best validation macro F1; returns the model and its history."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = build_resnet18(config.pretrained)
    weights = class_weights(train.labels)
    steps_per_epoch = int(np.ceil(len(train.labels) / config.batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=config.epochs * steps_per_epoch, pct_start=0.2
    )
    history: dict[str, list[float]] = {"loss": [], "val_loss": [], "accuracy": [], "val_accuracy": [], "val_macro_f1": []}
    best = (-1.0, None, 0)
    for epoch in range(config.epochs):
        size = config.low_res if epoch < config.low_res_epochs else CLS_SIZE
        model.train()
        order = rng.permutation(len(train.labels))
        losses, correct = [], 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs} @{size}px", unit="batch",
                   disable=not config.progress, leave=False)
        for step in bar:
            idx = np.sort(order[step * config.batch_size : (step + 1) * config.batch_size])
            if len(idx) < 2:
                continue
            x = _batch(train.crops[idx], rng, True, config.brightness, size)
            y = torch.from_numpy(train.labels[idx])
            logits = model(x)
            loss = F.cross_entropy(logits, y, weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            correct += int((logits.argmax(1) == y).sum())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        val_logits = predict_logits(model, val.crops, size=size)
        val_metrics = classification_metrics(val.labels, val_logits.argmax(axis=1))
        val_loss = float(F.cross_entropy(torch.from_numpy(val_logits), torch.from_numpy(val.labels), weight=weights))
        history["loss"].append(float(np.mean(losses)))
        history["accuracy"].append(correct / len(train.labels))
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_metrics["accuracy"])
        history["val_macro_f1"].append(val_metrics["macro_f1"])
        logger.info("epoch %d/%d @%dpx (val at the same size): loss %.3f val loss %.3f val acc %.3f val macro F1 %.3f", epoch + 1,
                    config.epochs, size, history["loss"][-1], val_loss, val_metrics["accuracy"], val_metrics["macro_f1"])
        if size == CLS_SIZE and val_metrics["macro_f1"] >= best[0]:
            best = (val_metrics["macro_f1"], {k: v.clone() for k, v in model.state_dict().items()}, epoch + 1)
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    return model, {"history": history, "best_epoch": best[2]}


def write_classifier_report(
    out_dir: Path, name: str, model: torch.nn.Module, test: CropSet, extra: dict, config: ClassifierConfig
) -> dict:
    """Test metrics + confusion matrix PNG + curves PNG + state_dict, under ``out_dir`` with prefix ``name``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "test": evaluate(model, test),
        "config": json.loads(json.dumps(asdict(config), default=str)),
        **extra,
    }
    plot_confusion(report["test"]["confusion_matrix"], CLASS_CODES, out_dir / f"{name}_confusion.png",
                   f"{name}: test confusion (macro F1 {report['test']['macro_f1']:.3f})")
    plot_curves(report["history"], out_dir / f"{name}_curves.png", f"{name}: ResNet18")
    (out_dir / f"{name}_metrics.json").write_text(json.dumps(report, indent=1))
    return report
