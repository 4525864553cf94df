"""The classifier recipe's pieces: sampling weights, training-only dropout, augmentation views (by hand)."""
from __future__ import annotations

import numpy as np
import pytest

from training.classifier.augment import CONTEXT_FACTOR, context_crop, random_view
from training.classifier.train import sampling_weights


def test_sampling_weights_interpolate_between_natural_and_balanced() -> None:
    labels = np.array([4] * 9 + [3] * 1)  # 9 NV, 1 MEL
    natural, balanced = sampling_weights(labels, 0.0), sampling_weights(labels, 1.0)
    np.testing.assert_allclose(natural, np.full(10, 0.1))
    assert balanced[labels == 3].sum() == pytest.approx(0.5) and balanced[labels == 4].sum() == pytest.approx(0.5)
    half = sampling_weights(labels, 0.5)  # classes drawn in proportion to sqrt(count): 3 : 1
    assert half[labels == 3].sum() == pytest.approx(0.25)


def test_context_crop_grows_the_box_and_mirrors_past_the_edge() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    image[40:60, 40:60] = 255
    ctx = context_crop(image, (40, 40, 60, 60), 2.0, 40)  # the 20 px box grown to 40 px, no resize needed
    assert ctx.shape == (40, 40, 3) and ctx[10:30, 10:30].min() == 255 and ctx[:8].max() == 0
    edge = context_crop(image, (0, 0, 20, 20), 2.0, 40)  # reaches 10 px past the corner: mirrored, not black
    assert edge.shape == (40, 40, 3)


def test_random_views_keep_the_lesion_near_the_centre() -> None:
    ctx = np.zeros((160, 160, 3), np.uint8)
    side = 160 / CONTEXT_FACTOR
    lo, hi = int(80 - side / 4), int(80 + side / 4)
    ctx[lo:hi, lo:hi] = 200  # a lesion half the served crop's side, at the centre
    rng = np.random.default_rng(0)
    for _ in range(20):
        view = random_view(ctx, 64, rng)
        assert view.shape == (64, 64, 3) and view[28:36, 28:36].mean() > 150


def test_training_dropout_leaves_the_network_and_eval_path_unchanged() -> None:
    import torch

    from training.classifier.train import build_resnet18, forward_train

    torch.manual_seed(0)
    model = build_resnet18().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(forward_train(model, x, 0.0), model(x))
        dropped = forward_train(model, x, 0.5)
    assert dropped.shape == (2, 8) and not torch.allclose(dropped, model(x))
    assert [type(m).__name__ for m in model.children()][-1] == "Linear"  # no layer was added to the network


def test_calibration_features_are_the_networks_own_pooled_features() -> None:
    import torch

    from training.classifier.calibrate import logits_and_features
    from training.classifier.train import build_resnet18, to_tensor

    torch.manual_seed(1)
    model = build_resnet18(None)
    with torch.no_grad():
        for p in model.parameters():  # leave the zero-initialised residual branches: every layer must count
            p.add_(0.05 * torch.randn_like(p))
    crops = np.random.default_rng(1).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    logits, features = logits_and_features(model, crops)
    with torch.no_grad():
        expected = model.eval()(to_tensor(crops)).numpy()
        head = model.fc(torch.from_numpy(features)).numpy()
    assert features.shape == (3, 512) and features.std() > 0
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(head, expected, rtol=1e-4, atol=1e-5)


def test_white_balance_gains_tint_apart_and_keep_the_level() -> None:
    import torch

    from training.classifier.augment import colour_jitter, white_balance_gains

    gains = white_balance_gains(np.random.default_rng(0), 500, 0.15)
    assert gains.shape == (500, 3) and gains.dtype == np.float32
    np.testing.assert_allclose(gains.mean(axis=1), 1.0, rtol=1e-6)  # the level is kept
    ratio = gains[:, 0] / gains[:, 2]
    assert ratio.max() > 1.15 and ratio.min() < 1 / 1.15 and ratio.max() <= np.exp(0.3) + 1e-6  # both ways, bounded
    x = torch.full((16, 3, 8, 8), 0.5)
    plain = colour_jitter(x, np.random.default_rng(0), brightness=False)
    assert torch.allclose(plain[:, 0], plain[:, 2])  # without it grey stays grey
    tinted = colour_jitter(x, np.random.default_rng(0), brightness=False, white_balance=0.15)
    assert float((tinted[:, 0] - tinted[:, 2]).abs().max()) > 0.02
