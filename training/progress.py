"""How long a training run has left, for its per-epoch log line; progress lines for long steps that show no bar."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence


def eta_text(elapsed_s: float, done: int, total: int) -> str:
    """'about N min left' from the mean epoch time so far, for a run whose epochs cost the same (one resolution;
    :func:`resized_eta_text` for one that changes it), or '' when nothing is done yet or nothing is left."""
    if done <= 0 or done >= total:
        return ""
    return _left_text(elapsed_s / done * (total - done))


def epoch_sizes(epochs: int, low_res_epochs: int, low_res: int, full_res: int) -> tuple[int, ...]:
    """The image size (px a side) of each epoch of a progressively resized run: ``low_res`` for the first
    ``low_res_epochs``, ``full_res`` after."""
    return tuple(low_res if epoch < low_res_epochs else full_res for epoch in range(epochs))


def _seconds_left(epoch_seconds: Sequence[float], sizes: Sequence[int]) -> float:
    """Seconds the epochs after the timed ones (at least one) still take: each at the mean time of the timed epochs of its size;
    at a size not timed yet, at the timed epochs' mean seconds per pixel times its pixels (an epoch's cost grows
    with the pixels of its images: 224 px costs about 4x 112 px)."""
    done = len(epoch_seconds)
    timed: dict[int, list[float]] = {}
    for size, seconds in zip(sizes, epoch_seconds):
        timed.setdefault(size, []).append(seconds)
    per_pixel = sum(epoch_seconds) / sum(size * size for size in sizes[:done])
    return sum(sum(timed[size]) / len(timed[size]) if size in timed else per_pixel * size * size
               for size in sizes[done:])


def resized_eta_text(epoch_seconds: Sequence[float], sizes: Sequence[int]) -> str:
    """:func:`eta_text` for a run whose epochs differ in image size (``sizes``: every epoch's, e.g. from
    :func:`epoch_sizes`; ``epoch_seconds``: how long each epoch done so far took), or '' when nothing is done yet
    or nothing is left."""
    if not epoch_seconds or len(epoch_seconds) >= len(sizes):
        return ""
    return _left_text(_seconds_left(epoch_seconds, sizes))


def _left_text(left: float) -> str:
    return f"about {left / 60:.0f} min left" if left >= 90 else f"about {left:.0f} s left"


class ProgressLog:
    """INFO lines for a long step that shows no progress bar (a stage's log, a pipe): ``<what>: <done> of <total>
    <unit> (about N s left)`` each time another tenth (``parts``) of the work is done, the last at the end."""

    def __init__(self, log: logging.Logger, what: str, total: int, unit: str = "images", parts: int = 10) -> None:
        self.log, self.what, self.total, self.unit, self.parts = log, what, total, unit, max(1, parts)
        self.done, self.shown = 0, 0
        self.started = time.perf_counter()

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more done; log a line when that completes another tenth (or the whole)."""
        self.done = min(self.total, self.done + count)
        part = self.done * self.parts // max(1, self.total)
        if part > self.shown or (self.done == self.total and self.shown < self.parts):
            self.shown = self.parts if self.done == self.total else part
            left = eta_text(time.perf_counter() - self.started, self.done, self.total) or "done"
            self.log.info("%s: %d of %d %s (%s)", self.what, self.done, self.total, self.unit, left)
