"""Train torchvision ResNet18 from scratch (or a local ImageNet file) on lesion crops (PyTorch only).

The recipe for a thousand images on two CPU cores: augmented views warped out of each crop's context,
class-balanced sampling, label smoothing and optional mixup, AdamW with a linear warm-up then cosine
decay, bfloat16 autocast where the CPU has it natively, an exponential moving average of the weights,
most epochs at a reduced resolution and the last ones at the served 224 px, and the checkpoint with the
best validation balanced accuracy (always measured on the exact served 224 px crops).
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dermassist.base.cpu import precision_name, use_bfloat16
from dermassist.base.frameworks import is_torch_device, missing_gpu
from dermassist.base.settings import Settings, env_name, flag_name, setting_names
from preprocess.contract import CLASS_CODES, CLS_SIZE, IMAGENET_MEAN, IMAGENET_STD, NUM_CLASSES
from preprocess.crop import normalise

from ..errors import TrainingConfigError, check_setting_range
from ..metrics import classification_metrics
from ..plots import plot_confusion, plot_curves
from ..progress import epoch_sizes, resized_eta_text
from ..resume import Checkpointing, check_fingerprint, run_fingerprint
from ..signals import Terminated, sigterm_ignored, stop_on_sigterm
from .augment import colour_jitter, random_view
from .data import CropSet
from .schedule import DEFAULT_LOW_RES_EPOCHS, PRETRAINED_SHA256_PREFIX, low_res_epochs_for

logger = logging.getLogger(__name__)

_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


#: Every float setting's range (name, low, high, both ends open, what it is): finite values only, checked on construction.
FLOAT_RANGES: tuple[tuple[str, float, float, bool, str], ...] = (
    ("learning_rate", 0, 1, True, "the peak learning rate"),
    ("weight_decay", 0, 1, False, "AdamW weight decay, 0 = off"),
    ("label_smoothing", 0, 0.5, False, "the share of each target spread over the classes"),
    ("balance", 0, 1, False, "0 samples as the data comes, 1 every class equally often"),
    ("mixup", 0, 10, False, "the mixup Beta alpha, 0 = off"),
    ("dropout", 0, 0.9, False, "dropout on the pooled features"),
    ("ema", 0, 0.99999, False, "weight moving-average decay, 0 = off"),
    ("select_after", 0, 1, False, "the fraction of the run before which no epoch is kept"),
    ("white_balance", 0, 0.5, False, "log-scale spread of the colour jitter's channel gains, 0 = off"),
)


@dataclass(frozen=True)
class ClassifierConfig(Settings):
    """Everything one classifier run needs; validated on construction (``resolve``: flags > DERMASSIST_CLS_* > defaults)."""

    env_prefix = "DERMASSIST_CLS_"
    config_error = TrainingConfigError

    epochs: int = 6
    low_res_epochs: int = DEFAULT_LOW_RES_EPOCHS  # resolve(): at most epochs - 1 unless given (see derived_defaults)
    low_res: int = 112
    batch_size: int = 32
    learning_rate: float = field(default=2e-3, metadata=env_name("DERMASSIST_CLS_LR") | flag_name("--lr"))
    weight_decay: float = 0.05
    warmup_epochs: int = 1
    label_smoothing: float = 0.1
    balance: float = 0.5
    mixup: float = 0.0
    dropout: float = 0.0
    ema: float = 0.0
    augment: bool = field(default=True, metadata=flag_name("--no-augment"))
    brightness: bool = False
    white_balance: float = 0.0
    bf16: bool = field(default=True, metadata=flag_name("--no-bf16"))
    select_after: float = 0.5
    pretrained: Path | None = None
    seed: int = field(default=0, metadata=env_name("DERMASSIST_SEED"))
    progress: bool = field(default=True, metadata=flag_name(None))  # the stage sets it: a bar on a terminal
    device: str = "cpu"  # "cuda" or "cuda:N": the network trains there; augmentation stays on the CPU

    @classmethod
    def derived_defaults(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Unless given, the low-resolution epochs leave at least one epoch at the served size."""
        if given.get("low_res_epochs") is None:
            given = {**given, "low_res_epochs": low_res_epochs_for(given.get("epochs", cls.epochs))}
        return given

    def __post_init__(self) -> None:
        if self.epochs < 1 or not 0 <= self.low_res_epochs <= self.epochs:
            raise TrainingConfigError(
                f"need epochs >= 1 and 0 <= low-res epochs <= epochs, got {self.epochs} and {self.low_res_epochs}"
            )
        if not 32 <= self.low_res <= CLS_SIZE:
            raise TrainingConfigError(f"low resolution must lie in [32, {CLS_SIZE}], got {self.low_res}")
        if self.batch_size < 2:
            raise TrainingConfigError(f"batch size must be >= 2 (batch norm), got {self.batch_size}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise TrainingConfigError(f"warm-up epochs must lie in [0, epochs), got {self.warmup_epochs} of {self.epochs}; "
                                          "pass --warmup-epochs 0 for a run this short")
        defaults = {f.name: f.default for f in fields(self)}
        for name, lo, hi, is_open, meaning in FLOAT_RANGES:
            check_setting_range(getattr(self, name), setting_names(type(self), name), lo, hi, lo_open=is_open, hi_open=is_open,
                                meaning=meaning, default=defaults[name])
        if not is_torch_device(self.device):
            raise TrainingConfigError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.pretrained is not None and not Path(self.pretrained).is_file():
            raise TrainingConfigError(
                f"--pretrained {self.pretrained} does not exist; give a local torchvision resnet18 state_dict "
                "(nothing is downloaded)"
            )


def build_resnet18(pretrained: Path | None = None) -> torch.nn.Module:
    """torchvision resnet18 with an 8-class head (residual branches start at zero when training from
    scratch); backbone weights from a local state_dict when given."""
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=NUM_CLASSES, zero_init_residual=pretrained is None)
    if pretrained is not None:
        check_pretrained_file(Path(pretrained))
        try:
            state = torch.load(str(pretrained), map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, ValueError, EOFError) as e:
            raise TrainingConfigError(f"--pretrained {pretrained} cannot be loaded ({e}); expected torch.save(state_dict)") from e
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
            raise TrainingConfigError(
                f"--pretrained {pretrained} is not a torchvision resnet18 state_dict: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
        logger.info("backbone weights loaded from %s", pretrained)
    return model


def check_pretrained_file(path: Path) -> str:
    """Log a pretrained file's SHA-256 and refuse it when its torchvision-style name (``<arch>-<hex>.pth``)
    promises a digest prefix it does not have; returns the digest."""
    import re

    from dermassist.base.repository import file_sha256

    digest = file_sha256(path)
    named = re.search(r"-([a-f0-9]{8,})\.", path.name)
    if named and not digest.startswith(named.group(1)):
        raise TrainingConfigError(
            f"--pretrained {path}: its SHA-256 {digest} does not begin with {named.group(1)} as its name says; the file "
            f"is damaged or not the one named (torchvision's ImageNet ResNet18 begins {PRETRAINED_SHA256_PREFIX})"
        )
    logger.info("pretrained file %s has SHA-256 %s", path, digest)
    return digest


def sampling_weights(labels: np.ndarray, balance: float) -> np.ndarray:
    """Per-sample draw probabilities: class c drawn in proportion to count_c ** (1 - balance)
    (0: as the data comes, 1: every class equally often)."""
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)
    per_class = np.where(counts > 0, counts ** (1.0 - balance) / np.maximum(counts, 1), 0.0)
    w = per_class[labels]
    return w / w.sum()


def to_tensor(images: np.ndarray, size: int = CLS_SIZE) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, size, size), as ``lesion_crop`` normalises."""
    t = torch.from_numpy(normalise(np.ascontiguousarray(images)))
    if t.shape[-1] != size:
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t


def normalise_unit(x: torch.Tensor) -> torch.Tensor:
    """float (N, 3, H, W) RGB in [0, 1] -> the classifier's input, as ``preprocess.crop.normalise`` gives it from
    uint8 (a parity test holds the two together): for batches colour-jittered in float before normalising."""
    return (x - _MEAN) / _STD


def _train_batch(data: CropSet, idx: np.ndarray, rng: np.random.Generator, config: ClassifierConfig, size: int) -> torch.Tensor:
    """An augmented batch: views from the contexts (or flips and quarter turns of the crops when
    augmentation is off or there are no contexts), colour-jittered and normalised."""
    if config.augment and data.contexts is not None:
        views = np.stack([random_view(data.contexts[i], size, rng) for i in idx])
        x = torch.from_numpy(views).permute(0, 3, 1, 2).float().div_(255.0)
        x = colour_jitter(x, rng, config.brightness, config.white_balance)
        return normalise_unit(x).contiguous(memory_format=torch.channels_last)
    crops = data.crops[idx]
    if rng.random() < 0.5:
        crops = crops[:, :, ::-1]
    if rng.random() < 0.5:
        crops = crops[:, ::-1]
    crops = np.rot90(crops, int(rng.integers(4)), axes=(1, 2))
    if config.brightness:
        gain = rng.uniform(0.7, 1.3, (len(crops), 1, 1, 1)).astype(np.float32)
        shift = rng.uniform(-20, 20, (len(crops), 1, 1, 1)).astype(np.float32)
        crops = np.clip(crops.astype(np.float32) * gain + shift, 0, 255).astype(np.uint8)
    return to_tensor(crops, size).contiguous(memory_format=torch.channels_last)


def predict_logits(model: torch.nn.Module, crops: np.ndarray, batch_size: int = 64, size: int = CLS_SIZE,
                   bf16: bool = False) -> np.ndarray:
    """Logits (N, 8) for uint8 224x224 crops, seen at ``size`` px (224, as served, unless told), on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(crops), batch_size):
            out.append(model(to_tensor(crops[i : i + batch_size], size).to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, NUM_CLASSES), np.float32)


def training_device(name: str) -> torch.device:
    """The torch device ``name`` names, refused with the fix when this host has no such GPU."""
    problem = missing_gpu(torch, name)
    if problem:
        raise TrainingConfigError(f"{problem}; train with --device cpu or on a GPU host")
    return torch.device(name)


def training_precision(config: ClassifierConfig) -> bool:
    """Whether this run trains in bfloat16: on a GPU when asked; on the CPU when asked and the CPU has it natively."""
    if config.device != "cpu":
        return config.bf16
    return use_bfloat16(config.bf16, "classifier training")


def evaluate(model: torch.nn.Module, data: CropSet) -> dict:
    """Classification metrics of the model on a crop set (float32, as served)."""
    return classification_metrics(data.labels, predict_logits(model, data.crops).argmax(axis=1))


def feature_map(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ResNet18's layer4 feature map (N, 512, h, w) of normalised crops, for the eager callers (the TorchScript
    modules, the export and the reference's bare classifier, spell it again: a scripted module cannot pass a
    submodule to a free function)."""
    m: Any = model  # torchvision's ResNet: its layers are untyped attributes
    return m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))))


def pooled_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pooled layer4 features (N, 512) that ResNet18's head reads."""
    m: Any = model
    return torch.flatten(m.avgpool(feature_map(model, x)), 1)


def forward_train(model: torch.nn.Module, x: torch.Tensor, dropout: float) -> torch.Tensor:
    """Training logits; ``dropout`` > 0 drops pooled features before the head (the exported network is
    unchanged: torchvision's ResNet18 has no dropout layer, so it lives only in the training loop)."""
    if dropout <= 0:
        return model(x)
    m: Any = model
    return m.fc(F.dropout(pooled_features(model, x), p=dropout, training=True))


def _soft_targets(labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    return F.one_hot(labels, NUM_CLASSES).float() * (1.0 - smoothing) + smoothing / NUM_CLASSES


def _lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress)))


EpochHook = Callable[[int, torch.nn.Module, np.ndarray], None]


@dataclass(frozen=True)
class Reached:
    """What a run stopped by Ctrl-C had reached: the weights worth keeping and which epoch they are of."""

    state: dict[str, torch.Tensor] | None  # None: no epoch ended
    epoch: int  # the epoch of ``state`` (0 when None)
    best: bool  # the best selectable epoch so far; False: the latest one, none being past --select-after yet
    val: dict[str, float]  # that epoch's validation balanced accuracy and macro F1
    epochs_done: int  # the epochs the run can be resumed after: those its checkpoint file holds (interrupted_reach)
    epochs: int


InterruptHook = Callable[[Reached], object]


def epoch_eta_text(epoch_seconds: list[float], sizes: tuple[int, ...]) -> str:
    """The time left after an epoch: estimated from the epochs after the first (the first also pays the start-up:
    data-loader start, first allocations), so after epoch 1 only 'estimating time left'; 'done' after the last."""
    if len(epoch_seconds) >= len(sizes):
        return "done"
    if len(epoch_seconds) < 2:
        return "estimating time left"
    return resized_eta_text(epoch_seconds[1:], sizes[1:]) or "done"


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


Kept = tuple[tuple[float, float], dict | None, int]  # (validation score, weights, epoch) of an epoch worth keeping


def _kept_dict(kept: Kept) -> dict[str, Any]:
    return {"score": list(kept[0]), "state": kept[1], "epoch": kept[2]}


def _kept_tuple(saved: dict[str, Any]) -> Kept:
    return (float(saved["score"][0]), float(saved["score"][1])), saved["state"], int(saved["epoch"])


def interrupted_reach(history: dict[str, list[float]], saved: tuple[int, Kept, Kept] | None, best: Kept, latest: Kept,
                      epochs: int) -> Reached:
    """What a run stopped by Ctrl-C reached. With a checkpoint (``saved``: the epochs done, best and latest epoch the
    checkpoint file holds) it is what that file holds: a Ctrl-C while an epoch's checkpoint is written leaves the previous
    epoch's (the write is atomic), so that epoch, already in ``history``, is not counted and ``--resume`` repeats it.
    Without one, every epoch that ended (``history``) with its best and latest epoch."""
    done = len(history["loss"])
    if saved is not None:
        done, best, latest = saved
    kept = best if best[1] is not None else latest
    return Reached(kept[1], kept[2], best[1] is not None, {"balanced_accuracy": kept[0][0], "macro_f1": kept[0][1]},
                   done, epochs)


def train_classifier(train: CropSet, val: CropSet, config: ClassifierConfig = ClassifierConfig(),
                     on_epoch: EpochHook | None = None, on_interrupt: InterruptHook | None = None,
                     checkpoint: Checkpointing | None = None) -> tuple[torch.nn.Module, dict]:
    """Train, keeping the (averaged) weights of the epoch with the best validation balanced accuracy.

    ``on_epoch(epoch, judged model, validation logits)`` runs after each epoch's validation (epochs count from 1),
    e.g. to save what a run has reached where a deadline may stop it. On Ctrl-C (KeyboardInterrupt), or SIGTERM while it
    trains (:class:`Terminated`, a KeyboardInterrupt), ``on_interrupt`` gets what the run had reached
    (:func:`interrupted_reach`, e.g. to save it) before the interrupt goes on up.

    With ``checkpoint``, the run's whole state is saved at ``checkpoint.path`` as each epoch ends (before
    ``on_epoch``), and with ``checkpoint.resume`` the run continues from the one saved there when its settings and data
    match (ResumeError when not): on the same device and threads the resumed run ends with the weights an uninterrupted
    run ends with."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from .checkpoint import data_digest, data_images, load_checkpoint, save_checkpoint

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = training_device(config.device)
    bf16 = training_precision(config)
    model = build_resnet18(config.pretrained).to(device).to(memory_format=torch.channels_last)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True) if config.ema else None
    probs = sampling_weights(train.labels, config.balance)
    steps_per_epoch = max(1, len(train.labels) // config.batch_size)
    total, warmup = config.epochs * steps_per_epoch, config.warmup_epochs * steps_per_epoch
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate)
    history: dict[str, list[float]] = {k: [] for k in ("loss", "accuracy", "val_loss", "val_accuracy",
                                                        "val_balanced_accuracy", "val_macro_f1")}
    best: Kept = ((-1.0, -1.0), None, 0)
    first_selectable = int(config.epochs * config.select_after)
    start, step, done = time.perf_counter(), 0, 0
    sizes = epoch_sizes(config.epochs, config.low_res_epochs, config.low_res, CLS_SIZE)
    epoch_seconds: list[float] = []
    latest: Kept = ((-1.0, -1.0), None, 0)  # until an epoch is selectable
    # what the checkpoint file holds (epochs done, best, latest): a Ctrl-C while it is written leaves the previous one
    saved_state: tuple[int, Kept, Kept] = (0, best, latest)
    fingerprint = (run_fingerprint(config, data_digest(train, val), data_images(train, val)) if checkpoint is not None
                   else None)
    if checkpoint is not None and checkpoint.resume:
        saved = load_checkpoint(checkpoint.path)
        check_fingerprint(checkpoint.path, saved["fingerprint"], fingerprint or {})
        model.load_state_dict(saved["model"])
        if ema is not None:
            ema.load_state_dict(saved["ema"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = saved["numpy_rng"]
        torch.set_rng_state(saved["torch_rng"])
        if device.type == "cuda" and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        history, step, done = saved["history"], int(saved["step"]), int(saved["epochs_done"])
        best, latest = _kept_tuple(saved["best"]), _kept_tuple(saved["latest"])
        epoch_seconds, start = list(saved["epoch_seconds"]), start - float(saved["train_seconds"])
        saved_state = (done, best, latest)
        kept = best if best[1] is not None else latest
        logger.info("resuming from checkpoint %s: %d of %d epochs done, %s epoch so far %d (val balanced acc %.3f)",
                    checkpoint.path, done, config.epochs, "best" if best[1] is not None else "latest", kept[2], kept[0][0])
    elif checkpoint is not None and checkpoint.path.exists():
        logger.warning("%s holds the checkpoint of an unfinished run: this run starts at epoch 1 and replaces it (pass "
                       "--resume to continue that run instead)", checkpoint.path)
    restore_sigterm = stop_on_sigterm()
    try:
        for epoch, size in enumerate(sizes):
            if epoch < done:
                continue
            epoch_start = time.perf_counter()
            model.train()
            losses, correct, seen = [], 0, 0
            bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs} @{size}px", unit="batch",
                       disable=not config.progress, leave=False)
            for _ in bar:
                idx = rng.choice(len(train.labels), size=config.batch_size, replace=True, p=probs)
                x = _train_batch(train, idx, rng, config, size).to(device, non_blocking=True)
                y = torch.from_numpy(train.labels[idx]).to(device)
                target = _soft_targets(y, config.label_smoothing)
                if config.mixup > 0:
                    lam = float(rng.beta(config.mixup, config.mixup))
                    perm = torch.from_numpy(rng.permutation(len(idx))).to(device)
                    x = lam * x + (1 - lam) * x[perm]
                    target = lam * target + (1 - lam) * target[perm]
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(step, total, warmup, config.learning_rate)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = forward_train(model, x, config.dropout)
                loss = torch.sum(-target * F.log_softmax(logits.float(), dim=1), dim=1).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                losses.append(float(loss.detach()))
                correct += int((logits.argmax(1) == y).sum())
                seen += len(idx)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            judged = ema.module if ema is not None else model
            val_logits = predict_logits(judged, val.crops, bf16=bf16)
            val_metrics = classification_metrics(val.labels, val_logits.argmax(axis=1))
            val_loss = float(F.cross_entropy(torch.from_numpy(val_logits), torch.from_numpy(val.labels)))
            for key, value in (("loss", float(np.mean(losses))), ("accuracy", correct / max(1, seen)), ("val_loss", val_loss),
                               ("val_accuracy", val_metrics["accuracy"]),
                               ("val_balanced_accuracy", val_metrics["balanced_accuracy"]),
                               ("val_macro_f1", val_metrics["macro_f1"])):
                history[key].append(value)
            score = (val_metrics["balanced_accuracy"], val_metrics["macro_f1"])
            if epoch >= first_selectable and score > best[0]:
                best = (score, _snapshot(judged), epoch + 1)
            elif best[1] is None:
                latest = (score, _snapshot(judged), epoch + 1)
            epoch_seconds.append(time.perf_counter() - epoch_start)
            if checkpoint is not None:
                save_checkpoint(checkpoint.path, {
                    "fingerprint": fingerprint, "epochs_done": epoch + 1, "epochs": config.epochs, "step": step,
                    "model": model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                    "optimizer": optimizer.state_dict(), "numpy_rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    "history": history, "best": _kept_dict(best), "latest": _kept_dict(latest),
                    "epoch_seconds": epoch_seconds, "train_seconds": time.perf_counter() - start})
                saved_state = (epoch + 1, best, latest)
            if on_epoch is not None:
                on_epoch(epoch + 1, judged, val_logits)
            elapsed = time.perf_counter() - start
            logger.info("epoch %d/%d @%dpx %.0fs (%s): loss %.3f val loss %.3f acc %.3f balanced acc %.3f macro F1 %.3f%s",
                        epoch + 1, config.epochs, size, elapsed, epoch_eta_text(epoch_seconds, sizes),
                        history["loss"][-1], val_loss, val_metrics["accuracy"], val_metrics["balanced_accuracy"],
                        val_metrics["macro_f1"], " (best)" if best[2] == epoch + 1 else "")
    except KeyboardInterrupt as stop:
        if isinstance(stop, Terminated):
            logger.warning("%s: stopping the training as for Ctrl-C", stop)
        if on_interrupt is not None:
            with sigterm_ignored():
                on_interrupt(interrupted_reach(history, saved_state if checkpoint is not None else None, best, latest,
                                               config.epochs))
        raise
    finally:
        restore_sigterm()
    final = build_resnet18(None)
    final.load_state_dict(best[1] if best[1] is not None else (ema.module if ema is not None else model).state_dict())
    final.eval()
    return final, {"history": history, "best_epoch": best[2], "best_val": {"balanced_accuracy": best[0][0],
                                                                            "macro_f1": best[0][1]},
                   "train_seconds": round(time.perf_counter() - start, 1), "precision": precision_name(bf16)}


def write_classifier_report(
    out_dir: Path, name: str, model: torch.nn.Module, test: CropSet, extra: dict, config: ClassifierConfig
) -> dict:
    """Test metrics + confusion matrix PNG + curves PNG, under ``out_dir`` with prefix ``name``."""
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
