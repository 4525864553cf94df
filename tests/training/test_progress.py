"""The time a run has left, in its log line."""
from __future__ import annotations

from training.progress import eta_text


def test_the_time_left_is_the_mean_epoch_time_times_the_epochs_left() -> None:
    assert eta_text(600.0, 10, 150) == "about 140 min left"  # 60 s an epoch, 140 to go: worked by hand
    assert eta_text(30.0, 3, 5) == "about 20 s left"
    assert eta_text(30.0, 0, 5) == "" and eta_text(30.0, 5, 5) == ""
