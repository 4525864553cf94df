"""How long a training run has left, for its per-epoch log line."""
from __future__ import annotations


def eta_text(elapsed_s: float, done: int, total: int) -> str:
    """'about N min left' from the mean epoch time so far (epochs of a run differ little but for a resolution
    change), or '' when nothing is done yet or nothing is left."""
    if done <= 0 or done >= total:
        return ""
    left = elapsed_s / done * (total - done)
    return f"about {left / 60:.0f} min left" if left >= 90 else f"about {left:.0f} s left"
