"""CPU time the served pipeline spends per image: tritonserver's own threads and each step's stub processes, read
from /proc around a measurement (the figure that sizes a host's cores, GPU or not)."""
from __future__ import annotations

import os
from collections.abc import Mapping

from ..guard.stubs import find_stubs, stat_fields

SERVER = "tritonserver"  # the server process's own threads (gRPC, scheduling, the ensemble's tensors)
_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds ``pid`` has used (every thread), or None when it is gone or /proc is absent."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime and stime: proc(5)'s fields 14 and 15


def cpu_snapshot(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of tritonserver ``server_pid`` (:data:`SERVER`) and of each model's stubs (summed over its
    instances); {} where /proc cannot be read."""
    own = process_cpu_s(server_pid)
    if own is None:
        return {}
    out = {SERVER: own}
    for stub in find_stubs(server_pid):
        used = process_cpu_s(stub.pid)
        if used is not None:
            out[stub.model] = out.get(stub.model, 0.0) + used
    return out


def cpu_ms_per_image(before: Mapping[str, float], after: Mapping[str, float], images: int) -> dict[str, float]:
    """Milliseconds of CPU per image each process group used between two snapshots (those in both), with their
    ``total``; {} for no image or no snapshot."""
    if images <= 0 or not before or not after:
        return {}
    used = {name: max(after[name] - before[name], 0.0) * 1000.0 / images for name in after if name in before}
    return {**used, "total": sum(used.values())}
