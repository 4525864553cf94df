"""asyncio transports over tritonclient's grpc.aio and http.aio clients; errors come out translated."""
from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from .classes import INPUT_DATATYPE, INPUT_IMAGE
from .config import ClientConfig
from .translate import closed_error
from .transport import (
    REQUEST_ID_HEADER,
    RawAnswer,
    call_error,
    grpc_channel_args,
    grpc_identity,
    grpc_tls_kwargs,
    http_identity,
    image_batch,
    left_of,
    output_names,
)


def _cancelled_by_its_caller() -> bool:
    """Whether the running task was cancelled by someone (a real cancellation), not by a close() of its channel.
    Python 3.9 and 3.10 cannot tell (no ``Task.cancelling``): there a cancellation on a closed client is its close."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling()) if cancelling is not None else False


async def _answer_of(what: str, call: Awaitable[Any], config: ClientConfig, closed: Callable[[], bool],
                     inference: bool = False) -> Any:
    """What ``call`` (doing ``what``) returns, its errors in the client's words (``call_error``). close() cancels the
    calls in flight: their callers get the closed client's error, not a cancellation no one asked for (under a
    TaskGroup the calls had vanished without an error; concurrency audit 2); a real cancellation stays one."""
    try:
        return await call
    except asyncio.CancelledError:
        if closed() and not _cancelled_by_its_caller():
            raise closed_error(what) from None
        raise
    except Exception as e:
        raise call_error(e, what, config, closed(), inference) from e


class AsyncGrpcTransport:
    """One grpc.aio channel, created on first use inside the running event loop."""

    def __init__(self, config: ClientConfig) -> None:
        import tritonclient.grpc as grpcclient
        import tritonclient.grpc.aio as grpcaio

        self._mod = grpcclient
        self._aio = grpcaio
        self.config = config
        self._client: Any = None
        self.closed = False

    def _get(self) -> Any:
        if self.closed:
            raise closed_error("calling the server")
        if self._client is None:
            self._client = self._aio.InferenceServerClient(
                self.config.url, channel_args=grpc_channel_args(self.config), **grpc_tls_kwargs(self.config)
            )
        return self._client

    async def _call(self, what: str, coro: Awaitable[Any], inference: bool = False) -> Any:
        return await _answer_of(what, coro, self.config, lambda: self.closed, inference)

    async def infer(self, images: Sequence[bytes], with_crop: bool, timeout_s: float, request_id: str = "") -> RawAnswer:
        """Send one request of len(images) rows."""
        batch = image_batch(images)
        inp = self._mod.InferInput(INPUT_IMAGE, list(batch.shape), INPUT_DATATYPE)
        inp.set_data_from_numpy(batch)
        outs = [self._mod.InferRequestedOutput(n) for n in output_names(with_crop)]
        result = await self._call(
            f"analyzing {len(images)} image(s) (request {request_id})",
            self._get().infer(self.config.model_name, [inp], model_version=self.config.model_version,
                              outputs=outs, client_timeout=timeout_s, request_id=request_id,
                              headers={REQUEST_ID_HEADER: request_id}),
            inference=True,
        )
        response = result.get_response()
        return RawAnswer({n: result.as_numpy(n) for n in output_names(with_crop)},
                         response.model_name, response.model_version, response.id or request_id,
                         **grpc_identity(response))

    async def live(self, timeout_s: float) -> bool:
        """Whether the server reports itself live."""
        return await self._call("health check", self._get().is_server_live(client_timeout=timeout_s))

    async def ready(self, timeout_s: float) -> bool:
        """Whether the server and the ensemble are ready."""
        client, end = self._get(), time.monotonic() + timeout_s
        if not await self._call("readiness check", client.is_server_ready(client_timeout=timeout_s)):
            return False
        return await self._call("readiness check", client.is_model_ready(
            self.config.model_name, self.config.model_version, client_timeout=left_of(end)))

    async def metadata(self, timeout_s: float, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The model's metadata as a dict (``headers``: extra request metadata)."""
        return await self._call("reading model metadata", self._get().get_model_metadata(
            self.config.model_name, self.config.model_version, headers=headers, as_json=True, client_timeout=timeout_s))

    async def close(self) -> None:
        """Close the channel."""
        self.closed = True
        if self._client is not None:
            await self._client.close()
            self._client = None


def http_ssl_context(config: ClientConfig) -> ssl_module.SSLContext | None:
    """An SSL context with the config's root and client certificates, or None without TLS."""
    if not config.ssl:
        return None
    context = ssl_module.create_default_context(
        cafile=None if config.root_certificates is None else str(config.root_certificates)
    )
    if config.certificate_chain is not None:
        context.load_cert_chain(str(config.certificate_chain), str(config.private_key))
    return context


class AsyncHttpTransport:
    """One aiohttp session (tritonclient.http.aio); every call is bounded with asyncio.wait_for."""

    def __init__(self, config: ClientConfig) -> None:
        import tritonclient.http as httpclient
        import tritonclient.http.aio as httpaio

        self._mod = httpclient
        self._aio = httpaio
        self.config = config
        self._client: Any = None
        self.closed = False

    def _get(self) -> Any:
        if self.closed:
            raise closed_error("calling the server")
        if self._client is None:
            self._client = self._aio.InferenceServerClient(
                self.config.url, conn_timeout=self.config.timeout_s,
                ssl=self.config.ssl, ssl_context=http_ssl_context(self.config),
            )
        return self._client

    async def _call(self, what: str, coro: Awaitable[Any], timeout_s: float, inference: bool = False) -> Any:
        return await _answer_of(what, asyncio.wait_for(coro, timeout_s), self.config, lambda: self.closed, inference)

    async def infer(self, images: Sequence[bytes], with_crop: bool, timeout_s: float, request_id: str = "") -> RawAnswer:
        """Send one request of len(images) rows (binary tensors both ways)."""
        batch = image_batch(images)
        inp = self._mod.InferInput(INPUT_IMAGE, list(batch.shape), INPUT_DATATYPE)
        inp.set_data_from_numpy(batch, binary_data=True)
        outs = [self._mod.InferRequestedOutput(n, binary_data=True) for n in output_names(with_crop)]
        result = await self._call(
            f"analyzing {len(images)} image(s) (request {request_id})",
            self._get().infer(self.config.model_name, [inp], model_version=self.config.model_version, outputs=outs,
                              request_id=request_id, headers={REQUEST_ID_HEADER: request_id}),
            timeout_s, inference=True,
        )
        response = result.get_response()
        return RawAnswer({n: result.as_numpy(n) for n in output_names(with_crop)},
                         response["model_name"], str(response.get("model_version", "")),
                         response.get("id") or request_id, **http_identity(response))

    async def live(self, timeout_s: float) -> bool:
        """Whether the server reports itself live."""
        return await self._call("health check", self._get().is_server_live(), timeout_s)

    async def ready(self, timeout_s: float) -> bool:
        """Whether the server and the ensemble are ready."""
        client, end = self._get(), time.monotonic() + timeout_s
        if not await self._call("readiness check", client.is_server_ready(), timeout_s):
            return False
        return await self._call("readiness check", client.is_model_ready(
            self.config.model_name, self.config.model_version), left_of(end))

    async def metadata(self, timeout_s: float, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The model's metadata as a dict (``headers``: extra request headers)."""
        return await self._call("reading model metadata", self._get().get_model_metadata(
            self.config.model_name, self.config.model_version, headers=headers), timeout_s)

    async def close(self) -> None:
        """Close the session."""
        self.closed = True
        if self._client is not None:
            await self._client.close()
            self._client = None


def make_async_transport(config: ClientConfig) -> AsyncGrpcTransport | AsyncHttpTransport:
    """The asyncio transport for the config's protocol."""
    return AsyncGrpcTransport(config) if config.protocol == "grpc" else AsyncHttpTransport(config)
