"""The classifier's training device: checked on construction; bfloat16 follows the device."""
from __future__ import annotations

import pytest

from training.classifier.train import ClassifierConfig, predict_logits, training_precision
from training.errors import TrainingConfigError


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1"])
def test_cpu_and_cuda_devices_are_taken(device: str) -> None:
    assert ClassifierConfig(device=device).device == device


@pytest.mark.parametrize("device", ["gpu", "tpu", "cuda1", "", "cuda:", "cuda:x"])
def test_other_devices_are_refused_by_name(device: str) -> None:
    with pytest.raises(TrainingConfigError, match=f"cpu, cuda or cuda:N, got {device!r}"):
        ClassifierConfig(device=device)


def test_a_gpu_trains_in_bfloat16_when_asked_whatever_the_cpu_has(monkeypatch: pytest.MonkeyPatch) -> None:
    import training.classifier.train as train

    monkeypatch.setattr(train, "use_bfloat16", lambda requested, what: False)  # a CPU without native bfloat16
    assert training_precision(ClassifierConfig(device="cuda", bf16=True)) is True
    assert training_precision(ClassifierConfig(device="cuda", bf16=False)) is False
    assert training_precision(ClassifierConfig(device="cpu", bf16=True)) is False


def test_predict_logits_runs_where_the_model_is_and_answers_on_the_cpu() -> None:
    import numpy as np
    import torch

    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 8))
    crops = np.zeros((3, 224, 224, 3), np.uint8)
    logits = predict_logits(model, crops, batch_size=2)
    # a black crop normalises to -mean/std per channel; the logits are the linear head of those three numbers
    x = torch.tensor([[-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]])
    expected = model[2](x).detach().numpy()
    assert logits.shape == (3, 8) and np.allclose(logits, np.repeat(expected, 3, axis=0), atol=1e-5)


def test_a_gpu_this_host_does_not_have_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from training.classifier.train import training_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert training_device("cuda").type == "cuda" and training_device("cuda:0").index == 0
    with pytest.raises(TrainingConfigError, match="'cuda:1' asked for, but torch .* sees 1 GPU"):
        training_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TrainingConfigError, match="sees no CUDA device.*--device cpu"):
        training_device("cuda")
    assert training_device("cpu").type == "cpu"


def test_the_epoch_hook_sees_every_epoch_with_the_judged_models_validation_logits() -> None:
    import numpy as np

    from training.classifier.data import CropSet
    from training.classifier.train import train_classifier
    from training.metrics import classification_metrics

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (8, 224, 224, 3), dtype=np.uint8)
    labels = np.arange(8, dtype=np.int64)
    data = CropSet(crops, labels, with_mask=8)
    seen: list[tuple[int, np.ndarray, np.ndarray]] = []

    def hook(epoch: int, model, val_logits: np.ndarray) -> None:
        seen.append((epoch, val_logits.copy(), predict_logits(model, crops)))

    config = ClassifierConfig(epochs=3, low_res_epochs=2, low_res=32, batch_size=4, warmup_epochs=0, augment=False,
                              select_after=0.0, bf16=False, progress=False)
    model, info = train_classifier(data, data, config, on_epoch=hook)
    assert [e for e, _, _ in seen] == [1, 2, 3]
    for _, val_logits, again in seen:  # the logits handed over are the judged model's on the validation crops
        assert val_logits.shape == (8, 8) and np.allclose(val_logits, again, atol=1e-4)
    balanced = [classification_metrics(labels, v.argmax(1))["balanced_accuracy"] for _, v, _ in seen]
    assert info["history"]["val_balanced_accuracy"] == pytest.approx(balanced)
    best = seen[info["best_epoch"] - 1][1]
    assert np.allclose(predict_logits(model, crops), best, atol=1e-4)  # the returned weights are that epoch's
