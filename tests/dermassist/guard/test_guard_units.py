"""The guard's pieces without a server: audit records, canary, stub scan, health answers, settings."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from dermassist.base.bytes_tensor import MalformedTensor
from dermassist.base.bytes_tensor import decode as bytes_elements
from dermassist.base.bytes_tensor import encode as bytes_tensor
from dermassist.base.errors import ConfigError
from dermassist.base.server import locate_triton, redact, server_command
from dermassist.base.server_config import GRPC_ADMIN_HEADER, RESTRICTED_APIS, ServerConfig
from dermassist.guard.audit import AuditLog, answer_rows, build_record, request_images
from dermassist.guard.canary import canary_image, canary_request, check_canary_answer
from dermassist.guard.config import GuardConfig
from dermassist.guard.faults import models_in_message
from dermassist.guard.front import finished_hashes, forwarded_metadata, forwarded_status, has_admin_key
from dermassist.guard.health import Readiness, health_answer
from dermassist.guard.requests import (
    AUDITED_OUTPUTS,
    DEFAULT_OUTPUTS,
    request_refusal,
    with_audited_outputs,
    with_default_outputs,
    without_outputs,
)
from dermassist.guard.statuses import DEADLINE_SLACK_S, cancellation
from dermassist.guard.stubs import STUB_NAME, broken_stubs, find_stubs
from preprocess.contract import CLASS_CODES, NUM_CLASSES
from preprocess.decode import decode_image


def _request(images: list[bytes], raw: bool = True) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="dermassist", id="r-1")
    tensor = request.inputs.add(name="IMAGE", datatype="BYTES", shape=[len(images), 1])
    if raw:
        request.raw_input_contents.append(bytes_tensor(images))
    else:
        tensor.contents.bytes_contents.extend(images)
    return request


def _response(probs: np.ndarray, refer: list[bool] | None = None) -> service_pb2.ModelInferResponse:
    response = service_pb2.ModelInferResponse(model_name="dermassist", model_version="1", id="r-1")
    response.outputs.add(name="PROBABILITIES", datatype="FP32", shape=list(probs.shape))
    response.raw_output_contents.append(probs.astype(np.float32).tobytes())
    if refer is not None:
        response.outputs.add(name="REFER", datatype="BOOL", shape=[len(refer), 1])
        response.raw_output_contents.append(np.array(refer, np.bool_).tobytes())
    return response


@pytest.mark.parametrize("raw", [True, False])
def test_audit_hashes_each_image_as_sent(raw: bool, ham_jpeg: bytes) -> None:
    images = [ham_jpeg, b"\x89PNG not really", b""]
    entries = request_images(_request(images, raw))
    assert [e["sha256"] for e in entries] == [hashlib.sha256(i).hexdigest() for i in images]
    assert [e["bytes"] for e in entries] == [len(i) for i in images]


def test_bytes_tensor_split_refuses_lengths_past_the_end() -> None:
    assert [bytes(e) for e in bytes_elements(bytes_tensor([b"ab", b"", b"cde"]))] == [b"ab", b"", b"cde"]
    with pytest.raises(MalformedTensor, match="runs past the end"):
        bytes_elements(struct.pack("<I", 10) + b"abc")
    with pytest.raises(MalformedTensor, match="cut"):
        bytes_elements(b"\x01\x00")


def test_audit_reads_top_class_and_triage_flags_per_row() -> None:
    probs = np.full((2, NUM_CLASSES), 0.01, np.float32)
    probs[0, 3], probs[1, 4] = 0.9, 0.9
    rows = answer_rows(_response(probs, refer=[True, False]))
    assert rows == [{"top_class": CLASS_CODES[3], "refer": True}, {"top_class": CLASS_CODES[4], "refer": False}]
    assert answer_rows(service_pb2.ModelInferResponse()) == []


def test_audit_line_holds_no_image_bytes_and_names_the_outcome(tmp_path: Path, ham_jpeg: bytes) -> None:
    probs = np.eye(NUM_CLASSES, dtype=np.float32)[[1]]
    record = build_record(_request([ham_jpeg]), request_id="r-1", peer="ipv4:10.0.0.9:5000", client="clinic-a",
                          versions={"dermassist": "1"}, status="OK", error=None, latency_ms=12.3456,
                          response=_response(probs))
    log = AuditLog(tmp_path / "audit" / "trail.jsonl")
    log.write(record)
    log.write(build_record(None, request_id="x" * 500, peer="p", client=None, versions={}, status="INVALID_ARGUMENT",
                           error="e" * 1000, latency_ms=1.0))
    log.close()
    lines = (tmp_path / "audit" / "trail.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["images"] == [{"sha256": hashlib.sha256(ham_jpeg).hexdigest(), "bytes": len(ham_jpeg),
                                "top_class": CLASS_CODES[1]}]
    assert (first["status"], first["model"], first["model_version"], first["latency_ms"]) == ("OK", "dermassist", "1", 12.346)
    assert first["time"].endswith("Z") and first["client"] == "clinic-a"
    assert len(second["request_id"]) == 128 and len(second["error"]) == 300
    text = "\n".join(lines)
    for window in (ham_jpeg[1000:1024], ham_jpeg[:64]):
        assert base64.b64encode(window).decode() not in text and window.hex() not in text
    assert len(lines[0]) < 1000


def test_canary_is_a_valid_bmp_with_a_dark_lesion() -> None:
    rgb = decode_image(canary_image())
    assert rgb.shape == (64, 64, 3)
    assert rgb[32, 32].mean() < 80 < 150 < rgb[2, 2].mean()
    request = canary_request("c-1")
    assert request.model_name == "dermassist" and [o.name for o in request.outputs] == ["PROBABILITIES"]


def test_canary_answer_must_be_a_probability_vector() -> None:
    good = np.full((1, NUM_CLASSES), 1.0 / NUM_CLASSES, np.float32)
    assert check_canary_answer(_response(good)) is None
    assert "not a probability vector" in check_canary_answer(_response(good * 2))
    assert "values" in check_canary_answer(_response(good[:, :3]))
    assert "no PROBABILITIES" in check_canary_answer(service_pb2.ModelInferResponse())


def test_stub_names_in_tritons_error_messages() -> None:
    message = "in ensemble 'dermassist', Stub process 'lesion_crop_0_0' is not healthy."
    assert models_in_message(message) == ("lesion_crop",)
    both = "Stub process 'prepare_0_1' is not healthy; Stub process 'prepare_0_0' is not healthy"
    assert models_in_message(both) == ("prepare",)
    assert models_in_message("deadline exceeded") == ()


def _fake_stub(tmp_path: Path, model: str) -> subprocess.Popen:
    """A child process whose argv looks like a Python-backend stub's (a Python script that sleeps)."""
    script = tmp_path / model / "1" / "model.py"
    script.parent.mkdir(parents=True)
    script.write_text("import time\ntime.sleep(60)\n")
    argv = [str(tmp_path / STUB_NAME), str(script), "shm_region", "1048576", "1048576", str(os.getpid()),
            "/backends/python", "336", f"{model}_0_0", "DEFAULT"]
    return subprocess.Popen(argv, executable=sys.executable)


def test_stub_scan_finds_children_and_tells_stopped_and_dead_ones(tmp_path: Path) -> None:
    proc = _fake_stub(tmp_path, "lesion_crop")
    try:
        deadline = time.monotonic() + 10
        while not (stubs := find_stubs(os.getpid())) and time.monotonic() < deadline:
            time.sleep(0.05)
        (stub,) = stubs
        assert (stub.pid, stub.model, stub.instance) == (proc.pid, "lesion_crop", "lesion_crop_0_0")
        assert broken_stubs(stubs) == []
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(0.2)
        assert broken_stubs(stubs) == [(stub, "stopped")]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert broken_stubs(stubs) == [(stub, "exited")]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_health_answers_tell_the_reason() -> None:
    readiness = Readiness()
    readiness.set_not_ready("stub process lesion_crop_0_0 (pid 7) exited")
    assert health_answer("GET", "/v2/health/live", readiness).startswith(b"HTTP/1.1 200")
    answer = health_answer("GET", "/v2/health/ready", readiness)
    assert answer.startswith(b"HTTP/1.1 503") and b"lesion_crop_0_0" in answer
    readiness.set_ready()
    assert health_answer("GET", "/v2/health/ready", readiness).startswith(b"HTTP/1.1 200")
    assert health_answer("GET", "/v2/models/dermassist/ready", readiness).startswith(b"HTTP/1.1 200")
    assert health_answer("GET", "/v2/models/dermassist/infer", readiness).startswith(b"HTTP/1.1 404")
    assert health_answer("GET", "/v2/models/prepare/ready", readiness).startswith(b"HTTP/1.1 404")
    readiness.set_not_ready("stopping")
    assert health_answer("GET", "/v2/models/dermassist/ready", readiness).startswith(b"HTTP/1.1 503")
    assert health_answer("POST", "/v2/health/ready", readiness).startswith(b"HTTP/1.1 405")


def test_readiness_lets_requests_wait_for_healing() -> None:
    async def main() -> tuple[bool, bool]:
        readiness = Readiness()
        timed_out = await readiness.wait(0.05)
        asyncio.get_running_loop().call_later(0.05, readiness.set_ready)
        return timed_out, await readiness.wait(5)

    assert asyncio.run(main()) == (False, True)


def test_the_audit_waits_for_image_hashes_without_stopping_the_event_loop() -> None:
    """The hash of up to 32 images may still run when a call ends; other calls and the health endpoint share the loop."""
    import concurrent.futures
    import threading

    released = threading.Event()

    def hash_images() -> str:
        return "hashed after the loop ran" if released.wait(10) else "the loop was blocked"

    async def main() -> str:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            hashing = pool.submit(hash_images)
            asyncio.get_running_loop().call_soon(released.set)  # runs only if the loop is free while we wait
            return await finished_hashes(hashing)

    assert asyncio.run(main()) == "hashed after the loop ran"
    assert asyncio.run(finished_hashes(None)) is None


def test_admin_key_from_environment_file_or_random(tmp_path: Path) -> None:
    key_file = tmp_path / "admin.key"
    key_file.write_text("from-a-file\n")
    env = {"DERMASSIST_REPOSITORY": str(tmp_path), "DERMASSIST_ADMIN_KEY": "from-env"}
    assert ServerConfig.resolve({}, env).admin_key == "from-env"
    from_file = ServerConfig.resolve({"repository": tmp_path}, {"DERMASSIST_ADMIN_KEY_FILE": str(key_file)})
    assert from_file.admin_key == "from-a-file" and from_file.grpc_admin_headers == {GRPC_ADMIN_HEADER: "from-a-file"}
    one, two = ServerConfig(repository=tmp_path), ServerConfig(repository=tmp_path)
    assert one.admin_key_is_generated and len(one.admin_key) >= 32 and one.admin_key != two.admin_key
    assert "admin_key=" not in repr(one)
    with pytest.raises(ConfigError, match="must not contain"):
        ServerConfig(repository=tmp_path, admin_key="a,b")
    with pytest.raises(ConfigError, match="cannot read the admin key file"):
        ServerConfig(repository=tmp_path, admin_key_file=tmp_path / "missing")


def test_command_line_restricts_admin_apis_and_logs_redact_the_key(tmp_path: Path) -> None:
    config = ServerConfig(repository=tmp_path, admin_key="s3cret", model_control_mode="explicit", metrics_host="0.0.0.0")
    cmd = server_command(locate_triton(), config, tmp_path)
    apis = ",".join(RESTRICTED_APIS)
    assert f"--grpc-restricted-protocol={apis}:admin-key=s3cret" in cmd
    assert f"--http-restricted-api={apis}:admin-key=s3cret" in cmd
    assert {"--model-control-mode=explicit", "--load-model=*", "--metrics-address=0.0.0.0"} <= set(cmd)
    assert not any("s3cret" in arg for arg in redact(cmd))
    for api in ("inference", "health", "metadata"):
        assert api not in RESTRICTED_APIS


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"tls_cert": "CERT"}, "go together"),
    ({"tls_client_ca": "CERT"}, "needs tls_cert"),
    ({"tls_cert": "/nope.pem", "tls_key": "/nope.key"}, "does not exist"),
    ({"recovery": "pray"}, "--recovery / DERMASSIST_RECOVERY must be one of"),
    ({"canary_timeout_s": 0}, "--canary-timeout-s / DERMASSIST_CANARY_TIMEOUT_S must be a positive"),
    ({"hold_s": 0}, r"^DERMASSIST_HOLD_S must be a positive"),
    ({"audit_log": ""}, "cannot be turned off"),
    ({"max_request_mib": 0}, "--max-request-mib / DERMASSIST_MAX_REQUEST_MIB must be a whole number of MiB from 1 to 2047"),
    ({"max_request_mib": 4096}, "got 4096"),
])
def test_guard_settings_are_validated(tmp_path: Path, kwargs: dict, message: str) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    kwargs = {k: (str(cert) if v == "CERT" else v) for k, v in kwargs.items()}
    with pytest.raises(ConfigError, match=message):
        GuardConfig(**kwargs)


def test_guard_settings_come_from_the_environment(tmp_path: Path) -> None:
    config = GuardConfig.resolve({"recovery": None}, {"DERMASSIST_RECOVERY": "restart", "DERMASSIST_CANARY_INTERVAL_S": "2.5",
                                                      "DERMASSIST_AUDIT_LOG": str(tmp_path / "a.jsonl")})
    assert (config.recovery, config.canary_interval_s, config.tls) == ("restart", 2.5, False)


def test_the_public_port_bounds_what_it_reads_and_not_what_it_answers() -> None:
    options = dict(GuardConfig.resolve({"max_request_mib": None}, {"DERMASSIST_MAX_REQUEST_MIB": "64"}).server_options())
    assert options["grpc.max_receive_message_length"] == 64 * 1024 * 1024
    assert options["grpc.max_send_message_length"] == -1
    flagged = GuardConfig.resolve({"max_request_mib": 8}, {"DERMASSIST_MAX_REQUEST_MIB": "64"})
    assert dict(flagged.server_options())["grpc.max_receive_message_length"] == 8 * 1024 * 1024
    assert dict(GuardConfig().server_options())["grpc.max_receive_message_length"] == 256 * 1024 * 1024


def test_the_audit_asks_for_the_class_and_triage_of_a_request_that_names_other_outputs_and_hides_them_again() -> None:
    request = service_pb2.ModelInferRequest(model_name="dermassist")
    request.outputs.add(name="MASK")
    request.outputs.add(name="REFER")
    assert with_audited_outputs(request) == ["PROBABILITIES", "ASSESSABLE"]
    assert [o.name for o in request.outputs] == ["MASK", "REFER", "PROBABILITIES", "ASSESSABLE"]
    assert with_audited_outputs(service_pb2.ModelInferRequest(model_name="dermassist")) == []  # names none: gets all
    internal = service_pb2.ModelInferRequest(model_name="prepare")
    internal.outputs.add(name="SEG_INPUT")
    assert with_audited_outputs(internal) == [] and len(internal.outputs) == 1

    answer = service_pb2.ModelInferResponse(model_name="dermassist", id="r1")
    for name, raw in (("MASK", b"m"), ("REFER", b"r"), ("PROBABILITIES", b"p"), ("ASSESSABLE", b"a")):
        answer.outputs.add(name=name, datatype="UINT8", shape=[1])
        answer.raw_output_contents.append(raw)
    trimmed = without_outputs(answer, ["PROBABILITIES", "ASSESSABLE"])
    assert [o.name for o in trimmed.outputs] == ["MASK", "REFER"] and list(trimmed.raw_output_contents) == [b"m", b"r"]
    assert trimmed.id == "r1" and len(answer.outputs) == 4  # the answer the audit reads keeps every output
    assert set(AUDITED_OUTPUTS) == {"PROBABILITIES", "REFER", "ASSESSABLE"}


Metadatum = namedtuple("Metadatum", "key value")


class _Context:
    """The part of grpc.aio's ServicerContext the front reads of a call's metadata."""

    def __init__(self, *metadata: tuple[str, str]) -> None:
        self.metadata = tuple(Metadatum(k, v) for k, v in metadata)

    def invocation_metadata(self) -> tuple[Metadatum, ...]:
        return self.metadata


def test_only_the_right_admin_key_opens_and_tritonserver_gets_its_own_key_instead() -> None:
    right = _Context((GRPC_ADMIN_HEADER, "operator-key"), ("x-request-tag", "a"), ("user-agent", "grpc-python"))
    wrong = _Context((GRPC_ADMIN_HEADER, "operator-kez"), ("x-request-tag", "a"))
    empty = _Context((GRPC_ADMIN_HEADER, ""))
    assert has_admin_key(right, "operator-key")
    assert not has_admin_key(wrong, "operator-key") and not has_admin_key(empty, "operator-key")
    assert not has_admin_key(_Context(), "operator-key")
    assert forwarded_metadata(right, "operator-key", "internal") == (("x-request-tag", "a"), (GRPC_ADMIN_HEADER, "internal"))
    assert forwarded_metadata(wrong, "operator-key", "internal") == (("x-request-tag", "a"),)
    # an inference carries tritonserver's key whoever calls (its loopback ports restrict inference: privacy audit, M5),
    # and a key the caller sent is never passed on
    assert forwarded_metadata(wrong, "operator-key", "internal", inference=True) == (
        ("x-request-tag", "a"), (GRPC_ADMIN_HEADER, "internal"))


def test_a_restricted_api_refused_for_its_key_is_permission_denied_not_a_retryable_outage() -> None:
    code, message = forwarded_status(grpc.StatusCode.UNAVAILABLE,
                                     "This protocol is restricted, expecting header 'triton-grpc-protocol-admin-key'")
    assert code == grpc.StatusCode.PERMISSION_DENIED and GRPC_ADMIN_HEADER in message and "wrong" in message
    assert forwarded_status(grpc.StatusCode.UNAVAILABLE, "Socket closed") == (grpc.StatusCode.UNAVAILABLE, "Socket closed")
    assert forwarded_status(grpc.StatusCode.NOT_FOUND, "x") == (grpc.StatusCode.NOT_FOUND, "x")


def test_the_front_refuses_the_classification_extension_and_unknown_models_before_triton() -> None:
    """Triton 2.51 dies (SIGFPE) when class_count is asked of the BYTES output NOTE: the request must not reach it."""
    for name in ("NOTE", "PROBABILITIES"):
        request = service_pb2.ModelInferRequest(model_name="dermassist")
        request.outputs.add(name=name).parameters["classification"].int64_param = 1
        code, message = request_refusal(request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and name in message and "its parameter 'classification'" in message
    code, message = request_refusal(service_pb2.ModelInferRequest(model_name="nosuch"))
    assert code == grpc.StatusCode.NOT_FOUND and "'nosuch'" in message and "'dermassist'" in message
    assert request_refusal(service_pb2.ModelInferRequest(model_name="")) is not None
    plain = service_pb2.ModelInferRequest(model_name="dermassist")
    plain.inputs.add(name="IMAGE", datatype="BYTES", shape=[1, 1])
    plain.raw_input_contents.append(bytes_tensor([b"picture"]))
    plain.outputs.add(name="MASK")
    assert request_refusal(plain) is None
    assert request_refusal(service_pb2.ModelInferRequest(model_name="prepare")) is None  # the key is checked apart


def test_a_request_naming_no_outputs_gets_all_but_the_crop_and_cam() -> None:
    request = service_pb2.ModelInferRequest(model_name="dermassist")
    assert with_default_outputs(request)
    named = [o.name for o in request.outputs]
    assert named == list(DEFAULT_OUTPUTS) and "CROP" not in named and "CAM" not in named
    assert {"PROBABILITIES", "MASK", "BBOX", "REFER", "ASSESSABLE", "NOTE"} <= set(named) and len(named) == 9
    assert with_audited_outputs(request) == []  # the audited three are among them
    asked = service_pb2.ModelInferRequest(model_name="dermassist")
    asked.outputs.add(name="CAM")
    assert not with_default_outputs(asked) and [o.name for o in asked.outputs] == ["CAM"]
    internal = service_pb2.ModelInferRequest(model_name="prepare")
    assert not with_default_outputs(internal) and not internal.outputs


def test_the_audit_leaves_out_an_output_in_another_form_instead_of_misreading_it() -> None:
    response = service_pb2.ModelInferResponse(model_name="dermassist")
    response.outputs.add(name="PROBABILITIES", datatype="BYTES", shape=[1, 1])
    response.raw_output_contents.append(bytes_tensor([b"0.9:3:MEL"]))  # what class_count would have sent
    response.outputs.add(name="REFER", datatype="BOOL", shape=[1, 1])
    response.raw_output_contents.append(np.array([True]).tobytes())
    assert answer_rows(response) == [{"refer": True}]


def test_a_call_cut_by_the_shutdown_is_audited_as_such_not_as_the_clients_cancel() -> None:
    assert cancellation(0.0, stopping=True, drain_s=30)[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    code, message = cancellation(12.0, stopping=True, drain_s=30)
    assert code == grpc.StatusCode.UNAVAILABLE and "shut down" in message and "30 s" in message
    assert cancellation(None, stopping=False, drain_s=30) == (grpc.StatusCode.CANCELLED, "the client cancelled the call")
    # the client's timer fires a little before the server's copy of its deadline (the headers' travel time)
    assert cancellation(0.004, stopping=False, drain_s=30)[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert cancellation(DEADLINE_SLACK_S, stopping=False, drain_s=30)[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert cancellation(DEADLINE_SLACK_S + 0.01, stopping=False, drain_s=30)[0] == grpc.StatusCode.CANCELLED
    assert GuardConfig().drain_s == 30.0
    assert GuardConfig.resolve({"drain_s": None}, {"DERMASSIST_DRAIN_S": "45"}).drain_s == 45.0
    with pytest.raises(ConfigError, match="--drain-s / DERMASSIST_DRAIN_S"):
        GuardConfig(drain_s=0)


def test_a_canary_behind_one_long_client_call_is_busy_until_the_call_is_held_past_the_limit(tmp_path: Path) -> None:
    """One batch of 32 large pictures answers nothing for minutes: a canary queued behind it while Triton works on it
    is busy (the guard restarted a working server under such load, and the clients' retries kept it restarting);
    a call held past the limit with nothing answered since is a hang."""
    from types import SimpleNamespace

    from dermassist.guard.faults import busy_not_broken
    from dermassist.guard.guard import Guard

    deadline, refused = grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE
    # canary sent at 100 s, timed out at 110 s; the client call was forwarded at 40 s (held 70 s of a 300 s limit)
    assert busy_not_broken(deadline, 100.0, 0.0, holding_since=40.0, now=110.0, limit_s=300.0)
    assert not busy_not_broken(deadline, 100.0, 0.0, holding_since=40.0, now=110.0, limit_s=70.0)  # held 70 s: hung
    assert busy_not_broken(deadline, 100.0, 0.0, holding_since=40.0, now=110.0, limit_s=70.1)
    assert not busy_not_broken(deadline, 100.0, 0.0, holding_since=105.0, now=110.0, limit_s=300.0)  # came after it
    assert busy_not_broken(deadline, 100.0, 0.0, holding_since=100.0, now=110.0, limit_s=300.0)
    assert not busy_not_broken(deadline, 100.0, 0.0, holding_since=None, now=110.0, limit_s=300.0)  # nothing held
    assert not busy_not_broken(refused, 100.0, 0.0, holding_since=40.0, now=110.0, limit_s=300.0)

    class Triton:
        async def ModelInfer(self, request, timeout, metadata=()):  # Triton's method name
            raise grpc.aio.AioRpcError(deadline, grpc.aio.Metadata(), grpc.aio.Metadata(), "Deadline Exceeded")

    server = SimpleNamespace(config=ServerConfig(repository=tmp_path, admin_key="k"))
    guard = Guard(ServerConfig(repository=tmp_path), GuardConfig(audit_log=str(tmp_path / "a.jsonl"), busy_limit_s=60),
                  server)
    guard.triton = Triton()
    guard.front = SimpleNamespace(answered_at=0.0, oldest_forwarded_at=time.monotonic() - 30,  # held 30 s so far
                                  expired_unanswered=None, ensemble_answered=lambda: None)
    assert asyncio.run(guard.canary()) is None
    guard.front.oldest_forwarded_at = time.monotonic() - 61  # held past the limit: a hang
    assert asyncio.run(guard.canary()) == "canary inference failed: DEADLINE_EXCEEDED: Deadline Exceeded"
    guard.front.oldest_forwarded_at = None
    assert asyncio.run(guard.canary()) == "canary inference failed: DEADLINE_EXCEEDED: Deadline Exceeded"
    guard.audit.close()
    with pytest.raises(ConfigError, match="--busy-limit-s / DERMASSIST_BUSY_LIMIT_S"):
        GuardConfig(busy_limit_s=0)


def test_a_canary_that_waits_behind_answered_client_requests_is_busy_not_a_fault(tmp_path: Path) -> None:
    """Under load the canary queues with the clients' images: while the ensemble keeps answering them a timeout is
    not a fault (healing would restart a working server); with no answer since it was sent, it is one."""
    from types import SimpleNamespace

    from dermassist.guard.faults import busy_not_broken
    from dermassist.guard.guard import Guard

    deadline, refused = grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE
    assert busy_not_broken(deadline, sent_at=10.0, answered_at=12.5)
    assert not busy_not_broken(deadline, sent_at=10.0, answered_at=10.0)  # nothing answered since it was sent: hung
    assert not busy_not_broken(deadline, sent_at=10.0, answered_at=9.0)
    assert not busy_not_broken(refused, sent_at=10.0, answered_at=12.5)  # a broken step answers fast, and is a fault

    class Triton:
        def __init__(self, code: grpc.StatusCode, answer_meanwhile: bool) -> None:
            self.code, self.answer_meanwhile = code, answer_meanwhile

        async def ModelInfer(self, request, timeout, metadata=()):  # Triton's method name
            if self.answer_meanwhile:
                guard.front.answered_at = time.monotonic() + 1e-3  # a client's batch answered while this waited
            raise grpc.aio.AioRpcError(self.code, grpc.aio.Metadata(), grpc.aio.Metadata(), "Deadline Exceeded")

    server = SimpleNamespace(config=ServerConfig(repository=tmp_path, admin_key="k"))
    guard = Guard(ServerConfig(repository=tmp_path), GuardConfig(audit_log=str(tmp_path / "a.jsonl")), server)
    guard.front = SimpleNamespace(answered_at=0.0, oldest_forwarded_at=None, expired_unanswered=None,
                                  ensemble_answered=lambda: None)
    guard.triton = Triton(deadline, answer_meanwhile=True)
    assert asyncio.run(guard.canary()) is None
    guard.front.answered_at = 0.0  # the answer above was stamped 1 ms ahead: a canary sent within it would be busy
    guard.triton = Triton(deadline, answer_meanwhile=False)
    assert asyncio.run(guard.canary()) == "canary inference failed: DEADLINE_EXCEEDED: Deadline Exceeded"
    guard.triton = Triton(refused, answer_meanwhile=True)
    assert asyncio.run(guard.canary()).startswith("canary inference failed: UNAVAILABLE")
    guard.audit.close()


@pytest.mark.parametrize(("outcomes", "backoff"), [
    (["healed", "failed"], 2.0),  # the first failure of a new incident
    (["failed", "failed", "healed", "failed"], 2.0),  # earlier incidents healed: they do not count (it was 8 s)
    (["failed", "failed later healed", "failed"], 2.0),  # the watchdog's canary found it working after a failure
    (["failed", "failed", "failed"], 8.0),
    (["failed"] * 10, 60.0),  # capped
    (["healed", "healed for moments", "healed for moments", "failed"], 8.0),  # flapping: each healing broke at once
    (["healed for moments", "healed for moments"], 4.0),  # the next healing waits too (failure audit 2)
])
def test_the_wait_after_a_failed_recovery_counts_only_the_failures_since_the_last_healing(
        outcomes: list[str], backoff: float) -> None:
    """Recoveries detected 100 s apart; a healing's readiness lasts 90 s, or 0.5 s "for moments" (under 60 s)."""
    from dermassist.guard.faults import Recovery, recovery_backoff

    recoveries = []
    for i, outcome in enumerate(outcomes):
        ready_at = None if outcome == "failed" else 100.0 * i + (99.5 if "moments" in outcome else 10.0)
        recoveries.append(Recovery("fault", "restart", 100.0 * i, ready_at=ready_at,
                                   error=None if outcome.startswith("healed") else "x"))
    assert recovery_backoff(recoveries, 100.0 * len(outcomes), 60.0, fault="") == backoff


def test_faults_of_different_steps_in_quick_succession_are_no_flapping() -> None:
    """Killing each step's stub in turn under load (CI's fault tests): each healed, the next fault came seconds later,
    and the fifth waited 16 s as if one fault had kept coming back."""
    from dermassist.guard.faults import Fault, Recovery, fault_key, recovery_backoff

    keys = [fault_key(Fault(f"stub process {m}_0_0 (pid {100 + i}) exited", (m,))) for i, m in enumerate("abcd")]
    assert len(set(keys)) == 4 and fault_key(Fault("stub process a_0_0 (pid 7) exited", ("a",))) == keys[0]
    assert fault_key(Fault("tritonserver exited (code 1)", server_down=True)) == "tritonserver"
    assert fault_key(Fault("canary answer is wrong: 3 of 8 probabilities")) == "canary answer is wrong: # of # probabilities"
    recoveries = [Recovery("fault", "reload", 10.0 * i, ready_at=10.0 * i + 5.0, fault=key) for i, key in enumerate(keys)]
    assert recovery_backoff(recoveries, 41.0, 15.0, fault="models e") == 1.0  # another step: no wait
    assert recovery_backoff(recoveries, 41.0, 15.0, fault=keys[3]) == 2.0  # the same step again, 6 s after: a wait
    recoveries.append(Recovery("fault", "reload", 41.0, error="x", fault="models e"))
    assert recovery_backoff(recoveries, 42.0, 15.0) == 2.0  # a failed try of a new fault counts alone
