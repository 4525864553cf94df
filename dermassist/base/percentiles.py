"""How many samples a latency percentile needs before it says more than the slowest call (bench and load test)."""
from __future__ import annotations

import math
from collections.abc import Callable

THIN_MARK = "*"
THIN_FOOTNOTE = (f"{THIN_MARK} fewer samples than this percentile needs to lie below the slowest call (p95: "
                 "{p95}, p99: {p99}): read it as about the slowest call, and send more requests for a percentile.")


def min_samples(percent: float) -> int:
    """Fewest samples whose ``percent``-th percentile lies below the largest of them: 2 for p50, 20 for p95, 100 for
    p99 (n >= 100 / (100 - percent))."""
    if not 0.0 < percent < 100.0:
        raise ValueError(f"percent must lie strictly between 0 and 100, got {percent}")
    return math.ceil(round(100.0 / (100.0 - percent), 9))


def percentile_cell(value: float, percent: float, samples: int | None, spec: str,
                    needed: Callable[[float], int] = min_samples) -> str:
    """``value`` formatted with ``spec``, marked THIN_MARK when ``samples`` (None: not known) are fewer than ``needed``
    (``min_samples`` for numpy's percentiles; a tool that computes its own passes its rule)."""
    text = format(value, spec)
    return text if samples is None or samples >= needed(percent) else text + THIN_MARK


def thin_footnote(needed: Callable[[float], int] = min_samples) -> str:
    """The footnote a table with THIN_MARK cells carries (``needed``: the rule its cells were marked by)."""
    return THIN_FOOTNOTE.format(p95=needed(95), p99=needed(99))
