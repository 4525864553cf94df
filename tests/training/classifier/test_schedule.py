"""The progressive-resizing rule: low-resolution epochs always leave one full-size epoch."""
from __future__ import annotations

import pytest

from training.classifier.schedule import DEFAULT_LOW_RES_EPOCHS, low_res_epochs_for


@pytest.mark.parametrize(("epochs", "wanted", "expected"), [(6, 4, 4), (3, 4, 2), (1, 4, 0), (5, 0, 0), (8, 9, 7)])
def test_low_res_epochs_leave_one_full_size_epoch(epochs: int, wanted: int, expected: int) -> None:
    assert low_res_epochs_for(epochs, wanted) == expected


def test_default_schedule_is_four_low_res_epochs() -> None:
    assert low_res_epochs_for(6) == DEFAULT_LOW_RES_EPOCHS == 4
