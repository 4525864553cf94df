"""Fault injection on the embedded server behind the guard: kill -9 each Python stub under load, hang one
with SIGSTOP, kill tritonserver itself. Readiness must turn false within 2 s, the pipeline must serve
again within 15 s, with the SDK's retries no request is lost, without them only requests in flight fail,
and every request leaves exactly one audit line."""
from __future__ import annotations

import collections
import logging
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from dermassist.base.server_config import GRPC_ADMIN_HEADER
from dermassist.guard.background import BackgroundGuard
from dermassist.guard.config import GuardConfig
from dermassist.guard.stubs import process_state
from dermassist_client import DermAssistClient
from preprocess.contract import CROP_MODEL, ENSEMBLE_NAME, PREPARE_MODEL
from tests.support.guard import audit_lines, public_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOT_READY_WITHIN_S = 2.0
SERVED_AGAIN_WITHIN_S = 15.0
LOAD_THREADS = 2


@pytest.fixture(scope="module")
def healing(tiny_repository: Path, tmp_path_factory) -> BackgroundGuard:
    """A guard with its own Triton (reload recovery; enough reloads allowed for every kill of this module)."""
    audit = tmp_path_factory.mktemp("fault_audit") / "audit.jsonl"
    config = GuardConfig(audit_log=str(audit), max_reloads=50, canary_interval_s=2.0)
    with BackgroundGuard(public_config(tiny_repository), config) as guard:
        yield guard


@dataclass
class Call:
    """One request a load thread made."""

    thread: int
    started: float
    ended: float
    request_id: str
    error: str | None
    probabilities: dict | None = None


class Load:
    """Threads sending one image after another until stopped, each with its own client."""

    def __init__(self, address: str, image: bytes, retries: int | None) -> None:
        self.address, self.image, self.retries = address, image, retries
        self.calls: list[Call] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(k,)) for k in range(LOAD_THREADS)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _run(self, k: int) -> None:
        if self.retries is None:
            self._run_raw(k)
            return
        with DermAssistClient(self.address, retries=self.retries, timeout=60, backoff_max_s=1.0) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    result = client.analyze(self.image)
                    self._record(Call(k, started, time.monotonic(), result.request_id, None, dict(result.probabilities)))
                except Exception as e:  # recorded, judged by the test
                    self._record(Call(k, started, time.monotonic(), "", f"{type(e).__name__}: {e}"))

    def _run_raw(self, k: int) -> None:
        client = grpcclient.InferenceServerClient(self.address)
        i = 0
        try:
            while not self._stop.is_set():
                request_id, i = f"raw-{k}-{i}", i + 1
                tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
                tensor.set_data_from_numpy(np.array([[self.image]], dtype=object))
                started = time.monotonic()
                try:
                    client.infer(ENSEMBLE_NAME, [tensor], request_id=request_id, client_timeout=10)
                    self._record(Call(k, started, time.monotonic(), request_id, None))
                except Exception as e:
                    self._record(Call(k, started, time.monotonic(), request_id, str(e)))
        finally:
            client.close()

    def count_after(self, moment: float) -> int:
        """Successful calls that started after ``moment``."""
        with self._lock:
            return sum(1 for c in self.calls if c.error is None and c.started > moment)


def _stub_of(guard: BackgroundGuard, model: str):
    return next(s for s in guard.guard.stubs if s.model == model)


def _heal_after(guard: BackgroundGuard, moment: float, fault_count: int, timeout_s: float = 90.0) -> tuple[float, float]:
    """Seconds from ``moment`` until readiness turned false, and until it came back."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        recoveries = guard.guard.recoveries
        if len(recoveries) > fault_count and recoveries[-1].ready_at is not None and guard.guard.readiness.ready:
            break
        time.sleep(0.05)
    history = list(guard.guard.readiness.history)
    down = next(t for t, ready, _ in history if not ready and t >= moment)
    up = next(t for t, ready, _ in history if ready and t > down)
    return down - moment, up - moment


def _wait_for_load(load: Load, moment: float, calls: int = 2, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while load.count_after(moment) < calls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert load.count_after(moment) >= calls, "the load threads are not being served"


def test_tritons_own_ports_refuse_inference_without_its_key_and_its_shared_memory_is_private(
        healing, ham_jpeg: bytes) -> None:
    """Privacy audit, M5 and M4: any local user found tritonserver's loopback ports (in /proc/net/tcp) and had an
    answer around the front, with no audit line; and read the decoded pixels of the last requests in its shared-memory
    regions (mode 0644). Behind the guard, inference there needs the guard's own key, and the regions are 0600."""
    import os
    import stat

    import grpc
    from tritonclient.grpc import service_pb2_grpc

    from dermassist.base.server import SHM_DIR
    from dermassist.base.server_config import GRPC_ADMIN_HEADER
    from dermassist.guard.canary import canary_request
    from dermassist_client import DermAssistClient

    with DermAssistClient(healing.grpc_address) as client:
        assert client.analyze(ham_jpeg).top_class is not None  # through the front: served and audited
    triton = healing.guard.triton_config
    with grpc.insecure_channel(triton.grpc_address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(canary_request("around-the-front"), timeout=30)
        assert "This protocol is restricted" in str(refused.value.details())
        answer = stub.ModelInfer(canary_request("the-guards-own"), timeout=30,
                                 metadata=((GRPC_ADMIN_HEADER, triton.admin_key),))
        assert answer.model_name == "dermassist"
    regions = sorted(SHM_DIR.glob(f"{healing.guard.server.shm_prefix}*"))
    assert regions, "the Python backend's regions carry the run's prefix"
    assert {path.name: oct(stat.S_IMODE(os.stat(path).st_mode)) for path in regions} == {
        path.name: oct(0o600) for path in regions}


def test_killing_each_stub_under_load_loses_no_request_with_the_sdks_retries(healing, ham_jpeg: bytes) -> None:
    with DermAssistClient(healing.grpc_address) as client:
        expected = dict(client.analyze(ham_jpeg).probabilities)
    timings = {}
    with Load(healing.grpc_address, ham_jpeg, retries=10) as load:
        _wait_for_load(load, 0.0)
        for model in sorted({s.model for s in healing.guard.stubs}):
            stub, faults = _stub_of(healing, model), len(healing.guard.recoveries)
            killed = time.monotonic()
            os.kill(stub.pid, signal.SIGKILL)
            timings[model] = _heal_after(healing, killed, faults)
            _wait_for_load(load, timings[model][1] + killed)
    assert len(timings) >= 4  # prepare, segmenter, crop, classifier (and any later Python step)
    failed = [c for c in load.calls if c.error]
    assert failed == [], failed[:3]
    assert all(c.probabilities == pytest.approx(expected, abs=1e-5) for c in load.calls)
    for model, (down, up) in timings.items():
        assert down <= NOT_READY_WITHIN_S, (model, down)
        assert up <= SERVED_AGAIN_WITHIN_S, (model, up)
    assert [r.action for r in healing.guard.recoveries[-len(timings):]] == [f"reload {m}" for m in sorted(timings)]


def test_without_retries_only_requests_in_flight_fail_and_each_leaves_one_audit_line(healing, ham_jpeg) -> None:
    with Load(healing.grpc_address, ham_jpeg, retries=None) as load:
        _wait_for_load(load, 0.0)
        faults = len(healing.guard.recoveries)
        killed = time.monotonic()
        os.kill(_stub_of(healing, CROP_MODEL).pid, signal.SIGKILL)
        down, up = _heal_after(healing, killed, faults)
        _wait_for_load(load, killed + up, calls=4)
    assert down <= NOT_READY_WITHIN_S and up <= SERVED_AGAIN_WITHIN_S, (down, up)
    failed = [c for c in load.calls if c.error]
    assert all(c.started < killed + down for c in failed), failed  # in flight when readiness turned false
    assert max(collections.Counter(c.thread for c in failed).values(), default=0) <= 1
    assert all("is not healthy" in c.error or "recovering" in c.error for c in failed), failed
    lines = collections.defaultdict(list)
    for line in audit_lines(healing.config.audit_log):
        lines[line["request_id"]].append(line)
    for call in load.calls:
        assert len(lines[call.request_id]) == 1, (call, lines[call.request_id], len(load.calls), len(lines))
        (line,) = lines[call.request_id]
        assert line["status"] == ("OK" if call.error is None else "UNAVAILABLE"), (call, line)


def test_a_hung_stub_is_found_killed_and_replaced(healing, ham_jpeg: bytes) -> None:
    with Load(healing.grpc_address, ham_jpeg, retries=None) as load:
        _wait_for_load(load, 0.0)
        stub, faults = _stub_of(healing, PREPARE_MODEL), len(healing.guard.recoveries)
        stopped = time.monotonic()
        os.kill(stub.pid, signal.SIGSTOP)
        down, up = _heal_after(healing, stopped, faults)
        _wait_for_load(load, stopped + up, calls=4)
    assert down <= NOT_READY_WITHIN_S and up <= SERVED_AGAIN_WITHIN_S, (down, up)
    assert process_state(stub.pid) in (None, "Z")  # the hung process was killed, not left behind
    assert "stopped" in healing.guard.recoveries[-1].reason
    failed = [c for c in load.calls if c.error]
    assert all(c.started < stopped + down for c in failed), failed


def test_a_dead_tritonserver_is_restarted(healing, ham_jpeg: bytes, caplog) -> None:
    faults = len(healing.guard.recoveries)
    killed = time.monotonic()
    os.kill(healing.guard.server.process.pid, signal.SIGKILL)
    with caplog.at_level(logging.WARNING, logger="dermassist.guard.guard"):
        down, up = _heal_after(healing, killed, faults, timeout_s=240)
    assert down <= NOT_READY_WITHIN_S
    assert healing.guard.recoveries[-1].action == "restart" and healing.guard.reloads == 0
    # the dead server's own log, deleted with its run folder by the restart, reached the guard's log first
    (last_words,) = [r.getMessage() for r in caplog.records if "the last lines of tritonserver's log" in r.getMessage()]
    assert re.search(r"^[IWE]\d{4} ", last_words, re.MULTILINE), last_words  # Triton's own lines (I1204 ...)
    with DermAssistClient(healing.grpc_address) as client:
        assert client.analyze(ham_jpeg).probabilities


def test_tritonserver_runs_with_a_key_of_its_own_and_the_front_swaps_the_operators_key_for_it(healing) -> None:
    """tritonserver's command line is readable by every local user: the operator's key must not be on it."""
    operator = healing.guard.admin_key
    internal = healing.guard.internal_admin_key
    assert operator and internal and operator != internal
    cmdline = Path(f"/proc/{healing.guard.server.pid}/cmdline").read_bytes()
    assert operator.encode() not in cmdline and internal.encode() in cmdline
    client = grpcclient.InferenceServerClient(healing.grpc_address)
    try:
        assert client.get_inference_statistics(headers={GRPC_ADMIN_HEADER: operator}).model_stats
        for key in (internal, operator + "x"):
            with pytest.raises(InferenceServerException, match="admin key") as info:
                client.get_inference_statistics(headers={GRPC_ADMIN_HEADER: key})
            assert "PERMISSION_DENIED" in str(info.value.status())
    finally:
        client.close()
