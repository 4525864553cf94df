"""What the guard's front adds, per concurrency level and over TLS (an operator's audit: it was measured once, at
concurrency 1 and over plaintext): the row maths by hand, the report's table and JSON, the throwaway certificate,
and the interleaved measurement against two stand-in gRPC services (no Triton, no timing asserted)."""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dermassist.bench.errors import BenchError, NoMeasurementsError
from dermassist.bench.front import (
    FRONT_OUTPUTS,
    FrontCost,
    FrontCosts,
    client_process,
    front_row,
    measure_front_level,
    measure_in,
    pair_order,
)
from dermassist.bench.inprocess import InProcessResult
from dermassist.bench.latency import LatencySummary
from dermassist.bench.report import BenchResult
from dermassist.bench.tls import make_throwaway_tls

# --- Row maths -----------------------------------------------------------------------------------------------


def test_a_row_is_both_paths_percentiles_their_difference_and_ratio() -> None:
    # direct 10..50 ms: p50 30; p95 at rank 0.95 * 4 = 3.8, 40 + 0.8 * 10 = 48
    # front 11, 21, 31, 41, 101: p50 31; p95 41 + 0.8 * 60 = 89
    row = front_row(4, [50.0, 10.0, 40.0, 20.0, 30.0], [11.0, 21.0, 31.0, 41.0, 101.0])
    assert (row.concurrency, row.requests, row.tls) == (4, 5, False)
    assert (row.direct_p50_ms, row.front_p50_ms) == (pytest.approx(30.0), pytest.approx(31.0))
    assert (row.direct_p95_ms, row.front_p95_ms) == (pytest.approx(48.0), pytest.approx(89.0))
    assert row.added_ms == pytest.approx(1.0) and row.ratio == pytest.approx(31.0 / 30.0)
    assert row.added_p95_ms == pytest.approx(41.0) and row.ratio_p95 == pytest.approx(89.0 / 48.0)
    assert front_row(1, [2.0, 4.0], [3.0], tls=True).requests == 1 and front_row(1, [1.0], [1.0], tls=True).tls


def test_a_faster_front_gives_a_negative_addition_and_a_zero_direct_time_no_division() -> None:
    row = FrontCost(1, 3, direct_p50_ms=10.0, direct_p95_ms=0.0, front_p50_ms=9.5, front_p95_ms=2.0)
    assert row.added_ms == pytest.approx(-0.5) and row.ratio == pytest.approx(0.95)
    assert row.ratio_p95 == 0.0 and row.added_p95_ms == pytest.approx(2.0)


def test_a_row_without_latencies_on_a_path_says_what_to_send() -> None:
    with pytest.raises(NoMeasurementsError, match=r"got 0 direct and 2 through the front at concurrency 8; send at least "
                                                  r"one request each way \(--requests >= 1\)"):
        front_row(8, [], [1.0, 2.0])


def test_pairs_alternate_which_path_goes_first() -> None:
    assert [pair_order(i) for i in range(4)] == [("direct", "front"), ("front", "direct")] * 2


def test_the_rows_are_the_levels_then_tls_and_the_audit_count_is_the_plaintext_levels() -> None:
    c1, c4 = FrontCost(1, 10, 60.0, 70.0, 61.0, 72.0), FrontCost(4, 12, 200.0, 260.0, 204.0, 270.0)
    tls = FrontCost(1, 10, 61.0, 71.0, 63.0, 75.0, tls=True)
    costs = FrontCosts((c1, c4), tls, "made now")
    assert costs.rows == (c1, c4, tls)
    assert costs.requests == 22  # every inference the plaintext front audited; the TLS guard has its own trail
    assert FrontCosts((c4,)).rows == (c4,)
    assert FrontCosts(()).requests == 0


# --- Report --------------------------------------------------------------------------------------------------


def _summary(p50_ms: float) -> LatencySummary:
    return LatencySummary(images=10, wall_s=1.0, images_per_s=10.0, p50_ms=p50_ms, p95_ms=p50_ms, p99_ms=p50_ms,
                          mean_ms=p50_ms)


def _result(front: FrontCosts | None) -> BenchResult:
    inprocess = InProcessResult(_summary(50.0), dict.fromkeys(("prepare", "lesion_classifier"), 1.0), 0.5)
    return BenchResult("m", "c", inprocess, [], front=front)


def test_the_report_has_a_row_per_level_and_the_tls_row(tmp_path: Path) -> None:
    front = FrontCosts((FrontCost(1, 96, 60.0, 70.0, 61.5, 72.5), FrontCost(8, 96, 400.0, 600.0, 398.0, 630.0)),
                       FrontCost(1, 96, 60.0, 70.0, 64.0, 77.0, tls=True), "throwaway CA made now")
    md, js = _result(front).write(tmp_path)
    lines = md.read_text().splitlines()
    assert "## What the guard's gRPC front adds (`dermassist serve`: audit line, truthful readiness)" in lines
    # 61.5 - 60 = +1.50, 61.5 / 60 = 1.025x; p95 72.5 - 70 = +2.50, 72.5 / 70 = 1.036x
    assert "| plaintext | 1 | 96 | 60.0 | 61.5 | +1.50 | 1.025x | 70.0 | 72.5 | +2.50 | 1.036x |" in lines
    # the front faster at the median in noise: a signed -2.00, 398 / 400 = 0.995x; p95 +30.00, 630 / 600 = 1.050x
    assert "| plaintext | 8 | 96 | 400.0 | 398.0 | -2.00 | 0.995x | 600.0 | 630.0 | +30.00 | 1.050x |" in lines
    assert "| TLS | 1 | 96 | 60.0 | 64.0 | +4.00 | 1.067x | 70.0 | 77.0 | +7.00 | 1.100x |" in lines
    assert "TLS row: throwaway CA made now. It is measured after the plaintext rows, against direct samples of its own: " \
        "compare its added ms and ratio with the plaintext c=1 row's, not its milliseconds." in lines
    text = md.read_text()
    assert "plaintext gRPC to the loopback Triton" in text and "without the TCP or TLS handshake" in text
    data = json.loads(js.read_text())["front"]
    assert data["direct_path"] == "plaintext gRPC to the loopback Triton" and data["tls_note"] == "throwaway CA made now"
    assert [(r["concurrency"], r["tls"]) for r in data["rows"]] == [(1, False), (8, False), (1, True)]
    assert set(data["rows"][0]) == {"concurrency", "requests", "direct_p50_ms", "direct_p95_ms", "front_p50_ms",
                                    "front_p95_ms", "tls", "added_ms", "ratio", "added_p95_ms", "ratio_p95"}
    assert data["rows"][2]["added_p95_ms"] == pytest.approx(7.0) and data["rows"][2]["ratio"] == pytest.approx(64 / 60)


def test_a_report_without_a_tls_row_says_why_and_one_without_the_front_has_no_table() -> None:
    text = _result(FrontCosts((FrontCost(1, 4, 1.0, 2.0, 1.0, 2.0),), None, "not measured: no certificate")).markdown()
    assert "TLS row: not measured: no certificate." in text and "| TLS |" not in text
    bare = _result(None)
    assert "gRPC front adds" not in bare.markdown() and bare.to_json()["front"] is None


# --- The throwaway certificate -------------------------------------------------------------------------------


def test_the_throwaway_certificate_is_one_the_guard_accepts_for_the_loopback(tmp_path: Path) -> None:
    from cryptography import x509

    from dermassist.guard.config import GuardConfig

    files = make_throwaway_tls(tmp_path / "tls")
    config = GuardConfig(audit_log=str(tmp_path / "audit.jsonl"), tls_cert=files.cert, tls_key=files.key)  # dates, key
    assert config.tls_cert == files.cert
    leaf, ca_in_chain = x509.load_pem_x509_certificates(files.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    assert ca_in_chain == ca
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.not_valid_before_utc < datetime.now(UTC) < leaf.not_valid_after_utc
    assert os.stat(files.key).st_mode & 0o777 == 0o600


# --- The interleaved measurement, against stand-ins ----------------------------------------------------------


class StandIn(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Answers ServerReady and ModelInfer at once, recording what it was asked."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.ready_calls = 0
        self.outputs: list[list[str]] = []
        self.lock = threading.Lock()

    def ServerReady(self, request, context):  # gRPC's method names
        with self.lock:
            self.ready_calls += 1
        return service_pb2.ServerReadyResponse(ready=True)

    def ModelInfer(self, request, context):
        if self.fail:
            context.abort(grpc.StatusCode.INTERNAL, "stand-in refuses")
        with self.lock:
            self.outputs.append([o.name for o in request.outputs])
        return service_pb2.ModelInferResponse(model_name=request.model_name)


def _serve(servicer: StandIn, credentials: grpc.ServerCredentials | None = None) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", credentials) if credentials else server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def direct() -> Iterator[tuple[StandIn, str]]:
    servicer = StandIn()
    server, address = _serve(servicer)
    yield servicer, address
    server.stop(None)


def test_each_level_sends_the_requests_each_way_after_connecting_every_client(direct) -> None:
    direct_servicer, direct_address = direct
    front_servicer = StandIn()
    server, front_address = _serve(front_servicer)
    try:
        row = measure_front_level(direct_address, front_address, [b"a", b"b"], concurrency=3, requests=7)
        counts = len(direct_servicer.outputs), len(front_servicer.outputs)
        at_least_one_each = measure_front_level(direct_address, front_address, [b"a"], concurrency=4, requests=1)
    finally:
        server.stop(None)
    assert (row.concurrency, row.requests, row.tls) == (3, 7, False)
    assert counts == (7, 7)
    assert direct_servicer.ready_calls == front_servicer.ready_calls == 3 + 4  # one connection per thread and path
    assert all(names == list(FRONT_OUTPUTS) for names in direct_servicer.outputs + front_servicer.outputs)
    assert at_least_one_each.requests == 4  # at least one pair per thread


def test_the_tls_row_dials_the_front_over_tls_with_the_throwaway_ca(direct, tmp_path: Path) -> None:
    files = make_throwaway_tls(tmp_path)
    credentials = grpc.ssl_server_credentials([(files.key.read_bytes(), files.cert.read_bytes())])
    front_servicer = StandIn()
    server, front_address = _serve(front_servicer, credentials)
    try:
        row = measure_front_level(direct[1], front_address, [b"a"], concurrency=1, requests=3, root_certificates=files.ca)
        with pytest.raises(BenchError, match="failed at concurrency 1"):  # plaintext to a TLS port: no answer
            measure_front_level(direct[1], front_address, [b"a"], concurrency=1, requests=1)
    finally:
        server.stop(None)
    assert row.tls and row.requests == 3 and len(front_servicer.outputs) == 3


def test_a_failing_front_is_a_bench_error_naming_it_and_the_fix(direct) -> None:
    server, front_address = _serve(StandIn(fail=True))
    try:
        with pytest.raises(BenchError, match=rf"a request to the plaintext front at {front_address} failed at concurrency "
                                             r"2: .*stand-in refuses; expected every request .* see the log above"):
            measure_front_level(direct[1], front_address, [b"a"], concurrency=2, requests=4)
    finally:
        server.stop(None)


def test_the_clients_run_in_a_process_of_their_own(direct) -> None:
    """The bench's process holds the guard: the clients' threads must not share its interpreter lock."""
    front_servicer = StandIn()
    server, front_address = _serve(front_servicer)
    try:
        with client_process() as clients:
            row = measure_in(clients, direct[1], front_address, [b"a"], concurrency=2, requests=4)
            child = clients.submit(os.getpid).result()
    finally:
        server.stop(None)
    assert child != os.getpid() and row.requests == 4 and len(front_servicer.outputs) == 4


def test_a_client_process_that_died_is_a_bench_error() -> None:
    class Dead(futures.Executor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
            future: futures.Future = futures.Future()
            future.set_exception(BrokenProcessPool("killed"))
            return future

    with pytest.raises(BenchError, match=r"client process of the front's measurement died at concurrency 4 \(killed\); "
                                         r"expected it to answer every row: .*run again"):
        measure_in(Dead(), "a:1", "b:2", [b"a"], 4, 1)
