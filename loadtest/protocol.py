"""KServe v2 gRPC messages for the ensemble, built from the generated stubs (no tritonclient runtime).

Raw gRPC keeps Locust's gevent loop in charge of every socket; BYTES tensors travel in
``raw_input_contents`` as one 4-byte little-endian length prefix per element, then the bytes.
"""
from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from tritonclient.grpc import service_pb2

from dermassist_client.classes import (
    CLASS_CODES,
    CORE_OUTPUTS,
    INPUT_DATATYPE,
    INPUT_IMAGE,
    MODEL_NAME,
    OUTPUT_ASSESSABLE,
    OUTPUT_PROBABILITIES,
    OUTPUT_REFER,
    TRIAGE_OUTPUTS,
)
from dermassist_client.translate import STEP_UNHEALTHY

from .errors import LoadtestError

# Outputs the load test asks for: every output a clinic client reads (ASSESSABLE and REFER, which the answers'
# check reads, among them); CROP and CAM are optional and left out on purpose.
REQUESTED_OUTPUTS = CORE_OUTPUTS + TRIAGE_OUTPUTS
# How far a row of PROBABILITIES (FP32 softmax) may sum from 1.
PROBABILITY_SUM_TOLERANCE = 1e-3
# No client-side cap on message sizes: a batch of 3000x2000 JPEGs is several MB. A local subchannel pool per
# channel: with gRPC's default global pool every channel of a process to one address shares ONE connection, so
# Locust's users would not spread over the pods behind a ClusterIP as separate clients do.
CHANNEL_OPTIONS = (("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1),
                   ("grpc.use_local_subchannel_pool", 1))


def _read(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def open_channel(host: str, root_certificates: str = "", private_key: str = "",
                 certificate_chain: str = "") -> grpc.Channel:
    """A channel to ``host`` as every load-test client opens it: TLS with ``root_certificates`` (a PEM file, the CA of
    the server's certificate), presenting the client certificate ``certificate_chain`` with its ``private_key`` (PEM
    files, for mutual TLS) when they are given, else plain gRPC; CHANNEL_OPTIONS either way."""
    if root_certificates:
        credentials = grpc.ssl_channel_credentials(root_certificates=_read(root_certificates),
                                                   private_key=_read(private_key),
                                                   certificate_chain=_read(certificate_chain))
        return grpc.secure_channel(host, credentials, options=CHANNEL_OPTIONS)
    return grpc.insecure_channel(host, options=CHANNEL_OPTIONS)


def serialize_bytes_elements(elements: Sequence[bytes]) -> bytes:
    """Encode BYTES tensor elements the way Triton reads raw contents: <uint32 LE length><bytes> each."""
    return b"".join(struct.pack("<I", len(e)) + bytes(e) for e in elements)


def infer_request(images: Sequence[bytes], request_id: str = "", model: str = MODEL_NAME) -> service_pb2.ModelInferRequest:
    """A ModelInferRequest carrying one encoded image per batch row of IMAGE ([N, 1] BYTES)."""
    tensor = service_pb2.ModelInferRequest().InferInputTensor(name=INPUT_IMAGE, datatype=INPUT_DATATYPE, shape=[len(images), 1])
    request = service_pb2.ModelInferRequest(model_name=model, id=request_id, inputs=[tensor])
    request.outputs.extend(service_pb2.ModelInferRequest().InferRequestedOutputTensor(name=n) for n in REQUESTED_OUTPUTS)
    request.raw_input_contents.append(serialize_bytes_elements(images))
    return request


def response_rows(response: service_pb2.ModelInferResponse) -> int:
    """Batch size of a response (first dim of PROBABILITIES), or -1 when that output is absent."""
    for out in response.outputs:
        if out.name == OUTPUT_PROBABILITIES:
            return int(out.shape[0])
    return -1


class BadAnswer(LoadtestError):
    """An answer of the ensemble that breaks its contract: an output missing or of the wrong size, probabilities that
    do not sum to 1."""


@dataclass(frozen=True)
class Answer:
    """What the load test reads of one answer: each image's ASSESSABLE and REFER flags."""

    assessable: tuple[bool, ...]
    refer: tuple[bool, ...]


def _raw_output(response: service_pb2.ModelInferResponse, name: str, datatype: str, per_row: int, rows: int) -> bytes:
    for index, out in enumerate(response.outputs):
        if out.name == name:
            if out.datatype != datatype:
                raise BadAnswer(f"output {name} came as {out.datatype}, expected {datatype}")
            if index >= len(response.raw_output_contents):
                raise BadAnswer(f"output {name} has no raw contents (the server must answer in raw_output_contents)")
            raw = response.raw_output_contents[index]
            if len(raw) != per_row * rows:
                raise BadAnswer(f"output {name} has {len(raw)} bytes, expected {per_row * rows} ({rows} rows of "
                                f"{per_row})")
            return raw
    raise BadAnswer(f"output {name} is missing from the answer (it was asked for)")


def read_answer(response: service_pb2.ModelInferResponse, rows: int) -> Answer:
    """The ASSESSABLE and REFER flags of an answer of ``rows`` images; raise BadAnswer when an output is missing or of
    the wrong size, or a row of PROBABILITIES does not sum to 1 (within PROBABILITY_SUM_TOLERANCE)."""
    classes = len(CLASS_CODES)
    probabilities = struct.unpack(f"<{rows * classes}f",
                                  _raw_output(response, OUTPUT_PROBABILITIES, "FP32", 4 * classes, rows))
    for row in range(rows):
        total = math.fsum(probabilities[row * classes:(row + 1) * classes])
        if not abs(total - 1.0) <= PROBABILITY_SUM_TOLERANCE:  # NaN fails too
            raise BadAnswer(f"PROBABILITIES of row {row} sum to {total:.6g}, expected 1 (a softmax); the classifier "
                            "or its export is broken")
    assessable = _raw_output(response, OUTPUT_ASSESSABLE, "BOOL", 1, rows)
    refer = _raw_output(response, OUTPUT_REFER, "BOOL", 1, rows)
    return Answer(tuple(b != 0 for b in assessable), tuple(b != 0 for b in refer))


def retryable(code: object, details: str) -> bool:
    """Whether a failed call may be sent again (``code`` a grpc.StatusCode name or member): the server is not
    ready, dropped the call as it began stopping (CANCELLED: the user never cancels one, its timeout ends one
    DEADLINE_EXCEEDED), or a step is being healed (the client's STEP_UNHEALTHY text); inference is idempotent."""
    name = getattr(code, "name", str(code))
    return name in ("UNAVAILABLE", "CANCELLED") or (name == "INTERNAL" and STEP_UNHEALTHY in (details or ""))


def backoff_s(attempt: int, initial_s: float = 0.1, cap_s: float = 2.0) -> float:
    """Seconds before retry number ``attempt`` (0-based): doubling from ``initial_s`` up to ``cap_s``."""
    return min(cap_s, initial_s * (2 ** attempt))


def rejection_outcome(code: object | None, expected: object, detail: str = "") -> str | None:
    """Judge a call that had to be rejected: None when it came back with ``expected`` (a grpc.StatusCode),
    else a message saying what happened instead (``code`` None means the server accepted it)."""
    if code is None:
        return f"bad input was accepted; the server must reject it with {expected}"
    if code != expected:
        return f"bad input failed with {code}, expected {expected}: {detail}"
    return None
