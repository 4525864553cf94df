"""Measure the in-process reference pipeline: batch 1, one image after another."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..reference import STEPS, ReferencePipeline
from .latency import LatencySummary, summarize

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InProcessResult:
    """Latency summary and mean per-step milliseconds per image of the reference pipeline."""

    latency: LatencySummary
    step_ms: dict[str, float]
    load_s: float
    decode_ms: float = 0.0  # JPEG decode alone, as ``prepare`` does it: the floor under that step
    triage_extras_ms: dict[str, float] = field(default_factory=dict)  # quality measures, classifier OOD + CAM
    torch_threads: int = 0  # the classifier's intra-op threads
    omp_wait_policy: str = ""  # how its OpenMP threads wait ("": OpenMP's own)

    @property
    def settings(self) -> str:
        """How the classifier ran, e.g. "torch threads 2, OpenMP waits PASSIVE"."""
        return f"torch threads {self.torch_threads}, OpenMP waits {self.omp_wait_policy or 'as OpenMP chooses'}"


def measure_decode(images: Sequence[bytes], passes: int) -> float:
    """Mean milliseconds per image of ``prepare``'s decode alone (same shrink-on-load), one after another."""
    from preprocess.decode import decode

    started = time.perf_counter()
    for _ in range(passes):
        for blob in images:
            decode(blob, allow_reduced=True)
    return (time.perf_counter() - started) * 1000.0 / (passes * len(images))


def measure_inprocess(repository: Path, images: Sequence[bytes], passes: int, warmup: int,
                      torch_threads: int = 0) -> InProcessResult:
    """Run every image ``passes`` times through ReferencePipeline at batch 1, sequentially."""
    pipeline = ReferencePipeline(repository, torch_threads=torch_threads)
    for i in range(warmup):
        pipeline.run([images[i % len(images)]])
    latencies: list[float] = []
    step_totals = dict.fromkeys(STEPS, 0.0)
    started = time.perf_counter()
    for _ in range(passes):
        for blob in images:
            t0 = time.perf_counter()
            _, times = pipeline.run_timed([blob])
            latencies.append(time.perf_counter() - t0)
            for step, seconds in times.seconds.items():
                step_totals[step] += seconds
    wall = time.perf_counter() - started
    n = len(latencies)
    result = InProcessResult(summarize(latencies, n, wall), {k: v * 1000.0 / n for k, v in step_totals.items()},
                             pipeline.load_s, measure_decode(images, passes), pipeline.triage_extras_ms(images, passes),
                             pipeline.torch_threads, pipeline.omp_wait_policy)
    logger.info("in-process: %.2f images/s, p50 %.1f ms; decode alone %.2f ms per image",
                result.latency.images_per_s, result.latency.p50_ms, result.decode_ms)
    return result
