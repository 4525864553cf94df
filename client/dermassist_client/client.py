"""``DermAssistClient``: the blocking SDK over gRPC or HTTP."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

from .batching import encode_each, refusal, request_parts, results_of, settle
from .config import ClientConfig, plaintext_warning
from .errors import ClientConfigError, InvalidImageError
from .images import EncodedImage, ImageInput, encode_image
from .result import LesionResult
from .retry import call_with_retries, start_deadline
from .transport import make_transport, new_request_id

logger = logging.getLogger(__name__)
_WARNED_PLAINTEXT: set[str] = set()  # the addresses this process was told it sends to in plaintext


def make_config(url: str, protocol: str, timeout: float | None, retries: int | None,
                options: dict[str, Any]) -> ClientConfig:
    """A validated ClientConfig from the constructor arguments of either client (``None``: ClientConfig's default)."""
    given: dict[str, Any] = {name: value for name, value in (("timeout_s", timeout), ("retries", retries))
                             if value is not None}
    try:
        return ClientConfig(url=url, protocol=protocol, **given, **options)
    except TypeError as e:
        raise ClientConfigError(f"unknown client option: {e}; see ClientConfig for the accepted names") from e


class ClientCore:
    """Construction shared by the blocking and asyncio clients: a validated config and its transport."""

    _make_transport: Callable[[ClientConfig], Any]

    def __init__(self, url: str, protocol: str = "grpc", timeout: float | None = None, retries: int | None = None,
                 **options: Any) -> None:
        """``timeout`` (ClientConfig.timeout_s) and ``retries`` left out or None take ClientConfig's defaults."""
        self._bind(make_config(url, protocol, timeout, retries, options))

    @classmethod
    def from_config(cls, config: ClientConfig) -> Any:
        """A client for an existing config."""
        client = cls.__new__(cls)
        client._bind(config)
        return client

    def _bind(self, config: ClientConfig) -> None:
        self.config = config
        warning = plaintext_warning(config)
        if warning is not None and config.url not in _WARNED_PLAINTEXT:  # once per address and process
            _WARNED_PLAINTEXT.add(config.url)
            logger.warning("%s", warning)
        self._transport = type(self)._make_transport(config)


class DermAssistClient(ClientCore):
    """Blocking client of the ``dermassist`` ensemble.

    ``DermAssistClient("127.0.0.1:8001")`` talks gRPC (what ``dermassist serve`` serves); ``protocol="http"`` uses a
    bare tritonserver's HTTP API (the HTTP port of ``dermassist serve`` answers health probes only).
    Further keyword options (``ssl``, ``root_certificates``, ``private_key``,
    ``certificate_chain``, ``keepalive_time_s``, ``backoff_initial_s`` ...) are ClientConfig fields.
    """

    _make_transport = staticmethod(make_transport)

    def __enter__(self) -> DermAssistClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._transport.close()

    def analyze(self, image: ImageInput, with_crop: bool = False, *, timeout_s: float | None = None) -> LesionResult:
        """Segment, classify and triage one image (path, bytes, HxWx3 uint8 RGB or HxWx4 RGBA array, or PIL image); ``with_crop``
        also returns the crop the classifier saw and its class activation map; ``timeout_s``: this call's deadline in
        seconds instead of the config's."""
        return self._infer([encode_image(image)], with_crop, start_deadline(self.config, timeout_s))[0]

    def analyze_batch(self, images: Iterable[ImageInput], with_crop: bool = False, *,
                      timeout_s: float | None = None) -> list[LesionResult]:
        """Analyze many images, ``max_batch_size`` rows and ``max_message_bytes`` per request; results in input order.

        A bad image does not cost the others their answers: when some are refused, PartialBatchError is raised
        after every other image was answered, and its ``results`` holds each answer or refusal in input order.
        ``timeout_s`` (the config's when None) bounds the whole call (every request, resend and retry):
        DeadlineExceededError when it runs out. Over HTTP one request still waits up to the config's ``timeout_s`` for
        a server that does not answer (tritonclient.http has no per-request deadline); gRPC honours the call's.
        """
        deadline = start_deadline(self.config, timeout_s)
        outcomes: list[Any] = encode_each(images)
        for part in request_parts(outcomes, self.config.max_batch_size, self.config.max_message_bytes):
            for (i, _), outcome in zip(part, self._answer(part, with_crop, deadline)):
                outcomes[i] = outcome
        return settle(outcomes)

    def _answer(self, part: Sequence[tuple[int, EncodedImage]], with_crop: bool,
                deadline: float) -> list[LesionResult | InvalidImageError]:
        """One request's answers; when the server refuses it, each image alone, so only the bad ones are refused."""
        try:
            return list(self._infer([image for _, image in part], with_crop, deadline))
        except InvalidImageError as e:
            if len(part) == 1:
                return [refusal(part[0][0], part[0][1], e)]
        return [self._answer([item], with_crop, deadline)[0] for item in part]

    def _infer(self, part: list[EncodedImage], with_crop: bool, deadline: float) -> list[LesionResult]:
        data, request_id = [img.data for img in part], new_request_id()
        answer = call_with_retries(self.config, lambda t: self._transport.infer(data, with_crop, t, request_id), deadline)
        return results_of(answer, part)

    def health(self) -> bool:
        """Whether the server is live (raises ServerUnavailableError when it cannot be reached)."""
        return call_with_retries(self.config, self._transport.live)

    def ready(self) -> bool:
        """Whether the server and the ensemble are ready to serve."""
        return call_with_retries(self.config, self._transport.ready)

    def model_metadata(self, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The metadata of the config's model, the ensemble by default (name, versions, inputs, outputs), as a dict;
        ``headers``: extra request metadata (e.g. the admin key an internal step's metadata needs behind the guard)."""
        return call_with_retries(self.config, lambda timeout_s: self._transport.metadata(timeout_s, headers))
