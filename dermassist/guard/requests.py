"""What an inference request to the ensemble may hold, checked by the front before it reaches Triton (its id, model,
input, image tensor and the outputs it names: each refusal names what was expected and the fix), and the outputs the
front adds to a request and takes out of its answer again."""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import grpc
from tritonclient.grpc import service_pb2

from preprocess.contract import (
    ALL_MODELS,
    ASSESSABLE,
    ENSEMBLE_INPUTS,
    ENSEMBLE_NAME,
    ENSEMBLE_OUTPUTS,
    IMAGE,
    IMAGE_WIRE_DATATYPE,
    MAX_BATCH_SIZE,
    ON_REQUEST_OUTPUTS,
    PROBABILITIES,
    REFER,
)

from ..base.bytes_tensor import MalformedTensor, iter_elements
from .audit import MAX_ID_CHARS, MAX_NAME_CHARS, clip

# KServe's classification extension: Triton 2.51 dies (SIGFPE) when it is asked of a BYTES output such as NOTE.
CLASSIFICATION_PARAMETER = "classification"
# What a request naming no outputs gets: every output but those sent only on request (CROP, CAM).
DEFAULT_OUTPUTS = tuple(s.name for s in ENSEMBLE_OUTPUTS if s not in ON_REQUEST_OUTPUTS)
# The outputs a client may ask the ensemble for, by name (the public contract's), and those sent only when asked for.
OUTPUT_NAMES = tuple(s.name for s in ENSEMBLE_OUTPUTS)
ON_REQUEST_NAMES = tuple(s.name for s in ON_REQUEST_OUTPUTS)


# What every audit line records of an answer (top class, REFER, ASSESSABLE): asked of the ensemble for a request
# that names only other outputs, and taken out of its answer again.
AUDITED_OUTPUTS = (PROBABILITIES.name, REFER.name, ASSESSABLE.name)


# KServe's parameter of an input whose bytes are in a registered shared-memory region instead of the request.
SHARED_MEMORY_REGION = "shared_memory_region"


def shape_text(shape: Sequence[int | str]) -> str:
    """A tensor's shape as the messages write it: [2, 1]."""
    return f"[{', '.join(str(d) for d in shape)}]"


def image_shape(rows: int | str) -> str:
    """The shape of an IMAGE tensor of ``rows`` rows: [rows, 1]."""
    return shape_text([rows, *IMAGE.dims])


IMAGE_FORM = (f"{IMAGE.name!r} ({IMAGE_WIRE_DATATYPE}, shape {image_shape('n')}: one encoded image per row, "
              f"n from 1 to {MAX_BATCH_SIZE})")


def request_refusal(request: service_pb2.ModelInferRequest) -> tuple[grpc.StatusCode, str] | None:
    """Why the front refuses a request before it reaches Triton (status and message), or None to forward it."""
    problem = id_problem(request.id)
    if problem is not None:
        return grpc.StatusCode.INVALID_ARGUMENT, problem
    if request.model_name not in ALL_MODELS:
        return (grpc.StatusCode.NOT_FOUND,
                unknown_model(request.model_name))
    problem = version_problem(request.model_version)
    if problem is not None:
        return grpc.StatusCode.INVALID_ARGUMENT, problem
    for output in request.outputs:
        if CLASSIFICATION_PARAMETER in output.parameters:
            return (grpc.StatusCode.INVALID_ARGUMENT,
                    f"output {quoted(output.name)} asks for the classification extension (its parameter "
                    f"{quoted(CLASSIFICATION_PARAMETER)}), which is not "
                    f"served; ask for {PROBABILITIES.name} (8 probabilities in the contract's class order) and rank "
                    "them yourself")
    if request.model_name == ENSEMBLE_NAME:
        problem = input_problem(request) or image_problem(request) or output_problem(request)
        if problem is not None:
            return grpc.StatusCode.INVALID_ARGUMENT, problem
    return None


def unknown_model(name: str) -> str:
    """The refusal of a model name no served model has (NOT_FOUND), quoting at most MAX_NAME_CHARS of it."""
    return f"no model named {quoted(name)}; clients call {ENSEMBLE_NAME!r}"


def version_problem(version: str) -> str | None:
    """Why a model version a client names is none Triton could serve (it is a whole number, an int64: Triton's own
    refusal quotes 'stol'), or None; empty means the version served."""
    if not version or (len(version) <= MAX_VERSION_CHARS and version.isascii() and version.isdigit()
                       and int(version) <= 2**63 - 1):
        return None
    return (f"model version {quoted(version)} is not a version number; a version is a whole number of at most "
            f"{MAX_VERSION_CHARS} digits (up to 2**63 - 1): send e.g. '1', or none for the version served")


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


#: The most of a client's names (inputs, outputs) a refusal quotes; each is cut to MAX_NAME_CHARS: a refusal's words
#: travel in gRPC's status, at most 16 KiB, and one quoting 20,000 characters reached the client as RESOURCE_EXHAUSTED
#: ("metadata size exceeds hard limit") instead of its own status.
MAX_NAMES_QUOTED = 5
#: The most characters of a model version: Triton's versions are whole numbers (int64), and its refusal of an unknown
#: one quotes it whole.
MAX_VERSION_CHARS = 19
#: The most dimensions of a client's shape a refusal writes out.
MAX_DIMS_QUOTED = 8


def quoted(name: str) -> str:
    """A name the client gave, as a refusal quotes it: cut to MAX_NAME_CHARS."""
    return repr(clip(name, MAX_NAME_CHARS))


def _given(names: list[str]) -> str:
    """Names the client gave, quoted: the first MAX_NAMES_QUOTED, then how many more."""
    shown = ", ".join(quoted(n) for n in names[:MAX_NAMES_QUOTED])
    return shown if len(names) <= MAX_NAMES_QUOTED else f"{shown} and {len(names) - MAX_NAMES_QUOTED} more"


def given_shape(shape: Sequence[int]) -> str:
    """A shape the client gave, as a refusal writes it: at most MAX_DIMS_QUOTED dimensions, then how many more."""
    if len(shape) <= MAX_DIMS_QUOTED:
        return shape_text(shape)
    return f"{shape_text(shape[:MAX_DIMS_QUOTED])[:-1]}, ... ({len(shape)} dimensions)]"


def id_problem(request_id: str) -> str | None:
    """What is wrong with a request's id (longer than the audit trail records in full), or None."""
    if len(request_id) <= MAX_ID_CHARS:
        return None
    return (f"the request id is {len(request_id)} characters long; expected at most {MAX_ID_CHARS} characters (the "
            "audit trail records every id in full): send a shorter id, e.g. a UUID's 32 hex digits (as the DermAssist SDK "
            "sends), or none and the front gives the request one")


def output_problem(request: service_pb2.ModelInferRequest) -> str | None:
    """What is wrong with the outputs an ensemble request names (a name that is none of its outputs; one that is
    but for its case is told which was meant), or None."""
    unknown = list(dict.fromkeys(o.name for o in request.outputs if o.name not in OUTPUT_NAMES))
    if not unknown:
        return None
    by_case = {name.casefold(): name for name in OUTPUT_NAMES}
    meant = {name: by_case[name.casefold()] for name in unknown if name.casefold() in by_case}
    fixes = []
    if meant:
        fixes.append("output names are case-sensitive: ask for "
                     + ", ".join(f"{right!r}, not {quoted(wrong)}" for wrong, right in meant.items()))
    if len(meant) < len(unknown):
        fixes.append(f"ask only for outputs of that list, or name none to get every output but {' and '.join(ON_REQUEST_NAMES)}")
    return (f"model {ENSEMBLE_NAME!r} has no output{'s' if len(unknown) > 1 else ''} {_given(unknown)}; expected "
            f"output names from {_names(list(OUTPUT_NAMES))}: {'; '.join(fixes)}")


def input_problem(request: service_pb2.ModelInferRequest) -> str | None:
    """What is wrong with the inputs an ensemble request names (not exactly one IMAGE), or None."""
    names = [t.name for t in request.inputs]
    expected = {s.name for s in ENSEMBLE_INPUTS}
    unknown = [n for n in names if n not in expected]
    head = f"model {ENSEMBLE_NAME!r} takes one input, {IMAGE_FORM}"
    if unknown and IMAGE.name in names:
        return f"{head}; the request also gave {_given(unknown)}, which it does not know: send only {IMAGE.name!r}"
    if unknown:
        return (f"{head}; the request gave {_given(unknown)}, which it does not know, and no {IMAGE.name!r}: "
                f"send the images as {IMAGE.name!r}")
    if not names:
        return f"{head}; the request gave no input: send the images as {IMAGE.name!r}"
    if len(names) > 1:
        return (f"{head}; the request gave {IMAGE.name!r} {len(names)} times: send all the images as rows of one "
                f"{IMAGE.name!r}")
    return None


def _rows_of(shape: list[int]) -> int | None:
    """The number of images a shape of IMAGE says, or None when it is not [n, 1] at all."""
    if len(shape) == 1 + len(IMAGE.dims) and tuple(shape[1:]) == IMAGE.dims:
        return shape[0]
    return None


def _shape_fix(rows: int | None) -> str:
    if rows is not None and rows > MAX_BATCH_SIZE:
        return (f"send at most {MAX_BATCH_SIZE} images a request and the rest in further requests "
                "(the Python SDK's analyze_batch splits them)")
    if rows is not None:
        return "send at least one image (n is the number of images)"
    return f"give the shape {image_shape('number of images')}"


def count_elements(raw: bytes, limit: int) -> int:
    """How many elements the raw contents of a BYTES tensor hold, counted up to ``limit`` + 1 (more are not walked);
    raises MalformedTensor when the length prefixes walked do not fit."""
    return sum(1 for _ in itertools.islice(iter_elements(raw), limit + 1))


def image_problem(request: service_pb2.ModelInferRequest) -> str | None:
    """What is wrong with the IMAGE tensor of an ensemble request whose one input is IMAGE (its datatype, shape or
    number of elements), or None."""
    tensor = request.inputs[0]
    shape = list(tensor.shape)
    head = f"input {IMAGE.name!r} of model {ENSEMBLE_NAME!r}"
    if tensor.datatype != IMAGE_WIRE_DATATYPE:
        return (f"{head} must be {IMAGE_WIRE_DATATYPE} (the bytes of the encoded image files), got "
                f"{clip(tensor.datatype, MAX_NAME_CHARS) or 'no datatype'}: send each file's bytes as one "
                f"{IMAGE_WIRE_DATATYPE} element, the tensor of shape {image_shape('n')} (Python's tritonclient: "
                f"InferInput({IMAGE.name!r}, {image_shape('n')}, {IMAGE_WIRE_DATATYPE!r}))")
    rows = _rows_of(shape)
    if rows is None or not 1 <= rows <= MAX_BATCH_SIZE:
        return (f"{head} must have shape {image_shape('n')} with n from 1 to {MAX_BATCH_SIZE} images, got "
                f"{given_shape(shape)}: {_shape_fix(rows)}")
    if SHARED_MEMORY_REGION in tensor.parameters:  # the bytes are in a region (an admin API): Triton counts them
        return None
    raw = request.raw_input_contents
    if raw and tensor.contents.ByteSize():
        return (f"{head} came both as raw_input_contents and as contents: send its images one way only, all in "
                "raw_input_contents or all in contents.bytes_contents")
    if len(raw) > 1:
        return (f"the request to model {ENSEMBLE_NAME!r} holds {len(raw)} raw_input_contents for its one input "
                f"{IMAGE.name!r}: send all its images in one, each as a 4-byte little-endian length then its bytes")
    if raw:
        field = "raw_input_contents"
        try:
            given = count_elements(raw[0], MAX_BATCH_SIZE)
        except MalformedTensor as e:
            return (f"the raw_input_contents of {head} are not a {IMAGE_WIRE_DATATYPE} tensor ({e}): each image must be a "
                    "4-byte little-endian length followed by its bytes, the images one after another")
    else:
        field = "contents.bytes_contents"
        given = len(tensor.contents.bytes_contents)
    if given != rows:
        held = f"more than {MAX_BATCH_SIZE}" if raw and given > MAX_BATCH_SIZE else str(given)  # raw: walked so far
        return (f"{head} has shape {shape_text(shape)} ({rows} image{'s' if rows != 1 else ''}) but its {field} hold "
                f"{held} element{'s' if given != 1 else ''}: send one element per image and give the shape "
                f"{image_shape('number of images')}")
    return None


def with_default_outputs(request: service_pb2.ModelInferRequest) -> bool:
    """Name the default outputs of an ensemble request that names none (CROP and CAM only when asked for);
    whether any were named."""
    if request.model_name != ENSEMBLE_NAME or request.outputs:
        return False
    for name in DEFAULT_OUTPUTS:
        request.outputs.add(name=name)
    return True


def with_audited_outputs(request: service_pb2.ModelInferRequest) -> list[str]:
    """Add to an ensemble request that names its outputs the ones the audit records; the names added.

    A request naming no outputs gets the default outputs first (``with_default_outputs``); an internal step's
    request is left as it is.
    """
    if request.model_name != ENSEMBLE_NAME or not request.outputs:
        return []
    wanted = {o.name for o in request.outputs}
    added = [name for name in AUDITED_OUTPUTS if name not in wanted]
    for name in added:
        request.outputs.add(name=name)
    return added


def without_outputs(response: service_pb2.ModelInferResponse, names: list[str]) -> service_pb2.ModelInferResponse:
    """The answer without the outputs ``names`` (their tensors and raw contents alike), in the same order otherwise."""
    raw = list(response.raw_output_contents)
    kept = [i for i, o in enumerate(response.outputs) if o.name not in names]
    trimmed = service_pb2.ModelInferResponse()
    trimmed.CopyFrom(response)
    del trimmed.outputs[:]
    del trimmed.raw_output_contents[:]
    trimmed.outputs.extend(response.outputs[i] for i in kept)
    if raw:
        trimmed.raw_output_contents.extend(raw[i] for i in kept if i < len(raw))
    return trimmed


def images_in(request: service_pb2.ModelInferRequest) -> int:
    """How many pictures a request's IMAGE input holds, by its shape (0 without one)."""
    for tensor in request.inputs:
        if tensor.name == IMAGE.name and tensor.shape:
            return int(tensor.shape[0])
    return 0
