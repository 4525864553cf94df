"""What the front allows an admin-key caller, and how it slows down one who guesses the key.

The admin key opens Triton's restricted APIs (model repository, configuration, statistics, shared memory, trace,
logging). Through the front it never opens more than an operator needs: a model is loaded or unloaded only by the
name of one of the repository's own models and from the repository's own files (Triton's ``config`` and
``file:<version>/<path>`` load parameters would define a model, Python code included, from the request's bytes and
run it in the service), and Triton's log and trace files stay where the server put them. Every admin call, allowed
or refused, leaves an audit line (``admin_record``); wrong keys from one address are counted (``WrongKeys``) and,
past ``MAX_WRONG_KEYS`` in ``WRONG_KEY_WINDOW_S``, that address's admin calls are refused unchecked for a while.
"""
from __future__ import annotations

import collections
import time
from collections.abc import Mapping
from typing import Any

from google.protobuf.message import DecodeError
from tritonclient.grpc import service_pb2

from preprocess.contract import ALL_MODELS, ENSEMBLE_NAME

from ..base.server_config import MAKE_A_KEY
from .audit import MAX_ERROR_CHARS, MAX_NAME_CHARS, clip, recorded_text, utc_now

# The shortest admin key the guard starts with: 16 characters of token_urlsafe are 96 random bits.
MIN_ADMIN_KEY_CHARS = 16
# Wrong admin keys one address may send in WRONG_KEY_WINDOW_S before its admin calls are refused unchecked (until
# the oldest of them is that old); the addresses remembered at most (the least recent are forgotten first).
MAX_WRONG_KEYS = 10
WRONG_KEY_WINDOW_S = 60.0
MAX_TRACKED_PEERS = 4096

# Triton's restricted methods through the front, by the extension (RESTRICTED_APIS) each belongs to.
RESTRICTED_METHODS = {
    "RepositoryIndex": "model-repository", "RepositoryModelLoad": "model-repository",
    "RepositoryModelUnload": "model-repository", "ModelConfig": "model-config", "ModelStatistics": "statistics",
    "SystemSharedMemoryStatus": "shared-memory", "SystemSharedMemoryRegister": "shared-memory",
    "SystemSharedMemoryUnregister": "shared-memory", "CudaSharedMemoryStatus": "shared-memory",
    "CudaSharedMemoryRegister": "shared-memory", "CudaSharedMemoryUnregister": "shared-memory",
    "TraceSetting": "trace", "LogSettings": "logging",
}
# Triton's load parameters that define a model from the request: its configuration, and its files.
CONFIG_PARAMETER = "config"
FILE_PARAMETER_PREFIX = "file:"
# Settings that make tritonserver write a file at a path the caller chooses.
FILE_SETTINGS = {"LogSettings": ("log_file",), "TraceSetting": ("trace_file",)}

# What an admin call's key was: the right one, a wrong one, none, or not looked at (its address is locked out).
KEY_RIGHT, KEY_WRONG, KEY_NONE, KEY_LOCKED = "right", "wrong", "none", "not checked: too many wrong keys"

_REQUESTS: dict[str, Any] = {
    "RepositoryModelLoad": service_pb2.RepositoryModelLoadRequest,
    "RepositoryModelUnload": service_pb2.RepositoryModelUnloadRequest,
    "ModelConfig": service_pb2.ModelConfigRequest, "ModelStatistics": service_pb2.ModelStatisticsRequest,
    "TraceSetting": service_pb2.TraceSettingRequest, "LogSettings": service_pb2.LogSettingsRequest,
    "ModelMetadata": service_pb2.ModelMetadataRequest, "ModelReady": service_pb2.ModelReadyRequest,  # internal steps'
}


def admin_key_problem(key: str) -> str | None:
    """Why ``key`` is too weak to be the admin key (its length only: never the key itself), or None."""
    if len(key) >= MIN_ADMIN_KEY_CHARS:
        return None
    return (f"the admin key is {len(key)} character{'s' if len(key) != 1 else ''} long; expected at least "
            f"{MIN_ADMIN_KEY_CHARS} (it opens model loading, so it is guessed no other way than by trying): make one "
            f"with `{MAKE_A_KEY}` and put it in the --admin-key-file file (or DERMASSIST_ADMIN_KEY)")


def peer_address(peer: str) -> str:
    """The caller's address without its port (``ipv4:10.1.2.3:49854`` -> ``ipv4:10.1.2.3``): what wrong keys count by."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6") and ":" in rest:
        return f"{kind}:{rest.rsplit(':', 1)[0]}"
    return peer


class WrongKeys:
    """Wrong admin keys by address: at most ``limit`` remembered per address, ``max_peers`` addresses, so its memory
    is bounded whatever callers do. ``now`` is time.monotonic() unless a test gives it."""

    def __init__(self, limit: int = MAX_WRONG_KEYS, window_s: float = WRONG_KEY_WINDOW_S,
                 max_peers: int = MAX_TRACKED_PEERS) -> None:
        self.limit, self.window_s, self.max_peers = limit, window_s, max_peers
        self._times: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def locked_for(self, address: str, now: float | None = None) -> float:
        """Seconds ``address``'s admin calls are still refused unchecked (0: its key is looked at)."""
        times = self._times.get(address)
        if times is None or len(times) < self.limit:
            return 0.0
        left = times[0] + self.window_s - (time.monotonic() if now is None else now)
        return max(left, 0.0)

    def record(self, address: str, now: float | None = None) -> bool:
        """Count a wrong key from ``address``; whether that locked it out."""
        now = time.monotonic() if now is None else now
        times = self._times.pop(address, None) or collections.deque(maxlen=self.limit)
        times.append(now)
        self._times[address] = times  # the most recent last: the least recent is forgotten first
        while len(self._times) > self.max_peers:
            self._times.popitem(last=False)
        return self.locked_for(address, now) > 0

    def __len__(self) -> int:
        return len(self._times)


def parsed_request(method: str, raw: bytes) -> Any:
    """The request of a restricted method the front looks into (load, unload, config, statistics, settings, an internal
    step's metadata or readiness), or None (another method, or bytes that are not its request: Triton answers those)."""
    kind = _REQUESTS.get(method)
    if kind is None:
        return None
    try:
        return kind.FromString(raw)
    except DecodeError:
        return None


def requested_model(request: Any) -> str:
    """The model an admin request names ("" for none)."""
    for name in ("model_name", "name"):
        if request is not None and hasattr(request, name):
            return str(getattr(request, name))
    return ""


def admin_refusal(method: str, request: Any) -> str | None:
    """Why the front refuses an admin-key call that has the right key (what was asked, why not, what to do), or None."""
    if method in ("RepositoryModelLoad", "RepositoryModelUnload") and request is not None:
        verb = "load" if method == "RepositoryModelLoad" else "unload"
        if request.model_name not in ALL_MODELS:
            return (f"{method} of model {clip(request.model_name, MAX_NAME_CHARS)!r} refused: the front {verb}s only the "
                    f"repository's own models ({', '.join(repr(m) for m in ALL_MODELS)}); put a new model into the "
                    "repository and restart the service (docs/operations.md, 'Admin key')")
        if method == "RepositoryModelLoad":
            defining = [p for p in request.parameters
                        if p == CONFIG_PARAMETER or p.startswith(FILE_PARAMETER_PREFIX)]
            if defining:
                return (f"RepositoryModelLoad of {clip(request.model_name, MAX_NAME_CHARS)!r} with parameter(s) "
                        f"{', '.join(repr(p) for p in sorted(defining))} refused: a config override or uploaded model "
                        "files would run code from the request in the service; load the model by name only (it is "
                        "read from the repository), and change a model by replacing it in the repository")
            if request.model_name != ENSEMBLE_NAME:
                return (f"RepositoryModelLoad of the step {clip(request.model_name, MAX_NAME_CHARS)!r} refused: load the "
                        f"ensemble {ENSEMBLE_NAME!r}, which reloads with it each step whose files changed; a step "
                        "loaded alone answers beside the others' older versions, under a build naming the files on "
                        "disk (docs/operations.md, 'Upgrading the models, and going back')")
    settings: Mapping[str, Any] = getattr(request, "settings", {}) if request is not None else {}
    chosen = [s for s in FILE_SETTINGS.get(method, ()) if s in settings]
    if chosen:
        return (f"{method} setting {', '.join(repr(s) for s in chosen)} refused: it would make tritonserver write a "
                "file at a path the caller chooses; leave it out (the log goes where the service's log goes)")
    return None


def admin_record(*, method: str, extension: str | None, model: str, peer: str, client: str | None, key: str,
                 status: str, error: str | None, latency_ms: float) -> dict[str, Any]:
    """The audit line of one admin call, allowed or refused: when, who, which API and extension, which model, how
    the key was found (never the key) and the outcome."""
    return {"time": utc_now(), "request_id": None, "peer": peer, "client": client, "admin_call": method,
            "extension": extension, **recorded_text("model", model), "admin_key": key, "status": status,
            "error": None if error is None else clip(error, MAX_ERROR_CHARS), "latency_ms": round(latency_ms, 3)}
