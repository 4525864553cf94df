"""Exponential backoff within one call's deadline (blocking and asyncio).

Only ServerUnavailableError is retried: the server could not be reached, was not ready, dropped the call as it
began stopping (CANCELLED), or a pipeline step failed while the server heals it ("Stub process ... is not
healthy"); its
ConnectionSetupError (a TLS mismatch, a port of another protocol) is permanent and raised at once.
Inference is idempotent, so a retried request gives the answer the first would have given.

A public call that sends several requests (``analyze_batch``, its one-image resends after a refusal)
passes one ``deadline`` (``start_deadline``) to every ``call_with_retries``: ``timeout_s`` bounds the
whole call, not each request.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Callable, TypeVar

from .config import ClientConfig, require_seconds
from .errors import ConnectionSetupError, DeadlineExceededError, ServerUnavailableError

logger = logging.getLogger(__name__)
T = TypeVar("T")


def backoff_s(config: ClientConfig, attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based)."""
    return min(config.backoff_max_s, config.backoff_initial_s * (2 ** attempt))


def _next_wait(config: ClientConfig, attempt: int, deadline: float, error: ServerUnavailableError,
               first: ServerUnavailableError) -> float:
    """Seconds to sleep before the next attempt, or raise ``error`` when no retry is left (naming the ``first``
    attempt's failure too when it was another: a server that stopped under a call, then refused the retries, had been
    told only as "connection refused")."""
    wait = backoff_s(config, attempt)
    remaining = deadline - time.monotonic()
    if attempt >= config.retries or wait >= remaining:
        if attempt < config.retries:
            logger.warning("giving up after %d attempt(s): the deadline leaves no time for another", attempt + 1)
        if attempt > 0 and str(first) != str(error):
            raise ServerUnavailableError(f"{error} (its first attempt: {first})") from error
        raise error
    logger.warning("server unavailable (attempt %d of %d); retrying in %.2f s: %s",
                   attempt + 1, config.retries + 1, wait, error)
    return wait


def start_deadline(config: ClientConfig, timeout_s: float | None = None) -> float:
    """The ``time.monotonic()`` by which a public call that starts now must finish: ``timeout_s`` from now (the
    config's when None; ClientConfigError when it is no positive number of seconds)."""
    return time.monotonic() + (config.timeout_s if timeout_s is None else require_seconds("timeout_s", timeout_s))


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceededError(
            "the call's deadline (its timeout bounds the whole call: every request and retry of it) passed before "
            "its next request could be sent; raise timeout, or send fewer images per call"
        )
    return remaining


def call_with_retries(config: ClientConfig, fn: Callable[[float], T], deadline: float | None = None) -> T:
    """Run ``fn(remaining_timeout_s)``, retrying with backoff while it raises ServerUnavailableError, until
    ``deadline`` (a ``start_deadline``; by default ``timeout_s`` from now)."""
    deadline = start_deadline(config) if deadline is None else deadline
    attempt, first = 0, None
    while True:
        try:
            return fn(_remaining(deadline))
        except ConnectionSetupError:
            raise
        except ServerUnavailableError as e:
            first = first or e
            time.sleep(_next_wait(config, attempt, deadline, e, first))
            attempt += 1


async def acall_with_retries(config: ClientConfig, fn: Callable[[float], Awaitable[T]],
                             deadline: float | None = None) -> T:
    """The asyncio twin of ``call_with_retries``."""
    deadline = start_deadline(config) if deadline is None else deadline
    attempt, first = 0, None
    while True:
        try:
            return await fn(_remaining(deadline))
        except ConnectionSetupError:
            raise
        except ServerUnavailableError as e:
            first = first or e
            await asyncio.sleep(_next_wait(config, attempt, deadline, e, first))
            attempt += 1
