"""The time a run has left, in its log line."""
from __future__ import annotations

from training.progress import eta_text


def test_the_time_left_is_the_mean_epoch_time_times_the_epochs_left() -> None:
    assert eta_text(600.0, 10, 150) == "about 140 min left"  # 60 s an epoch, 140 to go: worked by hand
    assert eta_text(30.0, 3, 5) == "about 20 s left"
    assert eta_text(30.0, 0, 5) == "" and eta_text(30.0, 5, 5) == ""


def test_the_time_left_weights_each_epoch_left_by_its_pixels_until_its_size_is_timed() -> None:
    """After epoch 4/6 at 112 px (2 s each) it said 'about 4 s left'; the two 224 px epochs took 13 s."""
    from training.progress import epoch_sizes, resized_eta_text

    sizes = epoch_sizes(6, 4, 112, 224)
    assert sizes == (112, 112, 112, 112, 224, 224)
    assert resized_eta_text([2.0] * 4, sizes) == "about 16 s left"  # 2 epochs x 2 s x (224 / 112)^2: worked by hand
    assert resized_eta_text([2.0] * 4 + [7.0], sizes) == "about 7 s left"  # a 224 px epoch timed: its own time
    assert resized_eta_text([], sizes) == "" and resized_eta_text([2.0] * 6, sizes) == ""


def test_the_time_left_of_the_real_recipe_counts_its_full_size_epochs_at_their_cost() -> None:
    """60 epochs at 160 px then 90 at 224 px: after the 60th (60 s each) the plain mean says 90 min, twice too low."""
    from training.progress import epoch_sizes, resized_eta_text

    sizes = epoch_sizes(150, 60, 160, 224)
    assert eta_text(3600.0, 60, 150) == "about 90 min left"
    assert resized_eta_text([60.0] * 60, sizes) == "about 176 min left"  # 90 x 60 s x (224 / 160)^2 = 10584 s
    assert resized_eta_text([60.0] * 10, sizes) == "about 226 min left"  # 50 x 60 s + 10584 s = 13584 s
    assert resized_eta_text([3.0] * 3, epoch_sizes(5, 0, 112, 224)) == "about 6 s left"  # one size: the mean
