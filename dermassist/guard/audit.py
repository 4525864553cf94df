"""The audit trail: one JSON line per inference request, success or failure, never pixels.

A line holds the request id, the UTC time, who called (peer, and the certificate's common name
under mutual TLS), the model and the versions of every step, one entry per image (SHA-256 and
size of its encoded bytes, top class, REFER and ASSESSABLE when the answer holds them), the
latency and the gRPC status with its message. Nothing of the image content and nothing the
client sends besides the bytes it asked to be analysed (hashed) is kept. With a site key
(``--audit-digest-key-file``) each digest is an HMAC-SHA256 under it (``hmac_sha256``), which whoever holds a
picture cannot compute without the key, and the line names the key by ``digest_key``, an id that tells nothing of it.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import itertools
import json
import logging
import os
import resource
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from tritonclient.grpc import service_pb2

from preprocess.contract import (
    ASSESSABLE,
    CLASS_CODES,
    IMAGE,
    IMAGE_WIRE_DATATYPE,
    MAX_BATCH_SIZE,
    NUM_CLASSES,
    PROBABILITIES,
    REFER,
    WIRE_DATATYPES,
)

from ..base.bytes_tensor import MalformedTensor, iter_elements
from ..base.errors import ConfigError, DermAssistError
from ..base.settings import setting_names
from .config import GuardConfig, audit_log_problem

logger = logging.getLogger(__name__)

STDOUT = "-"
AUDIT_FILE_MODE = 0o600  # a new audit file; an existing one keeps the mode its operator gave it
REOPEN_CHECK_S = 1.0  # how often a write looks whether the audit file was rotated (a stat of the path)
#: The room an audit file must have again (free space, and below the file-size limit) before the watchdog tries the
#: line that ends an outage: about 1,800 one-image lines.
RESUME_HEADROOM_BYTES = 1 << 20
# The longest request id the front accepts (it refuses a longer one): an answered request's id is recorded in full.
MAX_ID_CHARS = 128
MAX_ERROR_CHARS = 300
#: The most characters of a name a client gives (model, model version, input, output, datatype) that an audit line or
#: a refusal quotes: a refused request may name anything up to the request's size (a 50 MiB model name made a 52 MB
#: audit line), and every served name is far shorter.
MAX_NAME_CHARS = 64
#: The most elements past the batch limit an audit line counts: walking 60 million empty elements of a refused request
#: took the hashing thread 18 s, and two such requests held every other call's answer past its deadline.
MAX_COUNTED = 10_000
#: The most inputs of one request an audit line records.
MAX_INPUTS_RECORDED = 8


def digest(data: bytes | memoryview, key: bytes | None = None) -> dict[str, Any]:
    """The audit line's digest of ``data`` and its size: ``sha256``, or ``hmac_sha256`` under the site's ``key``."""
    if key is None:
        return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    return {"hmac_sha256": hmac.new(key, data, hashlib.sha256).hexdigest(), "bytes": len(data)}


def digest_key_id(key: bytes) -> str:
    """The id an audit line gives the key its digests were made under: 8 hex digits of an HMAC of a fixed text (the
    key's holder finds which key made a line; nobody else learns anything of the key)."""
    return hmac.new(key, b"dermassist audit digest key id", hashlib.sha256).hexdigest()[:8]


def request_images(request: service_pb2.ModelInferRequest, key: bytes | None = None) -> list[dict[str, Any]]:
    """One entry per image of the IMAGE input (its digest, under ``key`` when given, and size; past a batch's
    MAX_BATCH_SIZE images, one count of the rest); other inputs are hashed whole."""
    entries: list[dict[str, Any]] = []
    raw = request.raw_input_contents
    for index, tensor in enumerate(request.inputs):
        if index == MAX_INPUTS_RECORDED:  # the ensemble takes one input: a request of more is refused
            entries.append({"inputs_not_recorded": len(request.inputs) - index,
                            "why": f"over {MAX_INPUTS_RECORDED} inputs in one request"})
            break
        if raw:
            if index >= len(raw):
                entries.append({**recorded_text("input", tensor.name), "malformed": "no raw contents for this input"})
                continue
            data = raw[index]
        else:
            data = None
        if tensor.name == IMAGE.name and tensor.datatype == IMAGE_WIRE_DATATYPE:
            elements = iter_elements(data) if data is not None else iter(tensor.contents.bytes_contents)
            hashed: list[dict[str, Any]] = []
            try:  # a batch is at most MAX_BATCH_SIZE images: beyond them a count, up to MAX_COUNTED (refused anyway)
                hashed.extend(digest(e, key) for e in itertools.islice(elements, MAX_BATCH_SIZE))
                more = sum(1 for _ in itertools.islice(elements, MAX_COUNTED + 1))
            except MalformedTensor as e:
                entries.append({**recorded_text("input", tensor.name), "malformed": str(e), **digest(data, key)})
                continue
            entries.extend(hashed)
            if more:
                counted = {"not_hashed": more} if more <= MAX_COUNTED else {"not_hashed_over": MAX_COUNTED}
                entries.append({**recorded_text("input", tensor.name), **counted,
                                "why": f"over the batch limit of {MAX_BATCH_SIZE} images"})
        else:
            whole = data if data is not None else tensor.contents.SerializeToString()
            entries.append({**recorded_text("input", tensor.name), **digest(whole, key)})
    return entries


def _raw_outputs(response: service_pb2.ModelInferResponse) -> dict[str, tuple[str, bytes]]:
    return {o.name: (o.datatype, response.raw_output_contents[i]) for i, o in enumerate(response.outputs)
            if i < len(response.raw_output_contents)}


def answer_rows(response: service_pb2.ModelInferResponse) -> list[dict[str, Any]]:
    """Per row: the top class (when PROBABILITIES was sent as the contract's FP32), REFER and ASSESSABLE (when
    sent as BOOL); an output in another form is left out of the line rather than misread."""
    outputs = _raw_outputs(response)
    columns: dict[str, list[Any]] = {}
    datatype, data = outputs.get(PROBABILITIES.name, ("", b""))
    if datatype == WIRE_DATATYPES[PROBABILITIES.dtype] and len(data) % (4 * NUM_CLASSES) == 0:
        probs = np.frombuffer(data, dtype=np.float32).reshape(-1, NUM_CLASSES)
        columns["top_class"] = [CLASS_CODES[int(i)] for i in probs.argmax(axis=1)]
    for spec, key in ((REFER, "refer"), (ASSESSABLE, "assessable")):
        datatype, data = outputs.get(spec.name, ("", b""))
        if datatype == WIRE_DATATYPES[spec.dtype]:
            columns[key] = [bool(v) for v in np.frombuffer(data, dtype=np.bool_)]
    rows = max((len(v) for v in columns.values()), default=0)
    return [{k: (v[r] if r < len(v) else None) for k, v in columns.items()} for r in range(rows)]


def utc_now() -> str:
    """The current UTC time, ISO 8601 with microseconds and a Z."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (marked with an ellipsis)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def recorded_id(request_id: str) -> dict[str, Any]:
    """The audit line's fields of a request id: the id itself, in full up to MAX_ID_CHARS; a longer one (only a
    refused request has one) cut to MAX_ID_CHARS, with ``request_id_shortened_from`` saying its length."""
    return recorded_text("request_id", request_id, MAX_ID_CHARS)


def recorded_text(field: str, text: str, limit: int = MAX_NAME_CHARS) -> dict[str, Any]:
    """The audit line's ``field`` holding a text the client gave: in full up to ``limit`` characters, else cut to it
    with ``<field>_shortened_from`` saying its length."""
    if len(text) <= limit:
        return {field: text}
    return {field: clip(text, limit), f"{field}_shortened_from": len(text)}


def build_record(request: service_pb2.ModelInferRequest | None, *, request_id: str, peer: str, client: str | None,
                 versions: dict[str, str], status: str, error: str | None, latency_ms: float,
                 response: service_pb2.ModelInferResponse | None = None,
                 images: list[dict[str, Any]] | None = None, identity: Mapping[str, str] | None = None,
                 unread: bool = False, key: bytes | None = None) -> dict[str, Any]:
    """The audit line of one request, as a dict (``AuditLog.write`` serialises it).

    ``images``: ``request_images(request, key)`` when already computed (the front hashes while Triton works).
    ``identity``: the served release and build (``served_identity``), None while not read. A call that ended before
    its request was read (``unread``) says so (``request_unread``): its id is then the one its header gave, if any.
    """
    if images is None:
        images = request_images(request, key) if request is not None else []
    if response is not None:
        for image, answer in zip(images, answer_rows(response)):
            image.update(answer)
    model = request.model_name if request is not None else ""
    version = response.model_version if response is not None else (request.model_version if request else "")
    return {
        "time": utc_now(),
        **recorded_id(request_id),
        "peer": peer,
        "client": client,
        **recorded_text("model", model),
        **recorded_text("model_version", version),
        "versions": versions,
        "release": (identity or {}).get("release"),
        "build": (identity or {}).get("build"),
        "status": status,
        "error": None if error is None else clip(error, MAX_ERROR_CHARS),
        "latency_ms": round(latency_ms, 3),
        "images": images,
        **({"digest_key": digest_key_id(key)} if key is not None else {}),
        **({"request_unread": True} if unread else {}),
    }


def open_for_appending(path: Path) -> TextIO:
    """``path`` opened to append audit lines (made 0600, with its folders, when new); a ConfigError naming the file,
    why and the fix when it cannot be (a folder, a parent that is a file, a file of /proc, no permission); the file
    system's shape is looked at only when opening failed (GuardConfig looked at it before)."""
    descriptor = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # who called, from where, and each picture's digest: readable by the service's own user only; O_NONBLOCK so a
        # named pipe made after the settings were checked fails (no reader) or is seen, instead of blocking here
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, AUDIT_FILE_MODE)
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            descriptor = None
            why = audit_log_problem(str(path)) or "is not a regular file"
            raise ConfigError(f"audit log {path} {why}; expected a file in a writable folder: pass "
                              f"{setting_names(GuardConfig, 'audit_log')} another file, or - for stdout")
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "a", encoding="utf-8")
    except OSError as e:
        if descriptor is not None:  # os.fdopen leaves the descriptor open when it fails
            with contextlib.suppress(OSError):
                os.close(descriptor)
        why = audit_log_problem(str(path)) or f"cannot be appended to ({e.strerror or e})"  # a folder, a file above
        raise ConfigError(f"audit log {path} {why}; expected a file in a writable "
                          f"folder: pass {setting_names(GuardConfig, 'audit_log')} another file, or - for stdout") from e


class AuditWriteError(DermAssistError):
    """An audit line could not be written: the call it records must not be answered as if it had been."""


class ShortWriteError(DermAssistError, OSError):
    """The OSError that cut ``write_all`` short (its errno and words, or its message when it has no errno), with how
    many bytes went out before it; an OSError too, as the writes it stands for raise."""

    def __init__(self, cause: OSError, written: int) -> None:
        if cause.errno is None:
            super().__init__(str(cause))
        else:
            super().__init__(cause.errno, cause.strerror)
        self.written = written


def write_all(descriptor: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``descriptor``, unbuffered (os.write may take part of it at a time); a
    ShortWriteError when an OSError cuts it short."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(descriptor, view):]
    except OSError as e:
        raise ShortWriteError(e, len(data) - len(view)) from e


def append_whole(descriptor: int, data: bytes) -> None:
    """Append ``data`` to the file open (O_APPEND) at ``descriptor``, all of it or nothing: a write cut short (a full
    disk) is cut back off, so no torn line stays in the file, and nothing is kept to be written later. The file is
    this process's own (one ``serve`` per audit file; rotation renames, never copytruncate), so its size before the
    write is where its last whole line ends."""
    size = os.fstat(descriptor).st_size
    try:
        write_all(descriptor, data)
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(descriptor, size)
        raise


def resumed_record(problem: str, refused: int) -> dict[str, Any]:
    """The line that says the audit trail takes lines again after ``problem``; every call meanwhile was refused
    (``refused``: how many since ``serve`` started), so no call is missing from the trail."""
    return {"time": utc_now(), "event": "audit_resumed", "error": clip(problem, MAX_ERROR_CHARS),
            "refused_calls_total": refused}


@contextlib.contextmanager
def stdout_kept_for_the_trail(destination: str) -> Iterator[None]:
    """While the audit trail goes to stdout (``destination`` ``-``), whatever else the process prints goes to stderr:
    a line another thread printed (Gradio's, on the demo page's threads) had torn an audit line, since ``print`` is two
    writes the trail's lock does not cover (concurrency audit 4). The trail keeps the stream it opened."""
    if destination != STDOUT:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


class AuditLog:
    """Appends JSON lines to a file, or writes them to stdout (``-``); one lock, one unbuffered write per line (to the
    operating system, not fsync'd: a crash of the process loses nothing, a crash of the host may lose the last lines);
    a line that cannot be written is an AuditWriteError and leaves nothing behind (``append_whole``).

    Safe to rotate by renaming (logrotate without copytruncate): at most once per ``check_interval_s`` a write looks
    whether the file at the path is still the one open (device and inode) and opens the path again when it is not
    (moved or deleted); ``reopen`` (SIGHUP) does it at once. Lines written before that go to the renamed file: none is
    lost. ``clock``: time.monotonic unless a test steps it.
    """

    def __init__(self, destination: str | Path = STDOUT, check_interval_s: float = REOPEN_CHECK_S,
                 clock: Callable[[], float] = time.monotonic,
                 resumed: Callable[[str], dict[str, Any]] | None = None) -> None:
        self.destination = str(destination)
        # the line that ends an outage (``resumed_record``), written whole with, and before, the first line that
        # succeeds after a failed one, whoever writes it: the trail always says where its gap ends
        self.resumed = resumed
        self.check_interval_s = check_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stream: TextIO
        self._reopen_problem: str | None = None  # why the last reopen failed (logged when it changes)
        self.problem: str | None = None  # why the last write failed, until one succeeds
        self._torn = False  # stdout holds the start of a line whose end could not be written
        if self.destination == STDOUT:
            self._stream, self._owned = sys.stdout, False
        else:
            self._stream, self._owned = open_for_appending(Path(self.destination)), True
        self._checked_at = clock()

    def write(self, record: dict[str, Any]) -> None:
        """Write one record as one line (to the file now at the path, when it was rotated); an AuditWriteError when it
        cannot be (a full disk): then no part of it is in the file, nor kept to be written later. The first line
        written after failed ones comes after the resumed line (``resumed``), in the same write."""
        self._write(json.dumps(record, separators=(",", ":"), ensure_ascii=True) + "\n")

    def resume(self) -> str | None:
        """While lines fail, try the resumed line alone, once the file has room for RESUME_HEADROOM_BYTES more; the
        problem while it still fails, None once the trail takes lines again (the watchdog calls this, so an outage ends
        even when no call comes). The short resumed line fitted in the last free bytes where a call's did not, and the
        guard turned ready for 100 ms at a time while every call was refused (failure audit 3). A file rotated away
        meanwhile is reopened first: the room that counts is the new file's (the old one, at its size limit or on a
        full disk, had kept the outage open for ever)."""
        if self.problem is not None and self._owned:
            with self._lock:
                if self._clock() - self._checked_at >= self.check_interval_s:
                    self._reopen_if_moved()
        if self.resumed is not None and (self.problem is None or self._has_headroom()):
            with contextlib.suppress(AuditWriteError):
                self._write("")
        return self.problem

    def _has_headroom(self) -> bool:
        """Whether the open file may grow by RESUME_HEADROOM_BYTES: free space on its file system (for this user) and
        below the file-size limit (RLIMIT_FSIZE). Always for stdout, and where it cannot be told."""
        if not self._owned:
            return True
        try:
            descriptor = self._stream.fileno()
            space = os.fstatvfs(descriptor)
            free = (space.f_bfree if os.geteuid() == 0 else space.f_bavail) * space.f_frsize
            size_limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            below_limit = (size_limit - os.fstat(descriptor).st_size if size_limit != resource.RLIM_INFINITY
                           else RESUME_HEADROOM_BYTES)
        except (OSError, ValueError):
            return True
        return min(free, below_limit) >= RESUME_HEADROOM_BYTES

    def _write(self, line: str) -> None:
        """Write ``line`` ("" for none) under the lock, the resumed line first while an outage is open."""
        with self._lock:
            if self.problem is not None and self.resumed is not None:
                line = json.dumps(self.resumed(self.problem), separators=(",", ":"), ensure_ascii=True) + "\n" + line
            if not line:
                return
            if self._owned and self._clock() - self._checked_at >= self.check_interval_s:
                self._reopen_if_moved()
            try:
                if self._owned:  # unbuffered: a failed line is never flushed later under another call's
                    append_whole(self._stream.fileno(), line.encode("ascii"))
                else:
                    self._write_stdout(line)
            except (OSError, ValueError) as e:  # ValueError: stdout closed
                problem = getattr(e, "strerror", None) or str(e)
                if problem != self.problem:
                    logger.error("audit log %s cannot be written (%s): every inference call is refused (UNAVAILABLE) "
                                 "until it can; free space on its file system or fix it", self.destination, problem)
                self.problem = problem
                raise AuditWriteError(f"the audit trail cannot be written ({problem})") from e
            if self.problem is not None:
                logger.info("audit log %s is written again", self.destination)
                self.problem = None

    def _write_stdout(self, line: str) -> None:
        """Write one line to stdout unbuffered, after what was printed before it; through the stream itself only where
        it has no descriptor (a stream a test put in its place). A line cut short there cannot be taken back (stdout
        may be a pipe): the next line then starts on a line of its own, so the cut one is the only one torn."""
        try:
            descriptor = self._stream.fileno()
        except (OSError, ValueError):  # io.UnsupportedOperation is both
            self._stream.write(line)
            self._stream.flush()
            return
        self._stream.flush()
        try:
            write_all(descriptor, ("\n" + line if self._torn else line).encode("ascii"))
        except ShortWriteError as e:
            self._torn = self._torn or e.written > 0  # nothing written: the owed line start is still owed
            raise
        self._torn = False

    def reopen(self) -> None:
        """Open the path again if the file there is not the one open (after a rotation; SIGHUP calls this)."""
        with self._lock:
            if self._owned:
                self._reopen_if_moved()

    def _reopen_if_moved(self) -> None:
        """With the lock held: compare the path's device and inode with the open file's and switch to the file at
        the path when they differ or it is gone; when it cannot be opened, say why (once) and keep the old file."""
        self._checked_at = self._clock()
        path = Path(self.destination)
        try:
            if _identity(path.stat()) == _identity(os.fstat(self._stream.fileno())):
                return
        except FileNotFoundError:
            pass  # moved or deleted: a new file is made at the path
        except OSError as e:
            self._tell_reopen_problem(f"cannot be looked at ({e.strerror or e})")
            return
        try:
            stream = open_for_appending(path)
        except ConfigError as e:
            self._tell_reopen_problem(str(e))
            return
        self._close_stream()
        self._stream, self._reopen_problem = stream, None
        logger.info("audit log %s was rotated: lines now go to the new file at that path", path)

    def _tell_reopen_problem(self, problem: str) -> None:
        if problem != self._reopen_problem:
            self._reopen_problem = problem
            logger.error("audit log %s was moved or replaced but %s; audit lines still go to the file open before "
                         "(check the folder's permissions)", self.destination, problem)

    def _close_stream(self) -> None:
        """Fsync and close the open file (an fsync that fails is logged: the lines reached the OS). Lines are written
        unbuffered, so there is nothing to flush that a full disk could make fail here."""
        try:
            os.fsync(self._stream.fileno())
        except OSError as e:
            logger.warning("could not fsync the audit log %s: %s", self.destination, e.strerror or e)
        with contextlib.suppress(OSError):
            self._stream.close()

    def close(self) -> None:
        """Fsync and close the file (stdout stays open)."""
        with self._lock:
            if self._owned and not self._stream.closed:
                self._close_stream()
