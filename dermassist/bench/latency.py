"""Latency samples -> throughput and percentiles."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import NoMeasurementsError


@dataclass(frozen=True)
class LatencySummary:
    """Images per second and per-request latency percentiles (milliseconds)."""

    images: int
    wall_s: float
    images_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    samples: int | None = None  # requests timed, the percentiles' sample count (None: not recorded)


def summarize(latencies_s: Sequence[float], images: int, wall_s: float) -> LatencySummary:
    """Summarise per-request latencies (seconds) of ``images`` images served in ``wall_s``."""
    if len(latencies_s) == 0 or wall_s <= 0:
        raise NoMeasurementsError(f"a latency summary needs latencies and a positive wall time, got {len(latencies_s)} "
                                  f"samples in {wall_s} s; run at least one image through at least one pass")
    ms = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    return LatencySummary(
        images=int(images), wall_s=float(wall_s), images_per_s=images / wall_s,
        p50_ms=float(np.percentile(ms, 50)), p95_ms=float(np.percentile(ms, 95)),
        p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()), samples=len(ms),
    )
