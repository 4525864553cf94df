"""Clients that keep a connection alive with pings during a long call (grpc-js, grpc-java and grpc-go with keepalive
on ping while no data flows) are answered: gRPC core's default server policy (a ping per 300 s without data, two
strikes) closed their connection with GOAWAY too_many_pings on the fourth ping, the call lost (the client told
RESOURCE_EXHAUSTED or UNAVAILABLE, the audit line "the client cancelled"; Node.js integrator audit, N1)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dermassist.guard.config import GuardConfig
from preprocess.contract import ENSEMBLE_NAME

from .loopback import front_before_stand_in

CALL_S = 6.0  # longer than four pings of the client below


async def _slow_infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.sleep(CALL_S)
    return service_pb2.ModelInferResponse(model_name=ENSEMBLE_NAME).SerializeToString()


@pytest.mark.slow
@pytest.mark.parametrize("idle_pings", [False, True], ids=["pings_in_calls", "pings_also_between_calls"])
def test_a_client_pinging_every_second_during_a_long_call_is_answered(
        tmp_path: Path, ham_jpeg: bytes, idle_pings: bool) -> None:
    audit = tmp_path / "audit.jsonl"
    options = [("grpc.keepalive_time_ms", 1000), ("grpc.keepalive_timeout_ms", 5000),
               ("grpc.http2.max_pings_without_data", 0),  # as grpc-js, -java and -go: ping on while nothing comes
               ("grpc.keepalive_permit_without_calls", int(idle_pings))]
    request = service_pb2.ModelInferRequest(model_name=ENSEMBLE_NAME, id="keepalive")
    image = request.inputs.add(name="IMAGE", datatype="BYTES", shape=[1, 1])
    image.contents.bytes_contents.append(ham_jpeg)
    with front_before_stand_in(audit, model_infer=_slow_infer) as served, \
            grpc.insecure_channel(served.address, options=options) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        if idle_pings:
            stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10)
            grpc.channel_ready_future(channel).result(timeout=10)
            import time

            time.sleep(4.0)  # four idle pings on the open connection
        answer = stub.ModelInfer(request, timeout=60)
    assert answer.model_name == ENSEMBLE_NAME
    (line,) = [json.loads(text) for text in audit.read_text().splitlines()]
    assert line["status"] == "OK", line


def test_the_fronts_ping_policy_lets_clients_ping_during_calls_and_between_them() -> None:
    options = dict(GuardConfig().server_options())
    assert options["grpc.http2.max_ping_strikes"] == 0  # no GOAWAY for pings, however often
    assert options["grpc.keepalive_permit_without_calls"] == 1
