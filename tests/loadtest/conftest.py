"""A stand-in DermAssist for the load test: KServe's ServerReady, ModelReady and ModelInfer over plain gRPC, TLS and
mutual TLS (a client certificate required), with answers the test chooses."""
from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock

import grpc
import pytest
from tritonclient.grpc import service_pb2

from dermassist.base.server_config import GRPC_ADMIN_HEADER
from tests.support.triton import readiness_handler

CLIENT_NAME = "loadtest-client"


@dataclass
class FakeDermAssist:
    """Addresses of one server on three ports; the answers it gives; what it saw."""

    plain: str = ""
    tls: str = ""
    mtls: str = ""  # requires a client certificate its client CA signed
    ca: str = ""  # signed the server's certificate
    client_key: str = ""  # a client certificate the client CA signed (common name CLIENT_NAME)
    client_cert: str = ""
    stranger_key: str = ""  # a client certificate of another CA
    stranger_cert: str = ""
    assessable: bool = True  # every image's ASSESSABLE
    refer_every: int = 2  # REFER of every n-th image of an answer (0: none)
    unavailable_every: int = 0  # answer every n-th ModelInfer with UNAVAILABLE (0: never)
    ready: bool = True
    delay_s: float = 0.0  # how long each ModelInfer takes
    first_delays: list[float] = field(default_factory=list)  # how long the first ones take, in order (then delay_s)
    infer_calls: int = 0
    unavailable_sent: int = 0
    clients: set[str] = field(default_factory=set)  # common names of the client certificates of ModelInfer calls
    admin_key: str = ""  # the key its ModelStatistics takes (empty: it has no statistics API, UNIMPLEMENTED)
    lock: Lock = field(default_factory=Lock)

    def statistics(self, request: service_pb2.ModelStatisticsRequest,
                   context: grpc.ServicerContext) -> service_pb2.ModelStatisticsResponse:
        """ModelStatistics behind the admin key, as the guard's front serves it (a wrong key: PERMISSION_DENIED)."""
        if not self.admin_key:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        if dict(context.invocation_metadata()).get(GRPC_ADMIN_HEADER) != self.admin_key:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "the admin key was refused")
        return service_pb2.ModelStatisticsResponse(model_stats=[service_pb2.ModelStatistics(name=request.name)])

    def infer(self, request: service_pb2.ModelInferRequest, context: grpc.ServicerContext) -> service_pb2.ModelInferResponse:
        """ModelInfer: one answer row per IMAGE row, PROBABILITIES uniform over the 8 classes."""
        with self.lock:
            self.infer_calls += 1
            delay_s = (self.first_delays[self.infer_calls - 1] if self.infer_calls <= len(self.first_delays)
                       else self.delay_s)
            for name in context.auth_context().get("x509_common_name", []):
                self.clients.add(name.decode())
            if self.unavailable_every and self.infer_calls % self.unavailable_every == 0:
                self.unavailable_sent += 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "DermAssist is not ready: recovering by reload lesion_crop")
        if delay_s:
            time.sleep(delay_s)
        rows = int(request.inputs[0].shape[0])
        response = service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)
        outputs = {
            "PROBABILITIES": ("FP32", [rows, 8], struct.pack(f"<{rows * 8}f", *[0.125] * (rows * 8))),
            "ASSESSABLE": ("BOOL", [rows, 1], bytes([self.assessable] * rows)),
            "REFER": ("BOOL", [rows, 1], bytes(int(bool(self.refer_every) and i % self.refer_every == 0)
                                               for i in range(rows))),
        }
        for name, (datatype, shape, raw) in outputs.items():
            response.outputs.add(name=name, datatype=datatype, shape=shape)
            response.raw_output_contents.append(raw)
        return response


@pytest.fixture
def fake_dermassist(tmp_path: Path) -> Iterator[FakeDermAssist]:
    """The stand-in server, started on free loopback ports; its certificates under ``tmp_path``."""
    import trustme

    fake = FakeDermAssist()
    authority, client_authority, stranger_authority = trustme.CA(), trustme.CA(), trustme.CA()
    server_cert = authority.issue_cert("127.0.0.1", "localhost")
    fake.ca = str(tmp_path / "ca.crt")
    authority.cert_pem.write_to_path(fake.ca)
    for prefix, issuer in (("client", client_authority), ("stranger", stranger_authority)):
        cert = issuer.issue_cert(CLIENT_NAME, common_name=CLIENT_NAME)
        key_path, cert_path = tmp_path / f"{prefix}.key", tmp_path / f"{prefix}.crt"
        cert.private_key_pem.write_to_path(str(key_path))
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        setattr(fake, f"{prefix}_key", str(key_path))
        setattr(fake, f"{prefix}_cert", str(cert_path))

    handler = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ServerReady": readiness_handler(service_pb2.ServerReadyRequest, service_pb2.ServerReadyResponse,
                                        lambda: fake.ready),
        "ModelReady": readiness_handler(service_pb2.ModelReadyRequest, service_pb2.ModelReadyResponse,
                                       lambda: fake.ready),
        "ModelStatistics": grpc.unary_unary_rpc_method_handler(
            fake.statistics, request_deserializer=service_pb2.ModelStatisticsRequest.FromString,
            response_serializer=service_pb2.ModelStatisticsResponse.SerializeToString),
        "ModelInfer": grpc.unary_unary_rpc_method_handler(
            fake.infer, request_deserializer=service_pb2.ModelInferRequest.FromString,
            response_serializer=service_pb2.ModelInferResponse.SerializeToString),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    pair = [(server_cert.private_key_pem.bytes(), b"".join(b.bytes() for b in server_cert.cert_chain_pems))]
    fake.plain = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    fake.tls = f"127.0.0.1:{server.add_secure_port('127.0.0.1:0', grpc.ssl_server_credentials(pair))}"
    mutual = grpc.ssl_server_credentials(pair, root_certificates=client_authority.cert_pem.bytes(),
                                         require_client_auth=True)
    fake.mtls = f"127.0.0.1:{server.add_secure_port('127.0.0.1:0', mutual)}"
    server.start()
    yield fake
    server.stop(None)
