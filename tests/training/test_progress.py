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


def test_a_long_step_without_a_bar_logs_each_tenth_and_the_end(caplog) -> None:
    """`dermassist release --retune` spent 90 s predicting masks and 2 min tuning without a line."""
    import logging

    from training.progress import ProgressLog

    log = logging.getLogger("tests.progress")
    progress = ProgressLog(log, "predicting the masks of isic", 25)
    with caplog.at_level(logging.INFO, logger="tests.progress"):
        for _ in range(7):  # batches of 4: 4, 8, ..., 25
            progress.advance(4)
    lines = [r.getMessage() for r in caplog.records]
    done = [int(line.split(": ")[1].split(" of ")[0]) for line in lines]
    assert done == [4, 8, 12, 16, 20, 24, 25]  # 25 images in tenths of 2.5: every batch of 4 completes another
    assert all(line.startswith("predicting the masks of isic: ") and " of 25 images (" in line for line in lines)
    assert lines[-1] == "predicting the masks of isic: 25 of 25 images (done)"
    caplog.clear()
    many = ProgressLog(log, "features of the train crops", 1000, "crops")
    with caplog.at_level(logging.INFO, logger="tests.progress"):
        for _ in range(1000):
            many.advance()
    assert len(caplog.records) == 10 and caplog.records[0].getMessage().startswith(
        "features of the train crops: 100 of 1000 crops (about ")
