"""What the guard's gRPC front (audit trail, truthful readiness) adds to a request's latency, at each concurrency
level the bench runs and over TLS at concurrency 1.

At a level of concurrency c, c threads each hold one client straight to Triton's loopback port and one to the
front, and each sends its requests in pairs, one on each path, the order swapped every pair: c requests are in
flight at once, about half on each path, so both paths see the same machine state. Connections are opened
(``ServerReady``, which the front answers itself and does not audit) before the clock starts: a row is the
per-request cost on a kept-open connection, without the TCP or TLS handshake. The direct calls are always
plaintext to the loopback Triton; only the front's port is plaintext or TLS.

The guard runs in the bench's process, as in ``dermassist serve``'s; the clients run in a process of their own
(spawned once for every row), so the front's event loop does not wait for the clients' threads to let go of one
Python interpreter lock, which a guard in production never shares with its callers.
"""
from __future__ import annotations

import itertools
import logging
import multiprocessing
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from preprocess.contract import ENSEMBLE_NAME

from ..guard.requests import AUDITED_OUTPUTS
from .errors import BenchError, NoMeasurementsError
from .served import CALL_TIMEOUT_S, OUTPUTS, _request

if TYPE_CHECKING:
    from ..base.server import TritonServer
    from ..guard.background import BackgroundGuard

# Both paths ask for what every audit line records, as the client SDK does: a request without them would have the
# front add them (and the ensemble run triage) on one path only, and the difference would not be the front's cost.
FRONT_OUTPUTS = tuple(dict.fromkeys((*OUTPUTS, *AUDITED_OUTPUTS)))
TLS_CONCURRENCY = 1  # the TLS row's level: the per-request cost of encryption, not the machine's saturation
DIRECT_PATH = "plaintext gRPC to the loopback Triton"
PATHS = ("direct", "front")
AUDIT_FILE = "front_audit.jsonl"  # every inference through the plaintext front: one line each
TLS_AUDIT_FILE = "front_audit_tls.jsonl"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrontCost:
    """One row: p50 and p95 latency (ms) straight to Triton and through the front at one concurrency, interleaved."""

    concurrency: int
    requests: int  # timed requests on each path
    direct_p50_ms: float
    direct_p95_ms: float
    front_p50_ms: float
    front_p95_ms: float
    tls: bool = False  # the front's port over TLS (the direct calls stay plaintext)

    @property
    def added_ms(self) -> float:
        """Milliseconds the front adds at the median."""
        return self.front_p50_ms - self.direct_p50_ms

    @property
    def ratio(self) -> float:
        """Front p50 / direct p50 (0 when the direct p50 is 0)."""
        return self.front_p50_ms / self.direct_p50_ms if self.direct_p50_ms else 0.0

    @property
    def added_p95_ms(self) -> float:
        """Milliseconds the front adds at the 95th percentile."""
        return self.front_p95_ms - self.direct_p95_ms

    @property
    def ratio_p95(self) -> float:
        """Front p95 / direct p95 (0 when the direct p95 is 0)."""
        return self.front_p95_ms / self.direct_p95_ms if self.direct_p95_ms else 0.0


@dataclass(frozen=True)
class FrontCosts:
    """Every row of what the front adds: plaintext at each bench level, and TLS at concurrency 1 when measured."""

    levels: tuple[FrontCost, ...]
    tls: FrontCost | None = None
    tls_note: str = ""  # how the TLS row's certificate was made, or why there is no TLS row

    @property
    def rows(self) -> tuple[FrontCost, ...]:
        """The plaintext rows, then the TLS row if there is one (the report's table, in its order)."""
        return self.levels + ((self.tls,) if self.tls is not None else ())

    @property
    def requests(self) -> int:
        """Inferences sent through the plaintext front, every level together: the lines of its audit trail."""
        return sum(row.requests for row in self.levels)


def front_row(concurrency: int, direct_ms: Sequence[float], front_ms: Sequence[float], tls: bool = False) -> FrontCost:
    """The row of one level from its latencies (milliseconds) on each path; percentiles interpolate linearly."""
    if len(direct_ms) == 0 or len(front_ms) == 0:
        raise NoMeasurementsError(f"a front row needs latencies on both paths, got {len(direct_ms)} direct and "
                                  f"{len(front_ms)} through the front at concurrency {concurrency}; send at least one "
                                  "request each way (--requests >= 1)")
    direct, front = np.asarray(direct_ms, dtype=np.float64), np.asarray(front_ms, dtype=np.float64)
    return FrontCost(concurrency, min(len(direct), len(front)),
                     float(np.percentile(direct, 50)), float(np.percentile(direct, 95)),
                     float(np.percentile(front, 50)), float(np.percentile(front, 95)), tls)


def pair_order(pair: int) -> tuple[str, str]:
    """Which path goes first in the ``pair``-th pair of requests: direct on even pairs, the front on odd ones."""
    return PATHS if pair % 2 == 0 else PATHS[::-1]


def measure_front_level(direct: str, front: str, images: Sequence[bytes], concurrency: int, requests: int,
                        root_certificates: Path | None = None) -> FrontCost:
    """Send ``requests`` pairs (one request each way) from ``concurrency`` threads and summarise both paths.

    ``root_certificates``: the CA the front's TLS certificate chains to; None for a plaintext front.
    """
    import tritonclient.grpc as grpcclient

    requests = max(requests, concurrency)
    counter = itertools.count()
    samples: dict[str, list[float]] = {name: [] for name in PATHS}
    errors: list[tuple[str, BaseException]] = []
    lock = threading.Lock()
    start = threading.Barrier(concurrency)

    def worker() -> None:
        clients = {}
        where = "direct"
        try:
            clients["direct"] = grpcclient.InferenceServerClient(direct)
            where = "front"
            clients["front"] = grpcclient.InferenceServerClient(
                front, ssl=root_certificates is not None,
                root_certificates=None if root_certificates is None else str(root_certificates))
            for name in PATHS:  # connect (and shake hands) before the clock starts
                where = name
                clients[name].is_server_ready(client_timeout=CALL_TIMEOUT_S)
            start.wait(timeout=CALL_TIMEOUT_S)
            while (pair := next(counter)) < requests:
                for where in pair_order(pair):
                    inputs, outputs = _request(grpcclient, images[pair % len(images)], FRONT_OUTPUTS)
                    started = time.perf_counter()
                    clients[where].infer(ENSEMBLE_NAME, inputs, outputs=outputs, client_timeout=CALL_TIMEOUT_S)
                    with lock:
                        samples[where].append((time.perf_counter() - started) * 1000.0)
        except BaseException as e:  # noqa: BLE001 - reported after join
            errors.append((where, e))
            start.abort()  # the other threads stop waiting for this one
        finally:
            for client in clients.values():
                client.close()

    threads = [threading.Thread(target=worker, name=f"bench-front-c{concurrency}-{k}") for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    port = "TLS" if root_certificates is not None else "plaintext"
    if errors:  # the first that is not another thread's broken start
        where, error = next(((w, e) for w, e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
        target = direct if where == "direct" else f"the {port} front at {front}"
        raise BenchError(f"a request to {target} failed at concurrency {concurrency}: {error}; expected every request "
                         "of the front's measurement to be answered: see the log above (the guard's, tritonserver's)") from error
    return front_row(concurrency, samples["direct"], samples["front"], tls=root_certificates is not None)


@contextmanager
def client_process() -> Iterator[Executor]:
    """One freshly spawned process (not forked: the bench's holds torch, TensorFlow and the guard's threads) that
    runs :func:`measure_front_level` for every row."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def measure_in(clients: Executor, direct: str, front: str, images: Sequence[bytes], concurrency: int, requests: int,
               root_certificates: Path | None = None) -> FrontCost:
    """:func:`measure_front_level` in the ``clients`` process, logged here; a BenchError if that process died."""
    try:
        row = clients.submit(measure_front_level, direct, front, list(images), concurrency, requests,
                             root_certificates).result()
    except BrokenProcessPool as e:
        raise BenchError(f"the client process of the front's measurement died at concurrency {concurrency} ({e}); "
                         "expected it to answer every row: look for it killed for memory (dmesg) and run again") from e
    logger.info("front c=%d (%s): p50 %.2f ms direct, %.2f ms through the front (%+.2f ms); p95 %.2f / %.2f ms",
                concurrency, "TLS" if row.tls else "plaintext", row.direct_p50_ms, row.front_p50_ms, row.added_ms,
                row.direct_p95_ms, row.front_p95_ms)
    return row


def _guard_before(server: TritonServer, **settings: object) -> BackgroundGuard:
    """A BackgroundGuard with these GuardConfig ``settings`` before the running embedded ``server`` (which it does
    not own), on free ports; a ConfigError for a setting the guard refuses."""
    from ..base.server import free_ports
    from ..base.server_config import ServerConfig
    from ..guard.background import BackgroundGuard
    from ..guard.config import GuardConfig

    http, grpc, metrics = free_ports(3)
    public = ServerConfig(repository=server.config.repository, http_port=http, grpc_port=grpc, metrics_port=metrics)
    return BackgroundGuard(public, GuardConfig(**settings), server=server)  # type: ignore[arg-type]


def measure_tls(server: TritonServer, images: Sequence[bytes], requests: int, audit_log: str,
                clients: Executor) -> tuple[FrontCost | None, str]:
    """The TLS row (concurrency 1) behind a guard whose certificate is made now, and the note that says how; (None,
    why) when no certificate could be made or the TLS front could not be measured (the plaintext rows still stand)."""
    from ..base.errors import DermAssistError
    from .tls import TLS_KEY_TEXT, make_throwaway_tls

    with tempfile.TemporaryDirectory(prefix="dermassist-bench-tls-") as folder:
        try:
            files = make_throwaway_tls(Path(folder))
            with _guard_before(server, audit_log=audit_log, tls_cert=files.cert, tls_key=files.key) as guard:
                row = measure_in(clients, server.config.grpc_address, guard.grpc_address, images, TLS_CONCURRENCY,
                                 requests, root_certificates=files.ca)
        except (DermAssistError, ImportError) as e:
            logger.warning("front over TLS not measured: %s", e)
            return None, f"not measured: {e}"
    return row, (f"the front's port over TLS with a throwaway CA and server certificate made at run time "
                 f"({TLS_KEY_TEXT}, cryptography), the client trusting that CA; direct calls stay plaintext")


def measure_behind_guard(server: TritonServer, images: Sequence[bytes], concurrencies: Sequence[int], requests: int,
                         report_dir: Path) -> FrontCosts:
    """Put a guard before a running embedded server and measure what it adds at each level, then over TLS at c=1.

    Audit trails go to :data:`AUDIT_FILE` (plaintext) and :data:`TLS_AUDIT_FILE` in ``report_dir``.
    """
    report_dir = Path(report_dir)
    for trail in (AUDIT_FILE, TLS_AUDIT_FILE):  # this run's trails, as every report of the folder (they grew across runs)
        (report_dir / trail).unlink(missing_ok=True)
    with client_process() as clients:
        with _guard_before(server, audit_log=str(report_dir / AUDIT_FILE)) as guard:
            levels = tuple(measure_in(clients, server.config.grpc_address, guard.grpc_address, images, c, requests)
                           for c in concurrencies)
        row, note = measure_tls(server, images, requests, str(report_dir / TLS_AUDIT_FILE), clients)
    return FrontCosts(levels, row, note)
