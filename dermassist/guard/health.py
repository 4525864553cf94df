"""Readiness that tells the truth, and the plain HTTP endpoint the probes read it from.

``GET /v2/health/live``: 200 while the guard runs and has not been unready for longer than ``max_unready_s``
(a recovery that keeps failing or is stuck), else 503 with the reason. ``GET /v2/health/ready`` (and the ensemble's
``/v2/models/dermassist/ready``): 200 only when the last canary inference through the ensemble
succeeded and no step is known broken, else 503 with the reason. Same paths as Triton's, so probes
written for Triton keep working. ``GET /metrics``: the guard's own Prometheus metrics (``metrics.py``). Nothing else
is served on this port (inference is gRPC only).
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import time
from collections.abc import Callable

from preprocess.contract import ENSEMBLE_NAME

from ..base.errors import ServerError
from .metrics import CONTENT_TYPE

logger = logging.getLogger(__name__)

LIVE_PATH = "/v2/health/live"
READY_PATH = "/v2/health/ready"
# The ensemble's readiness (Triton's per-model path, which tritonclient's is_model_ready reads): the same verdict.
MODEL_READY_PATH = f"/v2/models/{ENSEMBLE_NAME}/ready"
METRICS_PATH = "/metrics"
_MAX_HEADER_BYTES = 8192
# What differs between two reports of one fault: Triton's "[request id: ...]" and the canary's own numbered id.
_REQUEST_IDS = re.compile(r"\[request id: [^\]]*\]|dermassist-canary-\d+")
STOPPING = "stopping"  # the reason while the guard stops: not ready, but live (the orchestrator asked for it)
#: How long readiness must last to end an unready spell (three canaries at the default interval). A tritonserver that
#: died half a second after each healed restart (too few file descriptors) was ready for moments between faults, and
#: each moment started the spell afresh, so the guard flapped for ever and never turned not live (failure audit 2).
STABLE_READY_S = 15.0


def same_reason(reason: str, other: str) -> bool:
    """Whether two not-ready reasons tell the same fault (they may differ in the request ids they quote)."""
    return _REQUEST_IDS.sub("", reason) == _REQUEST_IDS.sub("", other)


class Readiness:
    """The guard's verdict: ready or not, why, and since when (``history``: the last flips, as
    (time.monotonic(), ready, reason)); requests can wait for it. ``max_unready_s``: how long it may be unready
    (other than stopping) and still be live (None: always live). ``since``: when readiness last flipped;
    ``unready_since``: when the present unready spell began, which a ready moment shorter than STABLE_READY_S
    does not end (liveness and the unready metric count from it); ``ready_at``: when it last turned ready (0.0:
    never), i.e. when the pipeline was last healed."""

    def __init__(self, max_unready_s: float | None = None) -> None:
        self.ready = False
        self.reason = "starting"
        self.since = time.monotonic()
        self.unready_since = self.since
        self.ready_at = 0.0
        self.history: collections.deque[tuple[float, bool, str]] = collections.deque(maxlen=200)
        self.max_unready_s = max_unready_s
        self._event = asyncio.Event()
        self._stopping = asyncio.Event()  # set once the guard stops: readiness cannot come back
        self._dead: str | None = None  # why liveness turned false in this unready spell (logged once), else None

    def serving(self) -> None:
        """The guard's front and health endpoint serve from now (tritonserver has started): the unready clock of
        liveness starts again here unless ready, so the first unready spell does not count tritonserver's start-up,
        which ``startup_timeout_s`` bounds on its own (a start that runs out ends ``serve``)."""
        if not self.ready:
            self.since = self.unready_since = time.monotonic()

    def set_ready(self) -> None:
        """The pipeline answered a canary: serve."""
        self._dead = None  # healed: a stop from now on is not the end of a dead spell
        if not self.ready:
            self.ready, self.reason, self.since = True, "", time.monotonic()
            self.ready_at = self.since
            self.history.append((self.since, True, ""))
            self._event.set()
            logger.info("ready: a canary inference through the ensemble succeeded")

    def set_not_ready(self, reason: str) -> None:
        """The pipeline cannot answer: stop advertising readiness at once. Logged when readiness flips and whenever
        the reason changes (a server that never becomes ready says why), not when the same reason comes again."""
        if self.ready:
            now = time.monotonic()
            if now - self.since >= STABLE_READY_S:  # a moment's readiness is part of the spell, not its end
                self.unready_since = now
            self.since = now
            self.history.append((self.since, False, reason))
        if self.ready or not same_reason(reason, self.reason):
            logger.warning("not ready: %s", reason)
        self.ready, self.reason = False, reason
        self._event.clear()
        if reason == STOPPING:
            self._stopping.set()  # calls waiting for readiness are refused now, not at the end of their wait

    def flapped(self) -> str:
        """" (ready only for moments ...)" while the unready spell went on through moments of readiness, else ""."""
        if self.ready or self.unready_since >= self.since:
            return ""
        return f" (ready only for moments under {STABLE_READY_S:g} s between faults)"

    def live_problem(self, now: float | None = None) -> str | None:
        """Why the guard is no longer live (None while it is): unready for longer than ``max_unready_s``, i.e. its
        recoveries kept failing or one is stuck, so only a restart of the process (the pod) can help. Logged at
        ERROR the first time it is found in an unready spell. ``now``: time.monotonic(), by default the present."""
        if self.reason == STOPPING and self._dead is not None:
            return self._dead  # stopping because it was not live: it does not turn live again while it stops
        if self.ready or self.max_unready_s is None or self.reason == STOPPING:
            self._dead = None
            return None
        unready_s = (time.monotonic() if now is None else now) - self.unready_since
        if unready_s <= self.max_unready_s:
            return None
        problem = (f"not ready for {unready_s:.0f} s, over max_unready_s ({self.max_unready_s:g} s), and not healed"
                   f"{self.flapped()}: "
                   f"{self.reason}; restart the process (--max-unready-s / DERMASSIST_MAX_UNREADY_S sets the bound)")
        if self._dead is None:
            logger.error("not live: %s", problem)
        self._dead = problem
        return problem

    async def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for readiness; whether it came. Once the guard stops it cannot come: False at
        once, for the calls waiting and for new ones."""
        if self.ready:
            return True
        if self._stopping.is_set():
            return False
        waits = {asyncio.ensure_future(self._event.wait()), asyncio.ensure_future(self._stopping.wait())}
        try:
            await asyncio.wait(waits, timeout=max(timeout_s, 0.0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return self.ready


def _response(status: int, body: dict | str, with_body: bool = True) -> bytes:
    """The whole HTTP response (JSON, or Prometheus text for a str); a HEAD request's has GET's headers (its
    Content-Length too) and no body."""
    payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    kind = CONTENT_TYPE if isinstance(body, str) else "application/json"
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
              431: "Request Header Fields Too Large", 503: "Service Unavailable"}[status]
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n")
    return head.encode() + (payload if with_body else b"")


def health_answer(method: str, path: str, readiness: Readiness, metrics: Callable[[], str] | None = None) -> bytes:
    """The HTTP response for one request line; ``metrics``: the text of ``/metrics`` (None: not served)."""
    with_body = method != "HEAD"
    paths = (LIVE_PATH, READY_PATH, MODEL_READY_PATH) + ((METRICS_PATH,) if metrics is not None else ())
    if path not in paths:
        return _response(404, {"error": f"only {', '.join(paths[:-1])} and {paths[-1]} are served here"}, with_body)
    if method not in ("GET", "HEAD"):
        return _response(405, {"error": "use GET"})
    if path == METRICS_PATH and metrics is not None:
        return _response(200, metrics(), with_body)
    if path == LIVE_PATH:
        problem = readiness.live_problem()
        if problem is not None:
            return _response(503, {"live": False, "reason": problem}, with_body)
        return _response(200, {"live": True}, with_body)
    if readiness.ready:
        return _response(200, {"ready": True}, with_body)
    return _response(503, {"ready": False, "reason": readiness.reason}, with_body)


async def _serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, readiness: Readiness,
                     metrics: Callable[[], str] | None) -> None:
    try:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        except asyncio.LimitOverrunError:  # a probe or proxy that adds large headers is told, not dropped
            writer.write(_response(431, {"error": f"the request's headers are over {_MAX_HEADER_BYTES} bytes; send "
                                                  "fewer or shorter headers"}))
            await writer.drain()
            return
        writer.write(request_answer(head, readiness, metrics))
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, ValueError, ConnectionError):
        pass
    finally:
        writer.close()


def request_answer(head: bytes, readiness: Readiness, metrics: Callable[[], str] | None = None) -> bytes:
    """The HTTP response for a request's head (its request line and headers): 400 when the request line is not
    ``METHOD /path ...`` (it was dropped without an answer), else ``health_answer``'s."""
    method, _, rest = head.decode("latin-1").split("\r\n", 1)[0].partition(" ")
    path = rest.split(" ", 1)[0]
    if not method or not path.startswith("/"):
        return _response(400, {"error": "the request line is not 'METHOD /path HTTP/1.1'; send e.g. "
                                        f"'GET {READY_PATH} HTTP/1.1'"})
    return health_answer(method, path.split("?", 1)[0], readiness, metrics)


async def start_health_server(host: str, port: int, readiness: Readiness,
                              metrics: Callable[[], str] | None = None) -> asyncio.base_events.Server:
    """Serve the health paths on host:port, and ``/metrics`` when ``metrics`` gives its text (a ServerError naming
    the port when it cannot be bound)."""
    try:
        return await asyncio.start_server(lambda r, w: _serve_one(r, w, readiness, metrics), host, port,
                                          limit=_MAX_HEADER_BYTES)
    except OSError as e:
        raise ServerError(f"cannot serve the health endpoint on http://{host}:{port}: {e.strerror or e}; is the port "
                          "taken or the address wrong? (--http-port sets it)") from e
