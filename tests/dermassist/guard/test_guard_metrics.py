"""The guard's own Prometheus metrics (operator audit 4): refusals at the front, recoveries and readiness were visible
to no metric, and Triton's counters restart at 0 with every reload."""
from __future__ import annotations

import asyncio
import re
import threading
import urllib.request
from pathlib import Path

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dermassist.base.server_config import GRPC_ADMIN_HEADER
from dermassist.guard.canary import canary_request
from dermassist.guard.config import GuardConfig
from dermassist.guard.faults import Fault
from dermassist.guard.health import Readiness, health_answer
from dermassist.guard.metrics import LATENCY_BUCKETS_S, GuardMetrics, recovery_kind
from tests.support.polling import wait_until

from .loopback import front_before_stand_in
from .stand_in import StandInServer, background_guard

_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text -> {(name, sorted labels): value}; every line must be a comment or a sample."""
    samples = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match["labels"] or "")))
        samples[(match["name"], labels)] = float(match["value"])
    return samples


def test_the_text_is_prometheus_exposition_with_a_cumulative_histogram() -> None:
    metrics = GuardMetrics()
    for status, seconds in (("OK", 0.02), ("OK", 0.3), ("INVALID_ARGUMENT", 0.001), ("UNAVAILABLE", 400.0)):
        metrics.observe_request(status, seconds)
    samples = parse(metrics.text())
    assert samples[("dermassist_requests_total", (("status", "OK"),))] == 2
    assert samples[("dermassist_requests_total", (("status", "INVALID_ARGUMENT"),))] == 1
    buckets = [samples[("dermassist_request_seconds_bucket", (("le", str(b) if b % 1 else str(int(b))),))]
               for b in LATENCY_BUCKETS_S]
    assert buckets == sorted(buckets) and buckets[0] == 1 and buckets[-1] == 3  # 400 s is past the last bucket
    assert samples[("dermassist_request_seconds_bucket", (("le", "+Inf"),))] == 4
    assert samples[("dermassist_request_seconds_count", ())] == 4
    assert samples[("dermassist_request_seconds_sum", ())] == pytest.approx(400.321)
    # every recovery series exists from the start, so increase() and absent-alerts work before the first fault
    assert samples[("dermassist_recoveries_total", (("action", "reload_then_restart"), ("result", "failed")))] == 0
    assert (recovery_kind("reload lesion_crop"), recovery_kind("reload lesion_crop, then restart"),
            recovery_kind("restart")) == ("reload", "reload_then_restart", "restart")


def test_metrics_are_served_on_the_health_port_as_text_and_only_when_given() -> None:
    readiness = Readiness()
    answer = health_answer("GET", "/metrics", readiness, lambda: "dermassist_ready 0\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Type: text/plain; version=0.0.4" in head
    assert body == b"dermassist_ready 0\n"
    assert health_answer("GET", "/metrics", readiness).startswith(b"HTTP/1.1 404")


def test_the_front_counts_answers_refusals_admin_calls_and_calls_held_for_readiness(tmp_path: Path) -> None:
    config = GuardConfig(audit_log=str(tmp_path / "audit.jsonl"), hold_s=2.0)  # the front ends the hold, not the client
    with front_before_stand_in(tmp_path / "audit.jsonl", config) as served, \
            grpc.insecure_channel(served.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        stub.ModelInfer(canary_request("m-1"), timeout=10)
        unknown = canary_request("m-2")
        unknown.model_name = "no_such_model"
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(unknown, timeout=10)
        with pytest.raises(grpc.RpcError) as denied:
            stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(), metadata=((GRPC_ADMIN_HEADER, "wrong"),),
                                 timeout=10)
        waiting = ("dermassist_waiting_for_readiness", ())

        def scrape() -> dict:
            with urllib.request.urlopen(f"http://{served.http_address}/metrics", timeout=10) as response:
                return parse(response.read().decode())

        assert scrape()[waiting] == 0
        readiness = served.front.guard.readiness

        async def not_ready() -> None:  # on the front's event loop, as the guard does: the readiness event is cleared
            readiness.set_not_ready("recovering (the test)")

        asyncio.run_coroutine_threadsafe(not_ready(), served.loop).result(10)
        held_call = stub.ModelInfer.future(canary_request("m-3"), timeout=10)  # held until hold_s, then refused
        assert wait_until(lambda: scrape()[waiting] == 1, 10), "the call was not held for readiness"
        assert not held_call.done()
        with pytest.raises(grpc.RpcError) as held:
            held_call.result()
        samples = scrape()
    assert held.value.code() == grpc.StatusCode.UNAVAILABLE and "not ready (recovering (the test))" in held.value.details()
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert samples[("dermassist_requests_total", (("status", "OK"),))] == 1
    assert samples[("dermassist_requests_total", (("status", refused.value.code().name),))] == 1
    assert samples[("dermassist_requests_total", (("status", "UNAVAILABLE"),))] == 1
    assert samples[("dermassist_admin_calls_total", (("status", "PERMISSION_DENIED"),))] == 1
    assert samples[("dermassist_held_total", ())] == 1 and samples[waiting] == 0
    assert samples[("dermassist_request_seconds_count", ())] == 3


def test_the_guard_serves_recoveries_readiness_and_liveness_at_metrics(tmp_path: Path) -> None:
    server = StandInServer(tmp_path)
    background = background_guard(tmp_path, server)
    outcomes = ["still broken", None]  # the first recovery fails, the next heals
    healing = threading.Event()

    async def heal(action: str, fault: Fault) -> str | None:
        healing.set()
        await asyncio.sleep(0)
        problem = outcomes.pop(0)
        server.alive = problem is None
        return problem

    background.guard._heal = heal  # type: ignore[method-assign]

    def scrape() -> dict:
        with urllib.request.urlopen(f"http://{background.http_address}/metrics", timeout=10) as response:
            return parse(response.read().decode())

    with background:
        first = scrape()
        assert first[("dermassist_ready", ())] == 1 and first[("dermassist_live", ())] == 1
        assert first[("dermassist_unready_seconds", ())] == 0 and first[("dermassist_in_flight", ())] == 0
        server.alive = False
        assert healing.wait(30)
        restarts = [("dermassist_recoveries_total", (("action", "restart"), ("result", end))) for end in ("failed", "healed")]
        for restart in restarts:
            assert wait_until(lambda key=restart: scrape()[key] == 1, 30.0), restart
        last = scrape()
    assert last[("dermassist_ready", ())] == 1 and last[("dermassist_unready_seconds", ())] == 0
    assert [r.error for r in background.guard.recoveries] == ["still broken", None]
