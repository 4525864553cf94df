"""The front holds at most GuardConfig.max_inflight_mib of inference requests at once (fuzz audit 7: three 250 MiB
calls held 3.6 GB in the guard, with no bound): a call that would pass it is refused UNAVAILABLE, which clients
retry, audited and counted, and the budget is given back when each call ends."""
from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dermassist.base.errors import ConfigError
from dermassist.guard.config import GuardConfig
from dermassist.guard.statuses import over_inflight_budget
from tests.support.guard import audit_lines

from .loopback import front_before_stand_in
from .test_front_requests import image_request

MIB = 1024 * 1024


def test_the_budget_lets_a_call_in_up_to_it_and_says_what_it_holds_past_it() -> None:
    assert over_inflight_budget(0, 2 * MIB, 2) is None  # exactly the budget
    assert over_inflight_budget(MIB, MIB, 2) is None
    assert over_inflight_budget(0, 5 * MIB, 2) is None  # alone in flight: a request of max_request_mib always passes
    said = over_inflight_budget(MIB + 1, MIB, 2)
    assert said is not None and said.startswith("DermAssist holds 1 MiB of requests in flight and this one of 1.0 MiB "
                                                "would pass its limit of 2 MiB (--max-inflight-mib); retry shortly")


def test_the_budget_is_a_whole_number_of_mib() -> None:
    assert GuardConfig().max_inflight_mib == 1024
    assert GuardConfig(max_request_mib=2047, max_inflight_mib=1).max_inflight_mib == 1
    for wrong in (0, True, 1.5, 2**20 + 1):
        with pytest.raises(ConfigError, match="--max-inflight-mib / DERMASSIST_MAX_INFLIGHT_MIB must be a whole number"):
            GuardConfig(max_inflight_mib=wrong)  # type: ignore[arg-type]


def test_a_call_past_the_budget_is_refused_unavailable_audited_and_counted(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    release = threading.Event()
    arrived = threading.Event()

    async def slow_answer(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        import asyncio

        arrived.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        request = service_pb2.ModelInferRequest.FromString(raw)
        return service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id).SerializeToString()

    big = image_request([1, 1], [b"\xff\xd8" + b"\0" * (600 * 1024)])  # 0.6 MiB: two do not fit 1 MiB
    big.id = "first"
    second = image_request([1, 1], [b"\xff\xd8" + b"\0" * (600 * 1024)])
    second.id = "second"
    config = GuardConfig(audit_log=str(audit), max_request_mib=1, max_inflight_mib=1)
    with front_before_stand_in(audit, config, model_infer=slow_answer) as served, \
            grpc.insecure_channel(served.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        first = stub.ModelInfer.future(big, timeout=30)
        assert arrived.wait(10)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(second, timeout=30)
        release.set()
        assert first.result().id == "first"
        third = stub.ModelInfer(second, timeout=30)  # the first's bytes were given back
        with urllib.request.urlopen(f"http://{served.http_address}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert served.front.bytes_in_flight == 0
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "would pass its limit of 1 MiB (--max-inflight-mib); retry shortly" in refused.value.details()
    assert third.id == "second"
    lines = {(line["request_id"], line["status"]) for line in audit_lines(audit)}
    assert lines == {("first", "OK"), ("second", "UNAVAILABLE"), ("second", "OK")}
    assert "dermassist_over_inflight_budget_total 1" in metrics
