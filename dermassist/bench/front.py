"""What the guard's gRPC front (audit trail, truthful readiness) adds to a request's latency.

One client alternates between Triton's loopback port and the front, one single-image request at a
time, so both paths see the same machine state; the p50 of each and their difference are reported.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from preprocess.contract import ENSEMBLE_NAME

from ..guard.front import AUDITED_OUTPUTS
from .served import CALL_TIMEOUT_S, OUTPUTS, _request

# Both paths ask for what every audit line records, as the client SDK does: a request without them would have the
# front add them (and the ensemble run triage) on one path only, and the difference would not be the front's cost.
FRONT_OUTPUTS = tuple(dict.fromkeys((*OUTPUTS, *AUDITED_OUTPUTS)))

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrontCost:
    """p50 latency (ms) at concurrency 1 straight to Triton and through the front, interleaved."""

    requests: int
    direct_p50_ms: float
    front_p50_ms: float

    @property
    def added_ms(self) -> float:
        """Milliseconds the front adds at the median."""
        return self.front_p50_ms - self.direct_p50_ms

    @property
    def ratio(self) -> float:
        """Front p50 / direct p50."""
        return self.front_p50_ms / self.direct_p50_ms if self.direct_p50_ms else 0.0


def measure_front_cost(direct: str, front: str, images: Sequence[bytes], requests: int) -> FrontCost:
    """Send ``requests`` requests to each address, alternating, and compare their medians."""
    import tritonclient.grpc as grpcclient

    clients = {name: grpcclient.InferenceServerClient(address) for name, address in (("direct", direct), ("front", front))}
    samples: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for i in range(requests):
            order = ("direct", "front") if i % 2 == 0 else ("front", "direct")
            for name in order:
                inputs, outputs = _request(grpcclient, images[i % len(images)], FRONT_OUTPUTS)
                started = time.perf_counter()
                clients[name].infer(ENSEMBLE_NAME, inputs, outputs=outputs, client_timeout=CALL_TIMEOUT_S)
                samples[name].append((time.perf_counter() - started) * 1000.0)
    finally:
        for client in clients.values():
            client.close()
    cost = FrontCost(requests, float(np.percentile(samples["direct"], 50)), float(np.percentile(samples["front"], 50)))
    logger.info("front: p50 %.2f ms direct, %.2f ms through the front (+%.2f ms)",
                cost.direct_p50_ms, cost.front_p50_ms, cost.added_ms)
    return cost


def measure_behind_guard(server, images: Sequence[bytes], requests: int, audit_log: str) -> FrontCost:
    """Put a guard in front of a running embedded server and measure what it adds."""
    from ..base.server import free_ports
    from ..base.server_config import ServerConfig
    from ..guard.config import GuardConfig
    from ..guard.guard import BackgroundGuard

    http, grpc, metrics = free_ports(3)
    public = ServerConfig(repository=server.config.repository, http_port=http, grpc_port=grpc, metrics_port=metrics)
    with BackgroundGuard(public, GuardConfig(audit_log=audit_log), server=server) as guard:
        return measure_front_cost(server.config.grpc_address, guard.grpc_address, images, requests)
