"""Measure the served ensemble over gRPC at fixed concurrency levels (batch 1 per request)."""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from preprocess.contract import BBOX, ENSEMBLE_NAME, IMAGE, IMAGE_WIRE_DATATYPE, LESION_FRACTION, MASK, PROBABILITIES

from .cpu import cpu_ms_per_image, cpu_snapshot
from .errors import BenchError
from .latency import LatencySummary, summarize
from .stats import ModelStats, diff, snapshot

logger = logging.getLogger(__name__)

OUTPUTS = (PROBABILITIES.name, MASK.name, BBOX.name, LESION_FRACTION.name)
CALL_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ServedLevel:
    """One concurrency level: latency summary, the per-model statistics it caused and the CPU milliseconds per image
    the server's processes used (``cpu.cpu_ms_per_image``; empty when not read)."""

    concurrency: int
    latency: LatencySummary
    models: dict[str, ModelStats]
    cpu_ms: dict[str, float] = field(default_factory=dict)


def _request(grpcclient: Any, blob: bytes, outputs: Sequence[str] = OUTPUTS) -> tuple[list[Any], list[Any]]:
    tensor = grpcclient.InferInput(IMAGE.name, [1, 1], IMAGE_WIRE_DATATYPE)
    tensor.set_data_from_numpy(np.array([[blob]], dtype=object))
    return [tensor], [grpcclient.InferRequestedOutput(n) for n in outputs]


def measure_level(address: str, images: Sequence[bytes], concurrency: int, requests: int,
                  admin_headers: dict[str, str] | None = None, server_pid: int | None = None,
                  log_level: int = logging.INFO) -> ServedLevel:
    """Send ``requests`` single-image requests from ``concurrency`` threads (one client each); the level is logged at
    ``log_level`` (the warm-up's at DEBUG).

    Triton's statistics (read before and after) sit behind the admin key: pass its header. ``server_pid``:
    tritonserver's pid, whose and whose stubs' CPU time is read around the level.
    """
    import tritonclient.grpc as grpcclient

    if requests < concurrency:
        logger.warning("concurrency %d: %d request(s) per level raised to %d, one per thread", concurrency, requests,
                       concurrency)
        requests = concurrency
    counter = itertools.count()
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        client = grpcclient.InferenceServerClient(address)
        try:
            while (i := next(counter)) < requests:
                inputs, outputs = _request(grpcclient, images[i % len(images)])
                t0 = time.perf_counter()
                client.infer(ENSEMBLE_NAME, inputs, outputs=outputs, client_timeout=CALL_TIMEOUT_S)
                with lock:
                    latencies.append(time.perf_counter() - t0)
        except BaseException as e:  # noqa: BLE001 - reported after join
            errors.append(e)
        finally:
            client.close()

    control = grpcclient.InferenceServerClient(address)
    try:
        before = snapshot(control, admin_headers)
        cpu_before = cpu_snapshot(server_pid) if server_pid is not None else {}
        threads = [threading.Thread(target=worker, name=f"bench-c{concurrency}-{k}") for k in range(concurrency)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        cpu_after = cpu_snapshot(server_pid) if server_pid is not None else {}
        after = snapshot(control, admin_headers)
    finally:
        control.close()
    if errors:
        raise BenchError(f"served requests failed at concurrency {concurrency}: {errors[0]}") from errors[0]
    level = ServedLevel(concurrency, summarize(latencies, len(latencies), wall), diff(after, before),
                        cpu_ms_per_image(cpu_before, cpu_after, len(latencies)))
    logger.log(log_level, "served c=%d: %.2f images/s, p50 %.1f ms", concurrency, level.latency.images_per_s,
               level.latency.p50_ms)
    return level


def warm_up(address: str, images: Sequence[bytes], count: int, admin_headers: dict[str, str] | None = None) -> None:
    """Send a few requests so every model instance has run once (logged as the warm-up, not as a measured level)."""
    if count > 0:
        logger.info("warm-up: %d request(s), not measured", count)
        try:
            measure_level(address, images, min(2, count), count, admin_headers, log_level=logging.DEBUG)
        except BenchError as e:  # told as the warm-up's, not as a level nobody asked for
            raise BenchError(f"the warm-up's {count} request(s) failed, before any level was measured: "
                             f"{e.__cause__ or e}") from e
