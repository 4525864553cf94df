"""Small tritonclient helpers shared by the integration tests."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from preprocess.contract import ENSEMBLE_NAME, ENSEMBLE_OUTPUTS, IMAGE

OUTPUT_NAMES = tuple(spec.name for spec in ENSEMBLE_OUTPUTS)


def image_batch(blobs: Sequence[bytes]) -> np.ndarray:
    """The IMAGE tensor for a list of encoded images: object array (N, 1)."""
    return np.array([[b] for b in blobs], dtype=object)


def infer(url: str, blobs: Sequence[bytes], protocol: str = "grpc", timeout: float | None = None,
          outputs: Sequence[str] = OUTPUT_NAMES) -> dict[str, np.ndarray]:
    """Send one request to the ensemble asking for ``outputs`` (default: every contract output); return every
    output the answer holds, by name."""
    lib = grpcclient if protocol == "grpc" else httpclient
    client = lib.InferenceServerClient(url)
    try:
        tensor = lib.InferInput(IMAGE.name, [len(blobs), 1], "BYTES")
        tensor.set_data_from_numpy(image_batch(blobs))
        requested = [lib.InferRequestedOutput(name) for name in outputs]
        kwargs = {"client_timeout": timeout} if protocol == "grpc" and timeout else {}
        result = client.infer(ENSEMBLE_NAME, [tensor], outputs=requested, **kwargs)
        response = result.get_response()
        held = [o.name for o in response.outputs] if protocol == "grpc" else [o["name"] for o in response["outputs"]]
        return {name: result.as_numpy(name) for name in held}
    finally:
        client.close()


def readiness_handler(request_type: Any, response_type: Any, answer: Callable[[], bool]) -> grpc.RpcMethodHandler:
    """A stand-in KServe ``ServerReady``/``ModelReady`` method answering ``ready=answer()`` (read at each call)."""
    return grpc.unary_unary_rpc_method_handler(lambda _request, _context: response_type(ready=answer()),
                                               request_deserializer=request_type.FromString,
                                               response_serializer=response_type.SerializeToString)
