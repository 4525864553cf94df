"""Pre-flight: a target that cannot be reached or is not ready is exit 2 with the reason, not a run of failures."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from tritonclient.grpc import service_pb2

from loadtest.errors import TargetUnreachable
from loadtest.preflight import check_target
from tests.support.triton import readiness_handler


@dataclass
class FakeTriton:
    """KServe's ServerReady and ModelReady, answering ``ready``; one plain and one TLS port."""

    ready: bool = True
    model_ready: bool = True
    plain: str = ""
    tls: str = ""
    ca: str = ""


@pytest.fixture
def fake_triton(tmp_path: Path) -> Iterator[FakeTriton]:
    import trustme

    fake = FakeTriton()
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    fake.ca = str(tmp_path / "ca.pem")
    authority.cert_pem.write_to_path(fake.ca)

    handler = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ServerReady": readiness_handler(service_pb2.ServerReadyRequest, service_pb2.ServerReadyResponse,
                                        lambda: fake.ready),
        "ModelReady": readiness_handler(service_pb2.ModelReadyRequest, service_pb2.ModelReadyResponse,
                                       lambda: fake.model_ready),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    fake.plain = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    credentials = grpc.ssl_server_credentials([(cert.private_key_pem.bytes(), b"".join(b.bytes() for b in cert.cert_chain_pems))])
    fake.tls = f"127.0.0.1:{server.add_secure_port('127.0.0.1:0', credentials)}"
    server.start()
    yield fake
    server.stop(None)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_host_is_exit_2_with_the_reason_and_locust_never_runs(monkeypatch, tmp_path: Path,
                                                                             caplog) -> None:
    """It was exit 1 ('requests failed') with only 'N unexpected failures (see report.html)'."""
    from loadtest import run

    monkeypatch.setattr(run, "run_locust", lambda *_: pytest.fail("Locust was started against an unreachable target"))
    host = f"127.0.0.1:{_closed_port()}"
    assert run.main(["--host", host, "--report-dir", str(tmp_path)]) == 2
    assert f"the load-test target {host} failed its readiness check (KServe ServerReady/ModelReady): UNAVAILABLE" in caplog.text
    assert "Connection refused" in caplog.text and "check --host / LOADTEST_HOST" in caplog.text


def test_tls_at_one_end_only_is_named(fake_triton: FakeTriton) -> None:
    with pytest.raises(TargetUnreachable, match="set LOADTEST_ROOT_CERTIFICATES to its ca.crt"):
        check_target(fake_triton.tls, timeout_s=5)  # plain client, TLS server
    with pytest.raises(TargetUnreachable, match="TLS at one end only"):
        check_target(fake_triton.plain, fake_triton.ca, timeout_s=5)  # TLS client, plain server
    check_target(fake_triton.tls, fake_triton.ca, timeout_s=5)
    check_target(fake_triton.plain, timeout_s=5)


def test_a_server_that_answers_but_is_not_ready_is_asked_again_until_the_deadline(fake_triton: FakeTriton) -> None:
    fake_triton.ready = False
    with pytest.raises(TargetUnreachable, match=r"did not become ready within 1 s: the server says it is not ready"):
        check_target(fake_triton.plain, timeout_s=1)
    fake_triton.ready, fake_triton.model_ready = True, False
    with pytest.raises(TargetUnreachable, match=r"the model dermassist is not ready \(ModelReady false\)"):
        check_target(fake_triton.plain, timeout_s=1)
