"""``AsyncDermAssistClient``: the asyncio SDK (grpc.aio or http.aio) for many requests in flight."""
from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .aio_transport import make_async_transport
from .batching import encode_each, refusal, request_parts, results_of, settle
from .client import ClientCore
from .errors import InvalidImageError
from .images import EncodedImage, ImageInput, encode_image
from .result import LesionResult
from .retry import acall_with_retries, start_deadline
from .transport import new_request_id


class AsyncDermAssistClient(ClientCore):
    """asyncio client of the ``dermassist`` ensemble; same arguments as DermAssistClient.

    One channel serves every concurrent call: ``await asyncio.gather(*(c.analyze(i) for i in imgs))``.
    Use ``async with`` (or ``await close()``) so the channel is closed in its event loop.
    """

    _make_transport = staticmethod(make_async_transport)

    async def __aenter__(self) -> AsyncDermAssistClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection."""
        await self._transport.close()

    async def analyze(self, image: ImageInput, with_crop: bool = False, *, timeout_s: float | None = None) -> LesionResult:
        """Segment, classify and triage one image (path, bytes, HxWx3 uint8 RGB or HxWx4 RGBA array, or PIL image); ``with_crop``
        also returns the crop the classifier saw and its class activation map; ``timeout_s``: this call's deadline in
        seconds instead of the config's."""
        return (await self._infer([encode_image(image)], with_crop, start_deadline(self.config, timeout_s)))[0]

    async def analyze_batch(self, images: Iterable[ImageInput], with_crop: bool = False, *,
                            timeout_s: float | None = None) -> list[LesionResult]:
        """Analyze many images, ``max_batch_size`` rows and ``max_message_bytes`` per request, requests in flight
        together; as DermAssistClient.analyze_batch, a refused image raises PartialBatchError after the others were
        answered; ``timeout_s`` (the config's when None) bounds the whole call (DeadlineExceededError when it runs
        out)."""
        deadline = start_deadline(self.config, timeout_s)
        outcomes: list[Any] = encode_each(images)
        parts = request_parts(outcomes, self.config.max_batch_size, self.config.max_message_bytes)
        answers = await asyncio.gather(*(self._answer(part, with_crop, deadline) for part in parts))
        for part, answer in zip(parts, answers):
            for (i, _), outcome in zip(part, answer):
                outcomes[i] = outcome
        return settle(outcomes)

    async def _answer(self, part: Sequence[tuple[int, EncodedImage]], with_crop: bool,
                      deadline: float) -> list[LesionResult | InvalidImageError]:
        """One request's answers; when the server refuses it, each image alone, so only the bad ones are refused."""
        try:
            return list(await self._infer([image for _, image in part], with_crop, deadline))
        except InvalidImageError as e:
            if len(part) == 1:
                return [refusal(part[0][0], part[0][1], e)]
        singles = await asyncio.gather(*(self._answer([item], with_crop, deadline) for item in part))
        return [single[0] for single in singles]

    async def _infer(self, part: Sequence[EncodedImage], with_crop: bool, deadline: float) -> list[LesionResult]:
        data, request_id = [img.data for img in part], new_request_id()
        answer = await acall_with_retries(
            self.config, lambda t: self._transport.infer(data, with_crop, t, request_id), deadline)
        return results_of(answer, part)

    async def health(self) -> bool:
        """Whether the server is live (raises ServerUnavailableError when it cannot be reached)."""
        return await acall_with_retries(self.config, self._transport.live)

    async def ready(self) -> bool:
        """Whether the server and the ensemble are ready to serve."""
        return await acall_with_retries(self.config, self._transport.ready)

    async def model_metadata(self, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The metadata of the config's model, the ensemble by default, as a dict; ``headers``: extra request
        metadata (e.g. the admin key an internal step's metadata needs behind the guard)."""
        return await acall_with_retries(self.config, lambda timeout_s: self._transport.metadata(timeout_s, headers))
