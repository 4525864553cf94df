"""The rows of a refused batch as trailing metadata (``dermassist-bad-rows``): a client without the SDK sends the
other rows again without parsing the refusal's words (Node.js integrator audit, N4)."""
from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dermassist.base.steps import refuse_bad_rows
from dermassist.guard.statuses import bad_rows
from preprocess.contract import BAD_ROWS_METADATA, ENSEMBLE_NAME
from preprocess.errors import InvalidImageError

from .loopback import front_before_stand_in

REFUSAL = ("in ensemble 'dermassist', prepare: IMAGE row 0: JPEG input of 12330 bytes ends before its end marker; the "
           "file is truncated; IMAGE row 2: image is empty (0 bytes); IMAGE row 11: not an image")


def test_the_rows_named_by_the_steps_refusal_are_found_in_its_words() -> None:
    bad = [InvalidImageError("empty; truly"), object(), InvalidImageError("not an image"), InvalidImageError("x")]
    with pytest.raises(InvalidImageError) as info:
        refuse_bad_rows(bad)  # type: ignore[arg-type]
    assert bad_rows(str(info.value)) == [0, 2, 3]
    assert bad_rows(REFUSAL) == [0, 2, 11]
    assert bad_rows("IMAGE row two: no") == [] and bad_rows("") == []


def _send(address: str) -> grpc.RpcError:
    request = service_pb2.ModelInferRequest(model_name=ENSEMBLE_NAME)
    image = request.inputs.add(name="IMAGE", datatype="BYTES", shape=[12, 1])
    image.contents.bytes_contents.extend([b"\xff\xd8 a picture"] * 12)
    with grpc.insecure_channel(address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=20)
    return info.value


@pytest.mark.parametrize(("code", "details", "sent"), [
    (grpc.StatusCode.INVALID_ARGUMENT, REFUSAL, "0,2,11"),
    (grpc.StatusCode.INVALID_ARGUMENT, "model 'dermassist' takes one input", None),  # no row named: no key
    (grpc.StatusCode.INTERNAL, "IMAGE row 1: a step failed", None),  # not a refusal of the images
])
def test_a_refusal_naming_rows_carries_them_as_trailing_metadata(
        tmp_path: Path, code: grpc.StatusCode, details: str, sent: str | None) -> None:
    async def refuse(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(code, details)
        raise AssertionError("abort returned")

    with front_before_stand_in(tmp_path / "audit.jsonl", model_infer=refuse) as served:
        error = _send(served.address)
    assert error.code() == code and error.details() == details
    trailing = dict(error.trailing_metadata() or ())
    assert trailing.get(BAD_ROWS_METADATA) == sent
