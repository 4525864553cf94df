"""Clients that keep a connection alive with pings during a long call (grpc-js, grpc-java and grpc-go with keepalive
on ping while no data flows) are answered: gRPC core's default server policy (a ping per 300 s without data, two
strikes) closed their connection with GOAWAY too_many_pings on the fourth ping, the call lost (the client told
RESOURCE_EXHAUSTED or UNAVAILABLE, the audit line "the client cancelled"; Node.js integrator audit, N1). A peer that
pings faster than the front allows is still sent GOAWAY (an HTTP/2 ping flood; review 23, M3)."""
from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from pathlib import Path

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dermassist.base.errors import ConfigError
from dermassist.guard.config import GuardConfig
from preprocess.contract import ENSEMBLE_NAME

from .loopback import front_before_stand_in

CALL_S = 6.0  # longer than four pings of the client below


async def _slow_infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.sleep(CALL_S)
    return service_pb2.ModelInferResponse(model_name=ENSEMBLE_NAME).SerializeToString()


@pytest.mark.slow
@pytest.mark.parametrize("idle_pings", [False, True], ids=["pings_in_calls", "pings_also_between_calls"])
def test_a_client_pinging_as_often_as_allowed_during_a_long_call_is_answered(
        tmp_path: Path, ham_jpeg: bytes, idle_pings: bool) -> None:
    """The front allows a ping per 0.5 s here (``grpc_min_ping_interval_ms``; 5 s by default): a client pinging every
    second through a 6 s call, and while idle before it."""
    audit = tmp_path / "audit.jsonl"
    options = [("grpc.keepalive_time_ms", 1000), ("grpc.keepalive_timeout_ms", 5000),
               ("grpc.http2.max_pings_without_data", 0),  # as grpc-js, -java and -go: ping on while nothing comes
               ("grpc.keepalive_permit_without_calls", int(idle_pings))]
    request = service_pb2.ModelInferRequest(model_name=ENSEMBLE_NAME, id="keepalive")
    image = request.inputs.add(name="IMAGE", datatype="BYTES", shape=[1, 1])
    image.contents.bytes_contents.append(ham_jpeg)
    config = GuardConfig(audit_log=str(audit), grpc_min_ping_interval_ms=500)
    with front_before_stand_in(audit, config, model_infer=_slow_infer) as served, \
            grpc.insecure_channel(served.address, options=options) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        if idle_pings:
            stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10)
            time.sleep(4.0)  # four idle pings on the open connection
        answer = stub.ModelInfer(request, timeout=60)
    assert answer.model_name == ENSEMBLE_NAME
    (line,) = [json.loads(text) for text in audit.read_text().splitlines()]
    assert line["status"] == "OK", line


def _frame(kind: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", 0) + payload


def test_a_peer_flooding_the_front_with_pings_is_sent_goaway(tmp_path: Path) -> None:
    """1,000 pings back to back on one connection (raw HTTP/2): the front's own options end it with GOAWAY."""
    audit = tmp_path / "audit.jsonl"
    with front_before_stand_in(audit) as served:
        host, port = served.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as peer:
            peer.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0) + _frame(4, 1))
            peer.sendall(_frame(6, 0, b"12345678") * 1000)
            kinds, data = [], b""
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and 7 not in kinds:
                try:
                    chunk = peer.recv(1 << 16)
                except (TimeoutError, ConnectionResetError):
                    break
                if not chunk:
                    break
                data += chunk
                while len(data) >= 9 and len(data) >= 9 + int.from_bytes(data[:3], "big"):
                    kinds.append(data[3])
                    data = data[9 + int.from_bytes(data[:3], "big"):]
    assert 7 in kinds, f"no GOAWAY among {len(kinds)} frames"  # 7: GOAWAY (gRPC had acked every ping before it)


@pytest.mark.parametrize("value", [0, -1, True, 2**31])
def test_the_ping_interval_must_be_a_positive_whole_number_of_milliseconds(value: object) -> None:
    with pytest.raises(ConfigError, match="--grpc-min-ping-interval-ms / DERMASSIST_GRPC_MIN_PING_INTERVAL_MS must be"):
        GuardConfig(grpc_min_ping_interval_ms=value)  # type: ignore[arg-type]
