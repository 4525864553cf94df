"""The front refuses a malformed request of the ensemble itself, in words that name the problem and its fix.

Triton's own texts for these ("expected 4294967295 string elements ...", "expected 1 inputs but got 2 inputs ...
missing required input(s) ]") name neither; a request the clients send today (the SDK's, raw contents or typed
contents) still goes through, and so does any request of an internal step (the admin key is checked apart).
"""
from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc

import dermassist.guard.front as front_module
from dermassist.base.bytes_tensor import encode as bytes_tensor
from dermassist.guard.audit import MAX_ID_CHARS, MAX_INPUTS_RECORDED, MAX_NAME_CHARS
from dermassist.guard.canary import canary_request
from dermassist.guard.requests import request_refusal
from dermassist_client.transport import new_request_id
from loadtest.protocol import infer_request
from preprocess.contract import ENSEMBLE_NAME, ENSEMBLE_OUTPUTS, MAX_BATCH_SIZE, PREPARE_MODEL
from tests.support.guard import audit_lines

from .loopback import front_before_stand_in

HASHING_DELAY_S = 0.3


def image_request(shape: list[int], elements: list[bytes] | None = None, *, datatype: str = "BYTES",
                  typed: bool = False, model: str = ENSEMBLE_NAME) -> service_pb2.ModelInferRequest:
    """A request of ``model`` with one IMAGE input of ``shape`` holding ``elements`` (one per row unless given), as
    raw contents or (``typed``) as contents.bytes_contents."""
    if elements is None:
        elements = [b"picture %d" % i for i in range(max(shape[0], 0))] if shape else []
    request = service_pb2.ModelInferRequest(model_name=model, id="r-1")
    tensor = request.inputs.add(name="IMAGE", datatype=datatype, shape=shape)
    if typed:
        tensor.contents.bytes_contents.extend(elements)
    else:
        request.raw_input_contents.append(bytes_tensor(elements))
    return request


def refusal_message(request: service_pb2.ModelInferRequest) -> str:
    """The message of an INVALID_ARGUMENT refusal of ``request`` (fails the test if it is not one)."""
    refusal = request_refusal(request)
    assert refusal is not None, "the request was forwarded"
    code, message = refusal
    assert code == grpc.StatusCode.INVALID_ARGUMENT, refusal
    return message


# --- Accepted: what clients send today ----------------------------------------------------------------------


@pytest.mark.parametrize("typed", [False, True], ids=["raw_input_contents", "contents"])
@pytest.mark.parametrize("rows", [1, 3, MAX_BATCH_SIZE])
def test_a_well_formed_request_of_the_ensemble_is_forwarded(rows: int, typed: bool) -> None:
    assert request_refusal(image_request([rows, 1], typed=typed)) is None


def test_the_requests_of_the_canary_the_loadtest_and_an_empty_image_are_forwarded() -> None:
    """An empty image is one element (the ensemble refuses it by name, with its row): not the front's business."""
    assert request_refusal(canary_request("canary-1")) is None
    assert request_refusal(infer_request([b"a", b"b", b"c"], request_id="load-1")) is None
    assert request_refusal(image_request([2, 1], [b"", b"picture"])) is None
    assert request_refusal(image_request([1, 1], [b""], typed=True)) is None


def test_a_request_of_an_internal_step_is_forwarded_untouched_whatever_its_inputs() -> None:
    """Only admin-key holders reach the steps (checked apart); their requests are theirs to shape."""
    odd = image_request([-1, 1], [b"x"] * 3, datatype="UINT8", model=PREPARE_MODEL)
    odd.inputs.add(name="EXTRA", datatype="FP32", shape=[2])
    before = odd.SerializeToString()
    assert request_refusal(odd) is None
    assert odd.SerializeToString() == before
    assert request_refusal(service_pb2.ModelInferRequest(model_name=PREPARE_MODEL)) is None


# --- Refused: the inputs --------------------------------------------------------------------------------------


def test_an_input_beside_image_is_refused_by_name() -> None:
    request = image_request([1, 1])
    request.inputs.add(name="EXTRA", datatype="BYTES", shape=[1, 1])
    request.raw_input_contents.append(bytes_tensor([b"more"]))
    message = refusal_message(request)
    assert "model 'dermassist' takes one input, 'IMAGE' (BYTES, shape [n, 1]" in message
    assert f"n from 1 to {MAX_BATCH_SIZE}" in message
    assert "also gave 'EXTRA', which it does not know: send only 'IMAGE'" in message
    assert "missing" not in message


def test_inputs_without_image_are_refused_naming_them_and_the_one_expected() -> None:
    request = service_pb2.ModelInferRequest(model_name=ENSEMBLE_NAME)
    request.inputs.add(name="image", datatype="BYTES", shape=[1, 1])
    request.inputs.add(name="PICTURE", datatype="BYTES", shape=[1, 1])
    message = refusal_message(request)
    assert "gave 'image', 'PICTURE', which it does not know, and no 'IMAGE': send the images as 'IMAGE'" in message


def test_a_request_without_inputs_or_with_image_twice_is_refused() -> None:
    assert "the request gave no input: send the images as 'IMAGE'" in \
        refusal_message(service_pb2.ModelInferRequest(model_name=ENSEMBLE_NAME))
    twice = image_request([1, 1])
    twice.inputs.add(name="IMAGE", datatype="BYTES", shape=[1, 1])
    twice.raw_input_contents.append(bytes_tensor([b"again"]))
    assert "gave 'IMAGE' 2 times: send all the images as rows of one 'IMAGE'" in refusal_message(twice)


# --- Refused: IMAGE's datatype and shape ------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", ["UINT8", "FP32", ""])
def test_an_image_that_is_not_bytes_is_refused(datatype: str) -> None:
    message = refusal_message(image_request([1, 1], datatype=datatype))
    assert message.startswith("input 'IMAGE' of model 'dermassist' must be BYTES")
    assert f"got {datatype or 'no datatype'}:" in message and "InferInput('IMAGE', [n, 1], 'BYTES')" in message


@pytest.mark.parametrize(("shape", "fix"), [
    ([0, 1], "send at least one image"),
    ([-1, 1], "send at least one image"),
    ([MAX_BATCH_SIZE + 1, 1], f"send at most {MAX_BATCH_SIZE} images a request"),
    ([2], "give the shape [number of images, 1]"),
    ([1, 2], "give the shape [number of images, 1]"),
    ([1, 1, 1], "give the shape [number of images, 1]"),
    ([], "give the shape [number of images, 1]"),
])
def test_an_image_of_the_wrong_shape_is_refused_with_the_shape_expected_and_the_fix(shape: list[int], fix: str) -> None:
    message = refusal_message(image_request(shape, [b"picture"]))
    given = "[" + ", ".join(str(d) for d in shape) + "]"
    assert message.startswith(f"input 'IMAGE' of model 'dermassist' must have shape [n, 1] with n from 1 to "
                              f"{MAX_BATCH_SIZE} images, got {given}: ")
    assert fix in message and "4294967295" not in message


# --- Refused: the number of images given ------------------------------------------------------------------------


@pytest.mark.parametrize("typed", [False, True], ids=["raw_input_contents", "contents"])
@pytest.mark.parametrize(("rows", "given", "held"), [
    (1, 0, "0 elements"),
    (2, 1, "1 element:"),
    (1, 3, "3 elements"),
    (2, MAX_BATCH_SIZE + 5, f"more than {MAX_BATCH_SIZE} elements"),
])
def test_a_shape_that_does_not_match_the_images_given_is_refused(rows: int, given: int, held: str, typed: bool) -> None:
    request = image_request([rows, 1], [b"picture"] * given, typed=typed)
    if typed and given > MAX_BATCH_SIZE:
        held = f"{given} elements"  # a typed list is counted whole (its length is known)
    field = "contents.bytes_contents" if typed else "raw_input_contents"
    image_word = "image" if rows == 1 else "images"
    message = refusal_message(request)
    assert f"input 'IMAGE' of model 'dermassist' has shape [{rows}, 1] ({rows} {image_word}) but its {field} hold " \
           f"{held}" in message
    assert "send one element per image and give the shape [number of images, 1]" in message


def test_raw_contents_that_are_not_a_bytes_tensor_are_refused() -> None:
    request = image_request([1, 1])
    request.raw_input_contents[0] = struct.pack("<I", 10) + b"abc"  # says 10 bytes, holds 3
    message = refusal_message(request)
    assert "the raw_input_contents of input 'IMAGE' of model 'dermassist' are not a BYTES tensor" in message
    assert "runs past the end" in message and "4-byte little-endian length" in message


def test_raw_contents_for_more_inputs_than_the_one_given_are_refused() -> None:
    request = image_request([1, 1])
    request.raw_input_contents.append(bytes_tensor([b"stray"]))
    assert "holds 2 raw_input_contents for its one input 'IMAGE'" in refusal_message(request)


def test_an_image_in_a_shared_memory_region_is_left_for_triton_to_count() -> None:
    """Its bytes are in a region an admin registered, not in the request: the front cannot count them."""
    request = image_request([1, 1], [])
    request.inputs[0].parameters["shared_memory_region"].string_param = "images"
    request.inputs[0].parameters["shared_memory_byte_size"].int64_param = 1024
    assert request_refusal(request) is None


def test_the_classification_extension_is_still_named_first() -> None:
    request = image_request([0, 1])
    request.outputs.add(name="NOTE").parameters["classification"].int64_param = 1
    assert "the classification extension (its parameter 'classification')" in refusal_message(request)


# --- Refused: the request id ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [ENSEMBLE_NAME, PREPARE_MODEL, "no_such_model"])
def test_an_id_longer_than_the_audit_trail_records_is_refused_naming_the_limit_the_length_and_the_fix(model: str) -> None:
    """The audit line kept only its first 128 characters: two such ids sharing them could not be told apart."""
    request = image_request([1, 1], model=model)
    request.id = "a" * (MAX_ID_CHARS + 1)
    message = refusal_message(request)
    assert message.startswith(f"the request id is {MAX_ID_CHARS + 1} characters long; expected at most {MAX_ID_CHARS} "
                              "characters")
    assert "send a shorter id, e.g. a UUID" in message


def test_an_id_at_the_limit_and_the_sdks_ids_are_forwarded() -> None:
    request = image_request([1, 1])
    request.id = "a" * MAX_ID_CHARS
    assert request_refusal(request) is None
    sdk_id = new_request_id()  # what dermassist_client sends with every request: 32 hex characters
    assert len(sdk_id) == 32 and int(sdk_id, 16) >= 0
    request.id = sdk_id
    assert request_refusal(request) is None


# --- Refused: the outputs named -----------------------------------------------------------------------------------


def output_request(*names: str) -> service_pb2.ModelInferRequest:
    """A well-formed request of the ensemble asking for the outputs ``names``."""
    request = image_request([1, 1])
    for name in names:
        request.outputs.add(name=name)
    return request


def test_every_output_of_the_contract_may_be_asked_for_alone_or_all_together() -> None:
    names = [spec.name for spec in ENSEMBLE_OUTPUTS]
    assert request_refusal(output_request(*names)) is None
    for name in names:
        assert request_refusal(output_request(name)) is None, name


@pytest.mark.parametrize("name", ["FOO", "SEG_PROB", "", "PROBABILITIES "])
def test_an_output_the_ensemble_does_not_have_is_refused_listing_the_outputs_it_has(name: str) -> None:
    """Triton's own text named neither the outputs there are nor a fix ("unexpected inference output 'FOO' ...")."""
    message = refusal_message(output_request("MASK", name))
    listed = ", ".join(repr(spec.name) for spec in ENSEMBLE_OUTPUTS)
    assert message.startswith(f"model 'dermassist' has no output {name!r}; expected output names from {listed}: ")
    assert "ask only for outputs of that list, or name none to get every output but CROP and CAM" in message
    assert "case-sensitive" not in message and "unexpected inference output" not in message


@pytest.mark.parametrize(("name", "meant"), [("probabilities", "PROBABILITIES"), ("Mask", "MASK"),
                                             ("refer_score", "REFER_SCORE")])
def test_an_output_named_in_another_case_is_told_names_are_case_sensitive_and_which_was_meant(name: str, meant: str) -> None:
    message = refusal_message(output_request(name))
    assert f"has no output {name!r};" in message
    assert message.endswith(f"output names are case-sensitive: ask for {meant!r}, not {name!r}")


def test_several_unknown_outputs_are_named_once_each_with_the_fix_of_each_kind() -> None:
    message = refusal_message(output_request("FOO", "probabilities", "FOO", "NOTE"))
    assert "has no outputs 'FOO', 'probabilities'; expected" in message
    assert "output names are case-sensitive: ask for 'PROBABILITIES', not 'probabilities'; ask only for outputs of " \
           "that list" in message


def test_the_outputs_asked_of_an_internal_step_are_left_to_triton() -> None:
    """Only admin-key holders reach the steps (checked apart), and a step's outputs are not the ensemble's."""
    request = image_request([1, 1], model=PREPARE_MODEL)
    request.outputs.add(name="SEG_INPUT")
    request.outputs.add(name="foo")
    assert request_refusal(request) is None


# --- Through the front ---------------------------------------------------------------------------------------


@pytest.fixture
def front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """A Front on loopback before a stand-in Triton that answers every request it gets (and counts them)."""
    real = front_module.request_images

    def slow_hashing(request, key):
        time.sleep(HASHING_DELAY_S)  # the audit line must still be on disk when the refusal arrives
        return real(request, key)

    monkeypatch.setattr(front_module, "request_images", slow_hashing)
    audit = tmp_path / "audit.jsonl"
    forwarded: list[service_pb2.ModelInferRequest] = []

    async def answer(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        request = service_pb2.ModelInferRequest.FromString(raw)
        forwarded.append(request)
        return service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id).SerializeToString()

    with front_before_stand_in(audit, model_infer=answer) as served:
        yield SimpleNamespace(address=served.address, audit=audit, forwarded=forwarded)


def test_a_malformed_request_is_refused_at_the_front_with_its_audit_line_and_never_reaches_triton(front) -> None:
    no_rows = image_request([0, 1], [])
    no_rows.id = "no-rows"
    extra = image_request([1, 1])
    extra.id = "extra-input"
    extra.inputs.add(name="EXTRA", datatype="BYTES", shape=[1, 1])
    extra.raw_input_contents.append(bytes_tensor([b"more"]))
    refused: dict[str, tuple[grpc.StatusCode, str, list[dict]]] = {}
    with grpc.insecure_channel(front.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for request in (no_rows, extra):
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(request, timeout=20)
            lines = audit_lines(front.audit)  # read the moment the error arrived, without waiting
            refused[request.id] = (info.value.code(), info.value.details(), lines)
    for request_id, words in (("no-rows", "must have shape [n, 1]"), ("extra-input", "also gave 'EXTRA'")):
        code, details, lines = refused[request_id]
        assert code == grpc.StatusCode.INVALID_ARGUMENT and words in details, details
        line = lines[-1]
        assert (line["request_id"], line["status"], line["error"]) == (request_id, "INVALID_ARGUMENT", details)
    assert [line["request_id"] for line in audit_lines(front.audit)] == ["no-rows", "extra-input"]
    assert front.forwarded == []


def test_a_long_id_and_an_unknown_output_are_refused_at_the_front_and_audited_without_reaching_triton(front) -> None:
    """Two ids that share their first 128 characters: each refused, each audited with its id cut and marked as such,
    so a line's request_id is in full whenever it is not marked."""
    common = "c" * MAX_ID_CHARS
    requests = [image_request([1, 1]) for _ in range(3)]
    requests[0].id, requests[1].id = common + "-first", common + "-second"
    requests[2].id = "unknown-output"
    requests[2].outputs.add(name="probabilities")
    refused: list[tuple[grpc.StatusCode, str, dict]] = []
    with grpc.insecure_channel(front.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for request in requests:
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(request, timeout=20)
            refused.append((info.value.code(), info.value.details(), audit_lines(front.audit)[-1]))
        at_limit = image_request([1, 1])
        at_limit.id = common
        assert stub.ModelInfer(at_limit, timeout=20).id == common
    assert [r.id for r in front.forwarded] == [common]
    for (code, details, line), length in zip(refused[:2], (MAX_ID_CHARS + 6, MAX_ID_CHARS + 7)):
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert f"the request id is {length} characters long; expected at most {MAX_ID_CHARS}" in details
        assert (line["status"], line["error"]) == ("INVALID_ARGUMENT", details)
        assert line["request_id"] == common[:-1] + "…" and line["request_id_shortened_from"] == length
        assert line["images"][0]["sha256"]  # audited like any other refusal
    code, details, line = refused[2]
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "ask for 'PROBABILITIES', not 'probabilities'" in details
    assert (line["request_id"], line["status"]) == ("unknown-output", "INVALID_ARGUMENT")
    answered = audit_lines(front.audit)[-1]
    assert (answered["request_id"], answered["status"]) == (common, "OK")
    assert "request_id_shortened_from" not in answered


def test_long_names_a_client_gives_get_their_own_refusal_and_a_short_audit_line(front) -> None:
    """A 20,000-character output, model name, datatype or version, or 200 unknown inputs, reached the client as
    RESOURCE_EXHAUSTED (gRPC's 16 KiB status limit) and a 50 MiB model name made a 52 MB audit line (fuzz audit 6):
    each is refused with its own status, quoting at most MAX_NAME_CHARS of it, and audited cut to that, marked."""
    long = "x" * 20_000
    output = image_request([1, 1])
    output.outputs.add(name=long)
    model = image_request([1, 1], model=long)
    datatype = image_request([1, 1], datatype=long)
    version = image_request([1, 1])
    version.model_version = "9" * 20_000
    inputs = image_request([1, 1])
    for i in range(200):
        inputs.inputs.add(name=f"EXTRA_{i:03d}_" + "y" * 150, datatype="BYTES", shape=[1, 1])
    shape = image_request([1] * 5_000, [b"picture"])
    cases = [(output, grpc.StatusCode.INVALID_ARGUMENT), (model, grpc.StatusCode.NOT_FOUND),
             (datatype, grpc.StatusCode.INVALID_ARGUMENT), (version, grpc.StatusCode.INVALID_ARGUMENT),
             (inputs, grpc.StatusCode.INVALID_ARGUMENT), (shape, grpc.StatusCode.INVALID_ARGUMENT)]
    details = []
    with grpc.insecure_channel(front.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for request, expected in cases:
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(request, timeout=20)
            assert info.value.code() == expected, info.value.details()
            details.append(info.value.details())
        for method in ("ModelMetadata", "ModelReady", "ServerMetadata", "ServerLive"):  # bytes that are no request
            with pytest.raises(grpc.RpcError) as info:
                channel.unary_unary(f"/inference.GRPCInferenceService/{method}")(b"\xff\xff\xff", timeout=20)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, info.value.details())
            assert "the request is not a " in info.value.details()
        for call, message in ((stub.ModelMetadata, service_pb2.ModelMetadataRequest(name="dermassist", version="abc")),
                              (stub.ModelReady, service_pb2.ModelReadyRequest(name="dermassist", version="1.0"))):
            with pytest.raises(grpc.RpcError) as info:
                call(message, timeout=20)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
            assert "is not a version number" in info.value.details()
        for call, message in ((stub.ModelMetadata, service_pb2.ModelMetadataRequest(name=long)),
                              (stub.ModelReady, service_pb2.ModelReadyRequest(name=long))):
            with pytest.raises(grpc.RpcError) as info:
                call(message, timeout=20)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND, info.value.details()
            details.append(info.value.details())
    assert all(len(d) < 2_000 for d in details)
    assert "and 195 more" in details[4] and "(5000 dimensions)" in details[5]
    lines = audit_lines(front.audit)
    assert len(lines) == len(cases) and all(len(json.dumps(line)) < 20_000 for line in lines)
    assert lines[1]["model"] == "x" * (MAX_NAME_CHARS - 1) + "…" and lines[1]["model_shortened_from"] == 20_000
    assert lines[3]["model_version_shortened_from"] == 20_000
    assert [e["input"] for e in lines[4]["images"][1:3]] == [f"EXTRA_{i:03d}_" + "y" * 53 + "…" for i in (0, 1)]
    assert lines[4]["images"][-1]["inputs_not_recorded"] == 201 - MAX_INPUTS_RECORDED
    assert front.forwarded == []


def test_the_sdks_request_still_goes_through_the_front(front) -> None:
    client = grpcclient.InferenceServerClient(front.address)
    tensor = grpcclient.InferInput("IMAGE", [2, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[b"\xff\xd8 one"], [b"\xff\xd8 two"]], dtype=object))
    try:
        answer = client.infer(ENSEMBLE_NAME, [tensor], request_id="sdk-1", client_timeout=20)
    finally:
        client.close()
    assert answer.get_response().id == "sdk-1"
    (forwarded,) = front.forwarded
    assert [(t.name, t.datatype, list(t.shape)) for t in forwarded.inputs] == [("IMAGE", "BYTES", [2, 1])]
    (line,) = audit_lines(front.audit)
    assert line["status"] == "OK" and len(line["images"]) == 2


def test_served_extensions_drop_the_unserved_ones_and_without_the_key_the_restricted_ones() -> None:
    from dermassist.guard.front import served_extensions

    listed = ["classification", "sequence", "model_repository", "model_repository(unload_dependents)",
              "schedule_policy", "model_configuration", "system_shared_memory", "cuda_shared_memory",
              "binary_tensor_data", "parameters", "statistics", "trace", "logging"]
    assert served_extensions(listed, admin=False) == ["schedule_policy", "binary_tensor_data", "parameters"]
    assert served_extensions(listed, admin=True) == [e for e in listed if e not in ("classification", "sequence")]
    assert served_extensions(["a_new_extension"], admin=False) == ["a_new_extension"]  # unknown: passed on as listed


def test_a_version_that_is_no_number_and_images_sent_two_ways_are_refused_in_house_words() -> None:
    """Triton's own words came back ('stol'; 'contents field must not be specified ...'), without a fix (fuzz 12.9)."""
    for version in ("abc", "1.0", "-1", "١", "9" * 19):  # an Arabic-Indic digit; 19 nines pass int64
        request = image_request([1, 1])
        request.model_version = version
        assert "is not a version number; a version is a whole number" in refusal_message(request)
    for version in ("", "1", "12", str(2**63 - 1)):
        request = image_request([1, 1])
        request.model_version = version
        assert request_refusal(request) is None
    both = image_request([1, 1])
    both.inputs[0].contents.bytes_contents.append(b"picture 0")
    assert "came both as raw_input_contents and as contents: send its images one way only" in refusal_message(both)


def _both_ways() -> service_pb2.ModelInferRequest:
    request = image_request([1, 1], typed=True)
    request.raw_input_contents.append(bytes_tensor([b"picture"]))
    return request


def _long_id() -> service_pb2.ModelInferRequest:
    request = image_request([1, 1])
    request.id = "a" * 200
    return request


def _malformed_raw() -> service_pb2.ModelInferRequest:
    request = image_request([1, 1])
    request.raw_input_contents[0] = b"\xff\xff\x00\x00 too short"
    return request


@pytest.mark.parametrize("make", [lambda: image_request([1, 1], datatype="FP32"), _both_ways, _long_id, _malformed_raw],
                         ids=["datatype", "both_ways", "long_id", "malformed_raw"])
def test_a_refusal_says_the_fix_in_the_protocols_terms_not_only_pythons(make) -> None:
    """A Node, Java or Go developer was told only tritonclient calls and uuid.uuid4() (Node.js integrator audit, N5)."""
    message = refusal_message(make())
    assert "uuid.uuid4" not in message and "set_data_from_numpy" not in message
    assert "tritonclient" not in message or "Python's tritonclient" in message
    assert any(term in message for term in ("shape [n, 1]", "contents.bytes_contents", "hex digits",
                                            "4-byte little-endian length")), message
