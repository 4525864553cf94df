"""Edge cases of the guard's pure pieces that mutation testing found unpinned: readiness after a fault, the health
endpoint (HEAD, query strings, Content-Length), audit lines of odd requests, the canary's image and judgement, stub
processes that are zombies or oddly named, settings at their limits, and the front's helpers."""
from __future__ import annotations

import asyncio
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
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from dermassist.base.bytes_tensor import decode as bytes_elements
from dermassist.base.bytes_tensor import encode as bytes_tensor
from dermassist.base.errors import ConfigError
from dermassist.base.server_config import GRPC_ADMIN_HEADER
from dermassist.guard.audit import (
    MAX_COUNTED,
    MAX_ID_CHARS,
    AuditLog,
    answer_rows,
    build_record,
    clip,
    request_images,
    stdout_kept_for_the_trail,
)
from dermassist.guard.canary import canary_image, canary_request, check_canary_answer
from dermassist.guard.config import GuardConfig
from dermassist.guard.front import client_identity, forwarded_metadata, has_admin_key, method_path
from dermassist.guard.health import Readiness, health_answer, start_health_server
from dermassist.guard.requests import without_outputs
from dermassist.guard.statuses import is_step_failure
from dermassist.guard.stubs import STUB_NAME, Stub, broken_stubs, process_state, stub_of
from preprocess.contract import CLASS_CODES, MAX_BATCH_SIZE, NUM_CLASSES
from preprocess.decode import decode_image
from tests.conftest import PROJECT_ROOT

LESION_RGB, SKIN_RGB = [70, 45, 35], [205, 160, 140]
# What the settings check of a PEM file reads: its BEGIN line (gRPC reads the rest when the front starts).
CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


# --- Readiness ------------------------------------------------------------------------------------------------


def test_a_waiter_woken_by_readiness_that_a_fault_took_back_at_once_is_told_not_ready() -> None:
    async def main() -> bool:
        readiness = Readiness()
        waiter = asyncio.ensure_future(readiness.wait(60))
        await asyncio.sleep(0.01)  # the waiter now waits on the event
        readiness.set_ready()
        readiness.set_not_ready("stub process prepare_0_0 (pid 7) exited")  # before the waiter runs again
        return await asyncio.wait_for(waiter, 5)  # woken by set_ready (a timeout would raise here), yet not ready

    assert asyncio.run(main()) is False


def test_after_a_fault_wait_holds_until_healed_instead_of_answering_at_once() -> None:
    async def main() -> tuple[bool, bool]:
        readiness = Readiness()
        readiness.set_ready()
        readiness.set_not_ready("stub process lesion_crop_0_0 (pid 9) stopped")
        timed_out = await readiness.wait(0.02)  # no heal: not ready
        asyncio.get_running_loop().call_later(0.05, readiness.set_ready)
        return timed_out, await readiness.wait(5)  # a set event left over from before the fault answers False

    assert asyncio.run(main()) == (False, True)


def test_readiness_history_records_only_flips() -> None:
    readiness = Readiness()
    started = readiness.since
    readiness.set_not_ready("scanning")  # not ready already: no flip, the reason changes, since stays
    assert (readiness.reason, readiness.since, list(readiness.history)) == ("scanning", started, [])
    readiness.set_ready()
    readiness.set_ready()  # ready already: no second entry
    readiness.set_not_ready("stub exited")
    readiness.set_not_ready("stub exited again")
    assert [(ready, reason) for _, ready, reason in readiness.history] == [(True, ""), (False, "stub exited")]
    assert readiness.since == readiness.history[-1][0] and readiness.reason == "stub exited again"
    for _ in range(150):  # 300 more flips: the last 200 of 302 are kept
        readiness.set_ready()
        readiness.set_not_ready("flap")
    assert len(readiness.history) == 200 and readiness.history[-1][1:] == (False, "flap")


# --- Health endpoint -----------------------------------------------------------------------------------------


def _split(answer: bytes) -> tuple[bytes, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready", "/v2/models/dermassist/ready"])
@pytest.mark.parametrize("ready", [True, False])
def test_a_head_probe_gets_the_same_status_and_headers_as_get(path: str, ready: bool) -> None:
    readiness = Readiness()
    if ready:
        readiness.set_ready()
    get_head, get_body = _split(health_answer("GET", path, readiness))
    head_head, head_body = _split(health_answer("HEAD", path, readiness))
    assert head_head == get_head and not head_head.startswith(b"HTTP/1.1 405")
    assert f"Content-Length: {len(get_body)}".encode() in get_head  # the header counts the body's bytes
    assert get_body and head_body == b""  # HTTP: a HEAD answer has GET's headers and no body


def test_a_wrong_path_is_not_found_whatever_the_method() -> None:
    readiness = Readiness()
    assert health_answer("POST", "/v2/nothing", readiness).startswith(b"HTTP/1.1 404")
    head, body = _split(health_answer("DELETE", "/v2/health/live", readiness))
    assert head.startswith(b"HTTP/1.1 405 Method Not Allowed") and json.loads(body) == {"error": "use GET"}


def test_the_health_server_answers_probes_with_a_query_string_and_head() -> None:
    async def ask(port: int, line: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"{line}\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return answer

    async def main() -> list[bytes]:
        readiness = Readiness()
        readiness.set_not_ready("canary failed")
        server = await start_health_server("127.0.0.1", 0, readiness)
        port = server.sockets[0].getsockname()[1]
        try:
            return [await ask(port, "GET /v2/health/ready?verbose=1 HTTP/1.1"),
                    await ask(port, "HEAD /v2/health/live HTTP/1.1"),
                    await ask(port, "GET"),  # no path: it was dropped without an answer (fuzz audit 12.8)
                    await ask(port, "GET /v2/health/ready HTTP/1.1\r\nX-Big: " + "a" * 9000)]
        finally:
            server.close()
            await server.wait_closed()

    ready, live, no_path, big = asyncio.run(main())
    head, body = _split(ready)
    assert head.startswith(b"HTTP/1.1 503") and json.loads(body) == {"ready": False, "reason": "canary failed"}
    assert live.startswith(b"HTTP/1.1 200 OK") and _split(live)[1] == b""
    assert no_path.startswith(b"HTTP/1.1 400 Bad Request") and b"'METHOD /path HTTP/1.1'" in no_path
    assert big.startswith(b"HTTP/1.1 431 Request Header Fields Too Large") and b"over 8192 bytes" in big


# --- Audit ---------------------------------------------------------------------------------------------------


def test_an_input_without_its_raw_contents_is_marked_malformed_not_a_crash() -> None:
    request = service_pb2.ModelInferRequest(model_name="dermassist")
    request.inputs.add(name="IMAGE", datatype="BYTES", shape=[1, 1])
    request.inputs.add(name="EXTRA", datatype="UINT8", shape=[3])
    request.raw_input_contents.append(bytes_tensor([b"img"]))  # one raw entry for two inputs
    assert request_images(request) == [
        {"sha256": hashlib.sha256(b"img").hexdigest(), "bytes": 3},
        {"input": "EXTRA", "malformed": "no raw contents for this input"},
    ]


def test_inputs_other_than_the_bytes_image_are_hashed_whole() -> None:
    raw = service_pb2.ModelInferRequest(model_name="dermassist")
    raw.inputs.add(name="IMAGE", datatype="UINT8", shape=[4])  # not BYTES: not split into images
    raw.raw_input_contents.append(b"\x01\x02\x03\x04")
    assert request_images(raw) == [{"input": "IMAGE", "sha256": hashlib.sha256(b"\x01\x02\x03\x04").hexdigest(),
                                    "bytes": 4}]
    typed = service_pb2.ModelInferRequest(model_name="dermassist")  # no raw_input_contents: typed contents
    tensor = typed.inputs.add(name="EXTRA", datatype="INT32", shape=[2])
    tensor.contents.int_contents.extend([7, 8])
    whole = tensor.contents.SerializeToString()  # the contents alone, not the tensor's name and shape
    assert request_images(typed) == [{"input": "EXTRA", "sha256": hashlib.sha256(whole).hexdigest(),
                                      "bytes": len(whole)}]


def test_a_malformed_image_tensor_gives_one_entry_with_the_hash_of_what_was_sent() -> None:
    broken = struct.pack("<I", 10) + b"abc"  # says 10 bytes, holds 3
    request = service_pb2.ModelInferRequest(model_name="dermassist")
    request.inputs.add(name="IMAGE", datatype="BYTES", shape=[1, 1])
    request.raw_input_contents.append(broken)
    (entry,) = request_images(request)
    assert entry["input"] == "IMAGE" and "runs past the end" in entry["malformed"]
    assert (entry["sha256"], entry["bytes"]) == (hashlib.sha256(broken).hexdigest(), 7)


@pytest.mark.parametrize("raw", [True, False])
def test_a_request_of_more_images_than_a_batch_holds_hashes_32_and_counts_the_rest(raw: bool) -> None:
    """A 4 MiB request of a million empty elements once cost the guard 600 MB and an 88 MB audit line before Triton
    refused it: the audit hashes at most a batch and counts the rest."""
    elements = [b"pic%d" % i for i in range(40)] + [b""] * 1000
    request = service_pb2.ModelInferRequest(model_name="dermassist")
    tensor = request.inputs.add(name="IMAGE", datatype="BYTES", shape=[len(elements), 1])
    if raw:
        request.raw_input_contents.append(bytes_tensor(elements))
    else:
        tensor.contents.bytes_contents.extend(elements)
    entries = request_images(request)
    assert entries[:32] == [{"sha256": hashlib.sha256(b"pic%d" % i).hexdigest(), "bytes": len(b"pic%d" % i)}
                            for i in range(32)]
    assert entries[32:] == [{"input": "IMAGE", "not_hashed": 1008, "why": "over the batch limit of 32 images"}]
    many = service_pb2.ModelInferRequest(model_name="dermassist")  # past MAX_COUNTED: not walked to its end
    many.inputs.add(name="IMAGE", datatype="BYTES", shape=[1, 1])
    many.raw_input_contents.append(b"\0\0\0\0" * (MAX_BATCH_SIZE + MAX_COUNTED + 5))
    assert request_images(many)[-1] == {"input": "IMAGE", "not_hashed_over": MAX_COUNTED,
                                        "why": "over the batch limit of 32 images"}


def test_the_audit_line_of_a_request_without_raw_contents_holds_each_images_hash_and_answer() -> None:
    images = [b"first image", b"second"]
    request = service_pb2.ModelInferRequest(model_name="dermassist", model_version="2", id="r-9")
    request.inputs.add(name="IMAGE", datatype="BYTES", shape=[2, 1]).contents.bytes_contents.extend(images)
    probs = np.full((2, NUM_CLASSES), 0.01, np.float32)
    probs[0, 5], probs[1, 0] = 0.9, 0.9
    response = service_pb2.ModelInferResponse(model_name="dermassist", model_version="2")
    response.outputs.add(name="PROBABILITIES", datatype="FP32", shape=[2, NUM_CLASSES])
    response.raw_output_contents.append(probs.tobytes())
    record = build_record(request, request_id="r-9", peer="p", client=None, versions={}, status="OK", error=None,
                          latency_ms=1.0, response=response)
    assert record["images"] == [
        {"sha256": hashlib.sha256(images[0]).hexdigest(), "bytes": 11, "top_class": CLASS_CODES[5]},
        {"sha256": hashlib.sha256(images[1]).hexdigest(), "bytes": 6, "top_class": CLASS_CODES[0]},
    ]
    assert record["error"] is None


def test_answer_rows_fill_a_shorter_column_with_none_and_skip_outputs_without_contents() -> None:
    probs = np.full((2, NUM_CLASSES), 0.01, np.float32)
    probs[0, 2], probs[1, 6] = 0.9, 0.9
    response = service_pb2.ModelInferResponse(model_name="dermassist")
    response.outputs.add(name="PROBABILITIES", datatype="FP32", shape=[2, NUM_CLASSES])
    response.raw_output_contents.append(probs.tobytes())
    response.outputs.add(name="REFER", datatype="BOOL", shape=[1, 1])
    response.raw_output_contents.append(np.array([True]).tobytes())  # one row of two
    response.outputs.add(name="ASSESSABLE", datatype="BOOL", shape=[2, 1])  # no raw contents at all
    assert answer_rows(response) == [{"top_class": CLASS_CODES[2], "refer": True},
                                     {"top_class": CLASS_CODES[6], "refer": None}]


def test_clip_keeps_text_at_the_limit_and_cuts_one_past_it() -> None:
    assert clip("x" * 128, 128) == "x" * 128
    assert clip("x" * 129, 128) == "x" * 127 + "…"


def test_an_id_within_the_limit_is_recorded_in_full_and_a_longer_one_is_marked_shortened() -> None:
    """Only a refused request has a longer id (the front refuses it); its line says the id was cut and from what."""
    def record(request_id: str) -> dict:
        return build_record(None, request_id=request_id, peer="p", client=None, versions={},
                            status="INVALID_ARGUMENT", error=None, latency_ms=0.5)

    full = record("x" * MAX_ID_CHARS)
    assert full["request_id"] == "x" * MAX_ID_CHARS and "request_id_shortened_from" not in full
    cut = record("y" * (MAX_ID_CHARS + 72))
    assert cut["request_id"] == "y" * (MAX_ID_CHARS - 1) + "…"
    assert cut["request_id_shortened_from"] == MAX_ID_CHARS + 72
    assert list(cut).index("request_id_shortened_from") == list(cut).index("request_id") + 1


def test_a_record_without_an_answer_takes_the_model_version_the_request_asked_for() -> None:
    request = service_pb2.ModelInferRequest(model_name="dermassist", model_version="3")
    record = build_record(request, request_id="r", peer="p", client=None, versions={}, status="UNAVAILABLE",
                          error=None, latency_ms=0.5)
    assert (record["model"], record["model_version"], record["error"], record["images"]) == ("dermassist", "3", None, [])


def test_the_stdout_audit_log_leaves_stdout_open(capsys: pytest.CaptureFixture[str]) -> None:
    log = AuditLog("-")
    log.write({"request_id": "r", "status": "OK"})
    log.close()
    assert not sys.stdout.closed
    assert capsys.readouterr().out == '{"request_id":"r","status":"OK"}\n'


TEARING_CHILD = """
import threading
from dermassist.guard.audit import AuditLog, stdout_kept_for_the_trail
log = AuditLog("-")
with stdout_kept_for_the_trail("-"):
    done = threading.Event()
    def chatter():
        while not done.is_set():
            print("Closing server running on port: 7860")
    talker = threading.Thread(target=chatter)
    talker.start()
    for i in range(3000):
        log.write({"request_id": f"{i:05d}", "status": "OK", "padding": "x" * 200})
    done.set()
    talker.join()
"""


def test_while_the_audit_trail_is_on_stdout_other_prints_go_to_stderr_and_tear_no_line() -> None:
    """``dermassist demo`` runs the guard and the page in one process: another thread's print (Gradio's) is two
    writes the trail's lock does not cover, and had landed in the middle of audit lines (concurrency audit 4: 527
    of 20,000 torn). Stdout then holds the audit lines alone, every one whole and in order."""
    run = subprocess.run([sys.executable, "-c", TEARING_CHILD], capture_output=True, text=True, timeout=120,
                         cwd=PROJECT_ROOT)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [f"{i:05d}" for i in range(3000)]
    assert "Closing server running on port: 7860" in run.stderr


def test_an_audit_trail_in_a_file_leaves_stdout_as_it_was(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with stdout_kept_for_the_trail(str(tmp_path / "audit.jsonl")):
        print("the page's address")
    assert capsys.readouterr().out == "the page's address\n"


# --- Canary --------------------------------------------------------------------------------------------------


def test_the_canary_image_is_a_lesion_of_radius_side_over_4_at_the_centre_in_exact_colours() -> None:
    rgb = decode_image(canary_image())
    # centre (32, 32), radius 16: rows 16 and 48 of column 32 lie on the circle (<=), rows 15 and 49 outside
    for y, colour in ((32, LESION_RGB), (16, LESION_RGB), (48, LESION_RGB), (15, SKIN_RGB), (49, SKIN_RGB)):
        assert rgb[y, 32].tolist() == colour, y
    assert rgb[32, 16].tolist() == LESION_RGB and rgb[32, 15].tolist() == SKIN_RGB


def test_a_canary_of_odd_side_pads_each_bmp_row_to_4_bytes() -> None:
    image = canary_image(33)  # 33 px * 3 bytes = 99 per row, padded to 100
    assert len(image) == 54 + 33 * 100 and struct.unpack("<I", image[2:6])[0] == len(image)
    assert decode_image(image).shape == (33, 33, 3) and decode_image(image)[16, 16].tolist() == LESION_RGB


def test_the_canary_request_carries_one_image_in_a_1x1_bytes_tensor() -> None:
    request = canary_request("c-7")
    (tensor,) = request.inputs
    assert (tensor.name, tensor.datatype, list(tensor.shape), request.id) == ("IMAGE", "BYTES", [1, 1], "c-7")
    assert [bytes(e) for e in bytes_elements(request.raw_input_contents[0])] == [canary_image()]


def _answer(*outputs: tuple[str, bytes | None]) -> service_pb2.ModelInferResponse:
    response = service_pb2.ModelInferResponse(model_name="dermassist")
    for name, raw in outputs:
        response.outputs.add(name=name, datatype="FP32")
        if raw is not None:
            response.raw_output_contents.append(raw)
    return response


def test_the_canary_tolerates_a_sum_off_by_under_a_thousandth_and_not_more() -> None:
    probs = np.full(NUM_CLASSES, 1.0 / NUM_CLASSES, np.float32)
    near, off = probs.copy(), probs.copy()
    near[0] += 0.0005  # sum 1.0005
    off[0] += 0.005  # sum 1.005
    assert check_canary_answer(_answer(("PROBABILITIES", near.tobytes()))) is None
    assert "sum 1.0050" in check_canary_answer(_answer(("PROBABILITIES", off.tobytes())))


def test_the_canary_refuses_negative_probabilities_that_sum_to_one() -> None:
    probs = np.zeros(NUM_CLASSES, np.float32)
    probs[:2] = (-0.5, 1.5)  # sum 1, finite: only the sign gives it away
    assert "not a probability vector" in check_canary_answer(_answer(("PROBABILITIES", probs.tobytes())))


def test_the_canary_finds_probabilities_after_other_outputs_and_without_raw_contents() -> None:
    good = np.full(NUM_CLASSES, 1.0 / NUM_CLASSES, np.float32).tobytes()
    assert check_canary_answer(_answer(("REFER", b"\x01"), ("PROBABILITIES", good))) is None
    assert "3 values" in check_canary_answer(_answer(("REFER", b"\x01"), ("PROBABILITIES", good[:12])))
    assert check_canary_answer(_answer(("REFER", b"\x01"), ("PROBABILITIES", None))) == \
        "PROBABILITIES came without raw contents"


# --- Stub processes ------------------------------------------------------------------------------------------


def _child(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, executable=sys.executable)


def test_a_zombie_stub_counts_as_exited_not_stopped() -> None:
    proc = _child([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(proc.pid, signal.SIGKILL)  # not reaped: a zombie
        deadline = time.monotonic() + 10
        while process_state(proc.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        stub = Stub(proc.pid, "prepare", "prepare_0_0")
        assert process_state(proc.pid) == "Z" and broken_stubs([stub]) == [(stub, "exited")]
    finally:
        proc.kill()
        proc.wait()


def test_a_stub_whose_instance_name_is_not_tritons_takes_its_model_from_the_script_path(tmp_path: Path) -> None:
    script = tmp_path / "lesion_crop" / "1" / "model.py"
    script.parent.mkdir(parents=True)
    script.write_text("import time\ntime.sleep(60)\n")
    odd = _child([str(tmp_path / STUB_NAME), str(script), "shm", "prepare_0_1x", "DEFAULT"])
    plain = _child([sys.executable, "-c", "import time; time.sleep(60)"])  # a child that is no stub
    try:
        deadline = time.monotonic() + 10
        while (stub := stub_of(odd.pid, os.getpid())) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        # "prepare_0_1x" is not <model>_<n>_<n> (anchored at the end): the model comes from .../lesion_crop/1/model.py
        assert stub == Stub(odd.pid, "lesion_crop", "prepare_0_1x")
        while not Path(f"/proc/{plain.pid}/cmdline").read_bytes().endswith(b"sleep(60)\0") \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stub_of(plain.pid, os.getpid()) is None
    finally:
        for proc in (odd, plain):
            proc.kill()
            proc.wait()


# --- Settings ------------------------------------------------------------------------------------------------


def test_request_size_limits_are_inclusive_and_refuse_booleans() -> None:
    assert GuardConfig(max_request_mib=1).max_request_mib == 1
    assert GuardConfig(max_request_mib=2047).max_request_mib == 2047
    for bad in (2048, True):
        with pytest.raises(ConfigError, match="--max-request-mib / DERMASSIST_MAX_REQUEST_MIB"):
            GuardConfig(max_request_mib=bad)


def test_zero_reloads_and_zero_connection_age_are_allowed_and_negatives_are_not() -> None:
    assert GuardConfig(max_reloads=0, grpc_max_connection_age=0, grpc_max_connection_age_grace=0).max_reloads == 0
    for kwargs in ({"max_reloads": -1}, {"grpc_max_connection_age": -1}, {"grpc_max_connection_age_grace": -1}):
        with pytest.raises(ConfigError, match=f"DERMASSIST_{next(iter(kwargs)).upper()}\\b"):
            GuardConfig(**kwargs)


def test_connection_ageing_options_appear_only_when_set() -> None:
    options = dict(GuardConfig(grpc_max_connection_age=60000, grpc_max_connection_age_grace=5000).server_options())
    assert options["grpc.max_connection_age_ms"] == 60000 and options["grpc.max_connection_age_grace_ms"] == 5000
    assert not {"grpc.max_connection_age_ms", "grpc.max_connection_age_grace_ms"} & set(dict(GuardConfig().server_options()))


def test_tls_paths_become_paths_and_mutual_tls_needs_the_client_ca(tmp_path: Path) -> None:
    for name, text in (("cert.pem", CERT_PEM), ("key.pem", KEY_PEM), ("ca.pem", CERT_PEM)):
        (tmp_path / name).write_text(text)
    server_only = GuardConfig(tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "key.pem"))
    assert server_only.tls and not server_only.mutual_tls
    assert isinstance(server_only.tls_cert, Path) and isinstance(server_only.tls_key, Path)
    mutual = GuardConfig(tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "key.pem", tls_client_ca=str(tmp_path / "ca.pem"))
    assert mutual.tls and mutual.mutual_tls and mutual.tls_client_ca == tmp_path / "ca.pem"
    assert not GuardConfig().tls and not GuardConfig().mutual_tls


# --- Front helpers -------------------------------------------------------------------------------------------


def test_only_unavailable_or_an_unhealthy_stub_is_a_step_failure() -> None:
    assert is_step_failure(grpc.StatusCode.UNAVAILABLE, "Socket closed")
    assert is_step_failure(grpc.StatusCode.INTERNAL, "Stub process 'prepare_0_0' is not healthy.")
    assert not is_step_failure(grpc.StatusCode.INTERNAL, "failed to decode the image")
    assert not is_step_failure(grpc.StatusCode.INVALID_ARGUMENT, "Stub process 'prepare_0_0' is not healthy.")
    # the ensemble between the unload and the load of the guard's reload (a CI run under load: the SDK got NOT_FOUND,
    # which it does not retry, and a request was lost); a version the client named that does not exist stays NOT_FOUND
    assert is_step_failure(grpc.StatusCode.NOT_FOUND, "Request for unknown model: 'dermassist' has no available versions")
    assert not is_step_failure(grpc.StatusCode.NOT_FOUND, "Request for unknown model: 'dermassist' version 5 is not found")


def test_trimming_an_answer_tolerates_outputs_without_raw_contents() -> None:
    answer = service_pb2.ModelInferResponse(model_name="dermassist")
    for name in ("MASK", "REFER", "PROBABILITIES"):
        answer.outputs.add(name=name, datatype="UINT8", shape=[1])
    answer.raw_output_contents.append(b"m")  # only the first output came raw
    trimmed = without_outputs(answer, ["PROBABILITIES"])
    assert [o.name for o in trimmed.outputs] == ["MASK", "REFER"] and list(trimmed.raw_output_contents) == [b"m"]


Metadatum = namedtuple("Metadatum", "key value")


def test_the_client_is_the_first_common_name_of_its_certificate() -> None:
    context = SimpleNamespace(auth_context=lambda: {"x509_common_name": [b"clinic-a", b"clinic-b"]})
    assert client_identity(context) == "clinic-a"
    assert client_identity(SimpleNamespace(auth_context=lambda: {})) is None
    # a certificate whose identity is in its subject alternative name only (gRPC gives an empty common name), as
    # gRPC 1.7x reports trustme's issue_cert("his-gateway"): the audit line said "client": ""
    san_only = {"x509_common_name": [b""], "x509_subject_alternative_name": [b"his-gateway"],
                "x509_subject": [b"OU=Testing cert,O=trustme"]}
    assert client_identity(SimpleNamespace(auth_context=lambda: san_only)) == "his-gateway"
    subject_only = {"x509_common_name": [b""], "x509_subject": [b"OU=Clinic B,O=Hospital"]}
    assert client_identity(SimpleNamespace(auth_context=lambda: subject_only)) == "OU=Clinic B,O=Hospital"


def test_pseudo_headers_are_not_forwarded_and_only_the_first_admin_header_counts() -> None:
    context = SimpleNamespace(invocation_metadata=lambda: (
        Metadatum(":authority", "dermassist:8001"), Metadatum("grpc-timeout", "5S"), Metadatum("x-tag", "t"),
        Metadatum(GRPC_ADMIN_HEADER, "wrong"), Metadatum(GRPC_ADMIN_HEADER, "right")))
    assert not has_admin_key(context, "right")
    assert forwarded_metadata(context, "right", "internal") == (("x-tag", "t"),)


def test_method_paths_are_absolute() -> None:
    assert method_path("ModelInfer") == "/inference.GRPCInferenceService/ModelInfer"


def test_a_health_port_that_is_taken_is_a_clear_server_error() -> None:
    """An operator who gives a busy --http-port gets the port named and the flag to change, not an OSError."""
    import socket

    from dermassist.base.errors import ServerError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerError, match=rf"health endpoint on http://127.0.0.1:{port}: .*is the port taken.*--http-port"):
            asyncio.run(start_health_server("127.0.0.1", port, Readiness()))


def test_a_new_audit_file_is_readable_by_the_services_user_only(tmp_path: Path) -> None:
    """Who called, from where, and each picture's digest: a new file is 0600 whatever the umask."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        log = AuditLog(tmp_path / "audit" / "audit.jsonl")
        log.write({"request_id": "r1"})
        log.close()
    finally:
        os.umask(old)
    path = tmp_path / "audit" / "audit.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"request_id": "r1"}


def test_the_canary_after_a_restart_waits_for_the_loopback_channel_to_connect_again(tmp_path: Path) -> None:
    """The guard's channel saw tritonserver gone and retries its connection on a backoff: a canary made just after the
    new tritonserver came up failed at once ("Connection refused"), counting a healed restart as failed (20 of 45
    restarts after a killed tritonserver in an operations audit). The canary after a heal waits for the channel."""
    from tritonclient.grpc import service_pb2_grpc

    from dermassist.base.server import free_ports
    from dermassist.base.server_config import ServerConfig
    from dermassist.guard.guard import LOOPBACK_CHANNEL_OPTIONS, Guard

    (port,) = free_ports(1)
    probabilities = np.full(NUM_CLASSES, 1.0 / NUM_CLASSES, np.float32).tobytes()

    async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return _answer(("PROBABILITIES", probabilities)).SerializeToString()

    async def main() -> tuple[str | None, str | None]:
        server_config = ServerConfig(repository=tmp_path, admin_key="k", grpc_port=port)
        guard = Guard(ServerConfig(repository=tmp_path), GuardConfig(audit_log=str(tmp_path / "a.jsonl"),
                                                                     canary_timeout_s=5),
                      SimpleNamespace(config=server_config))  # type: ignore[arg-type]
        guard.front = SimpleNamespace(answered_at=0.0, oldest_forwarded_at=None, expired_unanswered=None,
                                      ensemble_answered=lambda: answers.append(time.monotonic()))
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=LOOPBACK_CHANNEL_OPTIONS)
        guard.triton = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert (await guard.canary()).startswith("canary inference failed: UNAVAILABLE")  # tritonserver is gone
        await asyncio.sleep(0.3)  # the channel is now waiting out its reconnect backoff
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "inference.GRPCInferenceService", {"ModelInfer": grpc.unary_unary_rpc_method_handler(answer)}),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()  # the new tritonserver is up
        try:
            return await guard.canary(after_heal=True), await guard.canary()
        finally:
            await server.stop(None)
            await channel.close()
            guard.audit.close()

    answers: list[float] = []  # the canaries the ensemble answered: each clears a sign of a hang (review 13)
    healed, next_one = asyncio.run(main())
    assert healed is None and next_one is None and len(answers) == 2


def test_a_given_tritonserver_its_owner_is_stopping_is_not_healed(tmp_path: Path) -> None:
    """Ctrl-C on the bench cut the guard's stop short; the bench then stopped its tritonserver, and the guard, still
    watching, took that for a fault and started a new one (its runtime folder left in /tmp)."""
    from dermassist.base.server import TritonServer
    from dermassist.base.server_config import ServerConfig
    from dermassist.guard.faults import Fault
    from dermassist.guard.guard import Guard

    server = TritonServer(ServerConfig(repository=tmp_path, admin_key="k"))
    assert server.closing is False
    server.__exit__(None, None, None)  # what the owner's with block does (nothing was started: stop is a no-op)
    assert server.closing is True
    guard = Guard(ServerConfig(repository=tmp_path), GuardConfig(audit_log=str(tmp_path / "a.jsonl")), server)

    async def heal(*args: object) -> str | None:
        raise AssertionError("the guard healed a tritonserver its owner was stopping")

    guard._heal = heal  # type: ignore[method-assign]

    async def main() -> None:
        guard.readiness = Readiness()
        await guard._recover(Fault("stub process triage_0_0 (pid 1) exited"))

    asyncio.run(main())
    assert guard.recoveries == [] and "being stopped by its owner: not healed" in guard.readiness.reason
    guard.audit.close()
