"""The guard: runs tritonserver on loopback, serves the public gRPC front and the health endpoint,
watches every step and heals the pipeline when one breaks.

Detection: the stub processes of the Python-backend steps are looked at every
``scan_interval_s`` (a killed, crashed or stopped stub is seen at once); a canary inference goes
through the ensemble every ``canary_interval_s`` and whenever a client request fails in a step; a
tritonserver that exited is seen on the next scan. Readiness turns false at the first sign and
comes back only after a canary succeeded.

Healing: ``reload`` kills what is left of the broken model's stubs, unloads it and loads it again
through the repository API with the admin key (about 1.5-2 s for one Python step here), falling back
to a restart of tritonserver when the reload does not bring the canary back, after
``max_reloads`` reloads (Triton 2.51 never finishes unloading a model whose stub died, so each
reload leaves that unload pending until the next restart), or when tritonserver itself died. A whole reload, however
many models it touches, ends within ``reload_timeout_s``; a failed recovery is tried again after a backoff.

Liveness: the guard stops being live once it has been unready for longer than ``max_unready_s`` (its recoveries kept
failing or one is stuck; counted from when the front serves, after tritonserver's start-up), so the orchestrator
restarts the pod rather than leave it holding its GPU unready; with ``exit_when_not_live`` (docker-compose, which acts
on no health check) it stops itself then and ``serve`` exits non-zero.

Stopping: readiness turns false, the watchdog and any recovery are cancelled (a restart of tritonserver in progress is
abandoned: the starting server gets SIGTERM), calls in flight get ``drain_s``, then tritonserver is stopped.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime
import errno
import functools
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from preprocess.contract import ALL_MODELS, ENSEMBLE_NAME, STEP_MODELS

from ..base.errors import ConfigError, DermAssistError, ServerError
from ..base.repository import FileMarks, changed_files, repository_marks, served_identity
from ..base.server import TritonServer, bind_problem, free_ports, private_shm_regions, remove_orphans
from ..base.server_config import ServerConfig
from .admin import admin_key_problem
from .audit import AuditLog, resumed_record
from .canary import canary_request, check_canary_answer
from .certificates import expiry_warnings
from .config import RECOVERY_CALL_S, RESTART_GRACE_S, UNLIMITED_MESSAGES, GuardConfig, host_problem, port_problem
from .exhaustion import AcceptErrors, out_of_files
from .faults import Fault, Recovery, busy_not_broken, fault_key, held, models_in_message, recovery_backoff
from .front import Front
from .health import STABLE_READY_S, STOPPING, Readiness, start_health_server
from .metrics import GuardMetrics, Sample
from .ports import BusyPort, bind_failure, busy_public_ports, plaintext_warning
from .rotation import ServedTls
from .served_copy import LOST_MODELS, LoadFailed, ServedCopy
from .stubs import Stub, broken_stubs, cpu_seconds, find_stubs

logger = logging.getLogger(__name__)

STOP_GRACE_S = 30.0  # tritonserver gets this long to stop its models when the guard stops (after the drain)
MAX_RECORDS = 1000  # recoveries kept for the log and the tests
LIVENESS_CHECK_S = 1.0  # how often the guard looks whether it is still live (to log it without a probe asking)
STILL_UNREADY_LOG_S = 60.0  # while a recovery goes on, a line says so this often (a hung reload was silent for minutes)
#: How often the served repository's files are looked at (a stat of each) for a change since Triton loaded them.
REPOSITORY_CHECK_S = 5.0
#: After an admin load or unload returns, how long the stubs of the instances Triton replaced may take to exit
#: without being taken for faults (Triton unloads the old instances after the load's answer); the canary still judges.
PLANNED_CHANGE_GRACE_S = 10.0
UNLOAD_TIMEOUT_S = 30.0  # an unload answers at once (it finishes in the background); within the reload's one deadline
ABANDON_SIGNAL_S = 0.5  # while a restart is abandoned, SIGTERM goes to the starting tritonserver this often
#: The share of one core tritonserver and its stubs must use while a canary waits for it to be working, not hung
#: (idle, they use a few hundredths of one; one batch computing, a core or more).
WORKING_CPU_SHARE = 0.25
CANARY_FAILED = "canary inference failed: "  # how a canary that got no answer is told
CANARY_TIMED_OUT = f"{CANARY_FAILED}{grpc.StatusCode.DEADLINE_EXCEEDED.name}"  # ... when it ran out of time: a hang
LOOPBACK_CHANNEL_OPTIONS = UNLIMITED_MESSAGES + [
    ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def describe(error: grpc.aio.AioRpcError) -> str:
    """A one-line account of a failed call."""
    return f"{error.code().name}: {error.details()}"


def canary_fault(problem: str) -> Fault:
    """The fault a failed canary found: the models its error names; a hang when it ran out of time."""
    return Fault(problem, models_in_message(problem), hang=problem.startswith(CANARY_TIMED_OUT))


def audit_trail(destination: str, metrics: GuardMetrics) -> AuditLog:
    """The guard's audit log, whose line ending an outage counts the calls refused since ``serve`` started."""
    return AuditLog(destination, resumed=lambda problem: resumed_record(problem, metrics.audit_failures))


def audit_down(problem: str) -> str:
    """The not-ready reason while the audit trail takes no lines."""
    return (f"the audit trail cannot be written ({problem}): every call is refused until it can; free space on its "
            "file system (or fix it)")


def versions_text(models: list[tuple[str, str]]) -> str:
    """The served (model, version) pairs as one line, every version of a model together: ``classify 1; prepare 1, 2``
    (a model with two versions is one whose repository folder holds an extra version)."""
    served: dict[str, list[str]] = {}
    for name, version in models:
        served.setdefault(name, []).append(version)
    text = "; ".join(f"{name} {', '.join(sorted(versions, key=lambda v: (len(v), v)))}"
                     for name, versions in sorted(served.items()))
    return text or "none"


def first_line(text: str) -> str:
    """The first line of ``text`` (Triton's load errors go on with a Python traceback)."""
    return text.strip().splitlines()[0] if text.strip() else text


class Guard:
    """tritonserver on loopback behind the public front; see the module docstring."""

    def __init__(self, public: ServerConfig, config: GuardConfig, server: TritonServer | None = None) -> None:
        """``server``: a tritonserver already running to put the guard in front of (it is not stopped
        with the guard, unless a recovery restarted it: the restart starts it from the guard's lifecycle thread, and
        its parent-death signal ends it with that thread when ``run`` returns); by default the guard starts its own
        on loopback ports. A host that does not resolve, an
        audit log that cannot be appended to, or an operator's admin key shorter than MIN_ADMIN_KEY_CHARS is a
        ConfigError here, before anything starts."""
        problem = host_problem(public.host)
        if problem is not None:
            raise ConfigError(f"host {public.host} {problem}; expected a name or address of this machine to serve on: "
                              "pass another --host / DERMASSIST_HOST, e.g. 0.0.0.0 for every interface")
        if server is None and not public.admin_key_is_generated:  # the operator's key opens the public port
            problem = admin_key_problem(public.admin_key)
            if problem is not None:
                raise ConfigError(problem)
        self.public = public
        self.config = config
        self._owns_server = server is None
        self.source = public.repository  # the operator's folder; a guard's own tritonserver serves a copy of it
        self.copy: ServedCopy | None = None
        self.model_loads = asyncio.Lock()  # admin loads of the ensemble, one at a time (each updates the copy)
        self._copy_changing = False  # an admin load is changing the served copy: the identity is read after it
        if server is None:
            self.copy = ServedCopy(public.repository)
            http, grpc_port = free_ports(2)
            # tritonserver's admin key is this run's own random one: its command line is readable by every local
            # user (ps), so the operator's key, which opens the public port, never appears there
            # and inference on its loopback ports needs that key too: a local user's call around the front would
            # leave no audit line (privacy audit, M5)
            server = TritonServer(dataclasses.replace(
                public, repository=self.copy.repository, host="127.0.0.1", http_port=http, grpc_port=grpc_port,
                admin_key=secrets.token_hex(32),
                metrics_host=public.metrics_host or public.host,
                model_control_mode="explicit" if config.recovery == "reload" else public.model_control_mode,
            ), restrict_inference=True)
        self.server = server
        self.triton_config = server.config
        problem = config.unready_bound_problem(self.triton_config.startup_timeout_s)
        if problem is not None:
            raise ConfigError(problem)
        self.metrics = GuardMetrics()  # served on the health port at /metrics
        self.audit = audit_trail(config.audit_log, self.metrics)
        self.versions: dict[str, str] = {}
        # the release and build the served answers name (served_identity): read when Triton has loaded models (its
        # start, a restart or reload, an admin load or unload), not at every return of readiness; {} while unknown
        self.identity: dict[str, str] = {}
        self._identity_due = True
        self._identity_lost = False  # what Triton serves is not known since a failed load (until a restart)
        self._identity_generation = 0  # counts the changes of what is served: a read older than the last is dropped
        self._planned = 0  # admin loads and unloads under way: the stubs they stop are no faults
        self._loaded_marks: FileMarks | None = None  # the repository's files as they were when Triton loaded models
        self._source_marks: FileMarks | None = None  # the operator's folder's files as they were when last copied
        self.repository_changed: list[str] = []  # files changed on disk since then (told once, and measured)
        self._next_repository_look = 0.0
        self._planned_until = 0.0  # and for PLANNED_CHANGE_GRACE_S after the last one returned (time.monotonic())
        self._identity_reads: set[asyncio.Task[None]] = set()  # reads of the admin calls' own, kept until done
        self._served: list[tuple[str, str]] | None = None  # every (model, version) Triton serves, as last logged
        self.stubs: list[Stub] = []
        self.recoveries: list[Recovery] = []
        self.tls: ServedTls | None = None  # the served TLS files, followed while serving (None in plaintext)
        self.reloads = 0
        # made again by each run(); these say "not ready" until then (asyncio objects bind to a loop on first use)
        self.readiness = Readiness(config.max_unready_s)
        self.stopping = False  # set when the guard begins to stop: calls cancelled from then on were cut by it
        # a restart of tritonserver running on the lifecycle thread, and the flag that tells it the guard stops
        self._restarting: concurrent.futures.Future[None] | None = None
        self._abandon = threading.Event()
        self._not_live: str | None = None  # why the guard stopped itself (exit_when_not_live)
        self._suspect = asyncio.Event()
        self._canaries = 0
        self._been_ready = False
        self._healing: Fault | None = None  # the fault being healed now
        self._blind: str | None = None  # why tritonserver's processes cannot be looked at now (out of descriptors)
        self._cannot_look_told: str | None = None  # what the log last said of /proc that could not be read
        self._stubs_unknown = False  # tritonserver was restarted and its stubs could not be looked for yet
        self.accept_errors = AcceptErrors(self.metrics.observe_accept_refused)  # refused accepts, told once a minute
        # tritonserver is started, restarted and stopped from this one thread, which lives as long as
        # the guard: the launcher sets PR_SET_PDEATHSIG, which fires when the *thread* that started
        # the child ends, so a short-lived thread would take tritonserver down with it.
        self._lifecycle = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dermassist-triton")

    @property
    def admin_key(self) -> str:
        """The key a client presents on the public port to reach the restricted APIs and the internal steps."""
        return self.public.admin_key if self._owns_server else self.triton_config.admin_key

    @property
    def internal_admin_key(self) -> str:
        """The key tritonserver itself was started with (the front swaps the client's right key for it)."""
        return self.triton_config.admin_key

    @property
    def _admin_metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple(self.triton_config.grpc_admin_headers.items())

    # ---- life cycle -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, on_started: Callable[[], None] | None = None) -> None:
        """Start everything, serve until ``stop`` is set, then stop everything."""
        loop = asyncio.get_running_loop()
        self.readiness = Readiness(self.config.max_unready_s)
        self._suspect = asyncio.Event()
        self.model_loads = asyncio.Lock()
        self._abandon.clear()
        self._not_live = None
        try:  # minutes before tritonserver has loaded the models: a taken public port is told now
            self._check_public_ports()
            if self.copy is not None:  # and a repository that could never serve (it stayed not ready until stopped)
                await asyncio.to_thread(remove_orphans)  # a guard killed outright left its copy: room for this one
                self._source_marks = await asyncio.to_thread(self.copy.fill)
        except BaseException:
            self.audit.close()
            self._lifecycle.shutdown(wait=False)
            self._close_copy()
            raise
        if self._owns_server:
            try:
                await self._start_server(stop)
            except BaseException:
                self.audit.close()
                self._lifecycle.shutdown(wait=False)
                self._close_copy()
                if stop.is_set() and not self.server.running:  # stopped as asked while it started: not a failure
                    logger.info("stopped while tritonserver was starting")
                    return
                raise
        front = health = watchdog = liveness = None
        loop_errors = loop.get_exception_handler()
        loop.set_exception_handler(self.accept_errors)
        self.channel = grpc.aio.insecure_channel(self.triton_config.grpc_address, options=LOOPBACK_CHANNEL_OPTIONS)
        try:
            self.triton = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)
            self.stubs = find_stubs(self.server.pid)
            front = await self._start_front()
            health = await start_health_server(self.public.host, self.public.http_port, self.readiness,
                                               self.metrics_text)
            # liveness counts from here, not from before tritonserver's start-up: the first unready spell is then at
            # most a first canary and one recovery, like every other (GuardConfig.longest_recovery_s)
            self.readiness.serving()
            watchdog = asyncio.create_task(self._watch(), name="dermassist-watchdog")
            liveness = asyncio.create_task(self._watch_liveness(stop), name="dermassist-liveness")
            logger.info("gRPC front on %s:%d (%s), health on http://%s:%d%s; audit trail to %s",
                        self.public.host, self.public.grpc_port, self._tls_text(), self.public.host,
                        self.public.http_port, "/v2/health/ready", self.audit.destination)
            if on_started is not None:
                on_started()
            await stop.wait()
        finally:
            # not ready before the stop is known to have begun, and the watchdog cancelled before anything awaits: a
            # canary during the drain would advertise readiness again (the event loop runs nothing in between)
            self.readiness.set_not_ready(STOPPING)
            self.stopping = True
            for task in (watchdog, liveness):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            # a restart in progress is given up while the calls in flight drain, not waited for (minutes)
            abandoning = asyncio.ensure_future(self._abandon_restart())
            if front is not None:
                if self.front.in_flight:
                    logger.info("stopping: %d inference call(s) in flight get up to %g s to be answered",
                                self.front.in_flight, self.config.drain_s)
                await front.stop(self.config.drain_s)
                self.front.close()
            await abandoning
            if health is not None:
                health.close()
            await self.channel.close()
            if self._owns_server:
                # after a reload Triton waits its whole exit timeout for the unload that never ends
                grace = RESTART_GRACE_S if self.reloads else STOP_GRACE_S
                await loop.run_in_executor(self._lifecycle, lambda: self.server.stop(timeout_s=grace))
            self._lifecycle.shutdown(wait=True)
            self._close_copy()
            self.audit.close()
            loop.set_exception_handler(loop_errors)
        if self._not_live is not None:
            raise ServerError(f"the guard stopped itself because it was no longer live (exit_when_not_live): "
                              f"{self._not_live}")

    def _check_public_ports(self) -> None:
        """A ServerError naming every public port that cannot be listened on now, each with its flag, in one message:
        the gRPC front, the health endpoint and, where the guard starts tritonserver, Triton's metrics port."""
        busy = busy_public_ports(self.public, self.triton_config if self._owns_server else None)
        if busy:
            raise ServerError(bind_failure(busy))

    async def _start_server(self, stop: asyncio.Event) -> None:
        """Start tritonserver; a stop asked for meanwhile (SIGTERM from an orchestrator that gives up on a slow start)
        stops it at once instead of after it is ready, which can take minutes on a GPU host."""
        starting = asyncio.get_running_loop().run_in_executor(self._lifecycle, self.server.start)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            either: set[asyncio.Future[Any]] = {starting, stopping}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            while not starting.done():  # start() sees the exit, stops what is left and raises
                self.server.send_signal(signal.SIGTERM)  # until it lands: the process may not be launched yet
                await asyncio.wait({starting}, timeout=0.5)
            await starting
        finally:
            stopping.cancel()

    async def _abandon_restart(self) -> None:
        """Give up a restart of tritonserver in progress when the guard stops: the restart does not start a new
        server once it sees the flag, and a server already starting gets SIGTERM (until it lands) so its start ends
        at once instead of after its models loaded or its start-up timeout ran out."""
        restarting = self._restarting
        if restarting is None or restarting.done():
            return
        self._abandon.set()
        logger.warning("stopping during a restart of tritonserver: the restart is abandoned")
        waiting = asyncio.wrap_future(restarting)
        while not waiting.done():
            self.server.send_signal(signal.SIGTERM)
            await asyncio.wait({waiting}, timeout=ABANDON_SIGNAL_S)
        if not waiting.cancelled() and waiting.exception() is not None:
            logger.info("the abandoned restart ended: %s", str(waiting.exception()).splitlines()[0])

    async def _watch_liveness(self, stop: asyncio.Event) -> None:
        """Look every LIVENESS_CHECK_S whether the guard is still live, so the line saying why it is not is logged
        even where no probe asks (``Readiness.live_problem`` logs it); with ``exit_when_not_live``, stop the guard
        then (``run`` raises, and ``serve`` exits non-zero for the restart policy to start it again)."""
        told, spell = 0, 0.0  # how many STILL_UNREADY_LOG_S of the unready spell begun at ``spell`` have been told
        while True:
            problem = self.readiness.live_problem()
            if problem is not None and self.config.exit_when_not_live:
                logger.error("stopping the guard so that its restart policy starts it afresh (exit_when_not_live)")
                self._not_live = problem
                stop.set()
                return
            readiness = self.readiness
            if readiness.unready_since != spell:
                told, spell = 0, readiness.unready_since
            if not (readiness.ready or not self._been_ready or readiness.reason == STOPPING):
                unready_s = time.monotonic() - readiness.unready_since
                if problem is None and int(unready_s // STILL_UNREADY_LOG_S) > told:
                    told = int(unready_s // STILL_UNREADY_LOG_S)
                    logger.warning("still not ready after %.0f s%s (not live after %g s): %s", unready_s,
                                   readiness.flapped(), self.config.max_unready_s, readiness.reason)
            now = datetime.datetime.now(datetime.UTC)
            if self.tls is not None:
                self.tls.check(now)
            self._tell_expiry(now)
            if self._loaded_marks is not None and time.monotonic() >= self._next_repository_look:
                self._next_repository_look = time.monotonic() + REPOSITORY_CHECK_S
                with contextlib.suppress(OSError):  # a folder that cannot be walked now: looked at again next time
                    self.look_at_repository(await asyncio.to_thread(repository_marks, self.source))
            await asyncio.sleep(LIVENESS_CHECK_S)

    def _tell_expiry(self, now: datetime.datetime) -> None:
        """Log the served certificate's coming end when it reaches 30, 7 and 1 days left, and its end (ERROR)."""
        if self.tls is None:
            return
        told = self.tls.expiry.check(now)
        if told is not None:
            expired = (self.tls.expiry.seconds_left(now) or 0.0) <= 0
            (logger.error if expired else logger.warning)("%s", told)

    def _tls_text(self) -> str:
        if not self.config.tls:
            return "plaintext"
        return "mutual TLS" if self.config.mutual_tls else "TLS"

    async def _start_front(self) -> grpc.aio.Server:
        warnings = [plaintext_warning(self.public.host, self.config.tls)]
        now = datetime.datetime.now(datetime.UTC)
        for path, bundle in ((self.config.tls_cert, False), (self.config.tls_client_ca, True)):
            warnings += expiry_warnings(path, now, bundle) if path else []
        for warning in filter(None, warnings):
            logger.warning("%s", warning)
        cert, key, client_ca = self.config.tls_cert, self.config.tls_key, self.config.tls_client_ca
        self.tls = ServedTls(cert, key, client_ca, now) if cert is not None and key is not None else None
        server = grpc.aio.server(options=self.config.server_options())
        self.front = Front(self, self.channel, self.metrics)
        server.add_generic_rpc_handlers((self.front,))
        host, port = self.public.host, self.public.grpc_port
        address = f"{host}:{port}"
        credentials = self.tls.credentials() if self.tls is not None else None
        code: int | None = None
        try:
            bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
        except RuntimeError as e:  # gRPC's own text only says "Failed to bind": the probe tells why
            probe = bind_problem(host, port)
            bound, reason = 0, (probe.strerror or str(probe)) if probe is not None else str(e)
            code = None if probe is None else probe.errno
        else:
            reason = "gRPC bound no port"
        if not bound and credentials and port_problem(host, port) is None:  # the port is free: the TLS files are not
            raise ServerError(f"cannot serve gRPC with TLS on {address} though the port is free: gRPC could not use "
                              f"the certificate {self.config.tls_cert} with the key {self.config.tls_key}"
                              f"{f' and the client CA {self.config.tls_client_ca}' if self.config.tls_client_ca else ''}"
                              f" ({reason}); check that they are PEM files gRPC reads (an unencrypted key, the "
                              "certificate first in its file), e.g. with `openssl x509 -in CERT -noout` and `openssl "
                              "pkey -in KEY -noout`")
        if not bound:
            raise ServerError(bind_failure([BusyPort("gRPC", host, port, reason, "grpc_port", code)]))
        await server.start()
        return server

    def _expiry_samples(self) -> list[Sample]:
        """The served certificate's seconds left, with TLS (none in plaintext, or when it could not be read)."""
        left = None if self.tls is None else self.tls.expiry.seconds_left(datetime.datetime.now(datetime.UTC))
        if left is None:
            return []
        return [Sample("dermassist_tls_certificate_expiry_seconds", "Seconds until the served TLS certificate ends "
                       "(negative once it has; it follows renewed files).", round(left, 3))]

    def metrics_text(self) -> str:
        """The guard's Prometheus metrics: the counters, and readiness, liveness and the calls in flight now."""
        live = self.readiness.live_problem() is None
        unready_s = 0.0 if self.readiness.ready else time.monotonic() - self.readiness.unready_since
        in_flight = self.front.in_flight if hasattr(self, "front") else 0
        return self.metrics.text((
            Sample("dermassist_ready", "1 while the guard is ready (the last canary through the ensemble succeeded).",
                   float(self.readiness.ready)),
            Sample("dermassist_live", "1 while the guard is live (not unready past --max-unready-s).", float(live)),
            Sample("dermassist_unready_seconds", "Seconds since the guard's unready spell began (0 while ready; "
                   f"readiness shorter than {STABLE_READY_S:g} s does not end a spell).",
                   round(unready_s, 3)),
            Sample("dermassist_repository_changed", "1 while the served repository's files differ from those its "
                   "models were loaded from (a heal or restart would load the files now there).",
                   float(bool(getattr(self, "repository_changed", [])))),
            Sample("dermassist_in_flight", "Inference calls received by the front and not yet answered.",
                   float(in_flight)),
            *self._expiry_samples(),
        ))

    # ---- what the front tells the guard -------------------------------------------------------
    def report_step_failure(self, details: str, sent_at: float) -> None:
        """A client request sent at ``sent_at`` (time.monotonic) failed in a step: stop advertising
        readiness and look at once, unless it was sent before the last healing (a stale failure of
        the instance that was just replaced)."""
        if self.readiness.ready and sent_at < self.readiness.since:
            logger.info("a request sent before the last recovery failed: %s", details)
            return
        self.readiness.set_not_ready(f"a request failed in the pipeline: {details}")
        self._suspect.set()

    def report_audit_failure(self, problem: str) -> None:
        """An audit line could not be written (its call was refused): stop advertising readiness, so the load balancer
        sends the calls elsewhere, until the watchdog finds the trail takes lines again (``_audit_problem``)."""
        self.readiness.set_not_ready(audit_down(problem))
        self._suspect.set()

    def _audit_problem(self) -> str | None:
        """Why the audit trail takes no lines (None when it does); while it takes none, the line saying it resumed is
        tried, which, once written, ends the outage (a call's line written first carries it too: ``AuditLog``)."""
        return self.audit.resume()

    # ---- watching ---------------------------------------------------------------------------
    def _scan(self) -> Fault | None:
        if not self.server.running:
            return Fault(f"tritonserver exited (code {self.server.returncode})", server_down=True)
        if self._stubs_unknown:  # tritonserver was restarted while /proc could not be read: look for its stubs now
            self._find_stubs(after_restart=True)
            if self._stubs_unknown:
                return None
        try:
            broken = broken_stubs(self.stubs)
        except OSError as e:  # not a dead stub: out of descriptors, every healthy one had been called "exited"
            self._cannot_look(e)
            return None
        self._blind = self._cannot_look_told = None
        if broken and self.changing_models():  # stubs Triton stopped to load new instances: look for the new ones
            self._find_stubs()
            return None
        if broken:
            names = ", ".join(f"{s.instance} (pid {s.pid}) {why}" for s, why in broken)
            return Fault(f"stub process {names}", tuple(sorted({s.model for s, _ in broken})))
        return None

    def _cannot_look(self, error: OSError) -> None:
        """/proc could not be read: no stub is called broken for it. Out of file descriptors, the guard is not ready
        (it takes no new connection either) and waits for them to come free; told when the reason changes."""
        reason = out_of_files(error)
        told = reason or (f"tritonserver's processes cannot be looked at ({errno.errorcode.get(error.errno or 0, '?')}: "
                          f"{error.strerror}); the canary alone judges them")
        if told != self._cannot_look_told:  # once while it lasts, not at every scan
            logger.log(logging.WARNING if reason is None else logging.ERROR, "%s", told)
        self._cannot_look_told, self._blind = told, reason

    def _find_stubs(self, after_restart: bool = False) -> None:
        """Look for tritonserver's stubs again. Where /proc cannot be read now, those found before are kept, unless
        tritonserver was restarted since (``after_restart``: theirs are gone, and their pids may be another's): then
        none is known until a scan can look."""
        try:
            self.stubs, self._stubs_unknown = find_stubs(self.server.pid), False
        except OSError as e:
            self._cannot_look(e)
            if after_restart:
                self.stubs, self._stubs_unknown = [], True

    async def canary(self, after_heal: bool = False) -> str | None:
        """One inference through the ensemble on loopback: None when it answered well, else why not. ``after_heal``:
        the first after a reload or restart, which waits (within its deadline) for the loopback channel to connect: a
        channel that saw tritonserver gone retries its connection on a backoff (up to 1 s), and a call made before the
        next try failed at once with "Connection refused" although the new tritonserver was up (20 of 45 restarts
        after a killed tritonserver in an operations audit), counting a healed restart as failed."""
        self._canaries += 1
        request = canary_request(f"dermassist-canary-{self._canaries}")
        sent_at = time.monotonic()
        cpu_before = self._cpu_seconds()
        waits = {"wait_for_ready": True} if after_heal else {}
        try:
            response = await self.triton.ModelInfer(request, timeout=self.config.canary_timeout_s,
                                                    metadata=self._admin_metadata, **waits)
        except grpc.aio.AioRpcError as e:
            now, cpu_after = time.monotonic(), self._cpu_seconds()
            working = (cpu_before is not None and cpu_after is not None
                       and cpu_after - cpu_before >= WORKING_CPU_SHARE * (now - sent_at))
            if busy_not_broken(e.code(), sent_at, self.front.answered_at, self.front.oldest_forwarded_at,
                               now, self.config.busy_limit_s, self.front.expired_unanswered, working):
                logger.warning("the canary waited over %g s behind client requests the ensemble answered meanwhile or "
                               "is still working on: busy, not broken (--canary-timeout-s sets how long it waits, "
                               "--busy-limit-s how long one call may hold the pipeline)", self.config.canary_timeout_s)
                self.metrics.canary_busy += 1
                return None
            return f"{CANARY_FAILED}{describe(e)}"
        self.front.ensemble_answered()
        problem = check_canary_answer(response)
        return None if problem is None else f"canary answer is wrong: {problem}"

    def _cpu_seconds(self) -> float | None:
        """The CPU time tritonserver and its stubs have used (None when it cannot be read)."""
        pid = getattr(self.server, "pid", None)
        pids = ([pid] if isinstance(pid, int) else []) + [stub.pid for stub in self.stubs]
        try:
            return cpu_seconds(pids) if pids else None
        except (OSError, ValueError, IndexError):
            return None

    async def _watch(self) -> None:
        while True:
            try:
                await self._watch_loop()
            except asyncio.CancelledError:
                raise
            except Exception:  # a watchdog that dies would leave readiness stuck; log and go on
                logger.exception("watchdog error; watching again in 1 s")
                await asyncio.sleep(1.0)

    async def _watch_loop(self) -> None:
        next_canary = 0.0
        while True:
            fault = self._scan()
            audit = self._audit_problem()
            blocked = audit_down(audit) if audit is not None else self._blind
            if fault is None and blocked is not None and not self.stopping:  # no call can be answered: no canary now
                self._suspect.clear()
                self.readiness.set_not_ready(blocked)
            due = self._suspect.is_set() or not self.readiness.ready or time.monotonic() >= next_canary
            if fault is None and blocked is None and due:
                self._suspect.clear()
                problem = await self.canary()
                next_canary = time.monotonic() + self.config.canary_interval_s
                private_shm_regions(getattr(self.server, "shm_prefix", ""))  # those a stub added as it grew
                if problem is None and not self.readiness.ready:
                    await self._mark_ready()
                elif problem is not None and (self._been_ready or models_in_message(problem)):
                    fault = canary_fault(problem)
                elif problem is not None:
                    self.readiness.set_not_ready(problem)  # never served yet (models still missing?): wait
            if fault is not None:
                await self._recover(fault)
                next_canary = 0.0
                continue
            try:
                await asyncio.wait_for(self._suspect.wait(), self.config.scan_interval_s)
            except TimeoutError:
                pass

    async def _mark_ready(self) -> None:
        self._find_stubs()
        try:
            index = await self.triton.RepositoryIndex(service_pb2.RepositoryIndexRequest(ready=True),
                                                      metadata=self._admin_metadata, timeout=RECOVERY_CALL_S)
            self.versions = {m.name: m.version for m in index.models}
            self._log_served(sorted((m.name, m.version) for m in index.models))
        except grpc.aio.AioRpcError as e:
            logger.warning("could not read the model versions for the audit trail: %s", describe(e))
        if self._identity_due:
            await self.read_identity()
        self._been_ready = True
        self.readiness.set_ready()
        last = self.recoveries[-1] if self.recoveries else None
        if last is not None and last.error is not None and last.ready_at is None:  # it failed, then a canary passed
            last.ready_at = time.monotonic()

    async def read_identity(self) -> None:
        """Read the release and build the answers name from the served repository (after Triton loaded models); when
        it cannot be read, the identity is unknown (the answers name none), never a stale one; a read that a newer
        change of the served models overtook is dropped."""
        if self._identity_lost or self._copy_changing:  # not known; or a load changes the copy (it reads after it)
            return
        generation = self._identity_generation
        self._identity_due = False
        try:
            release, build = await asyncio.to_thread(served_identity, self.triton_config.repository)
            # the folder its copy was made from, as copied; a tritonserver the guard was given reads the folder itself
            marks = (self._source_marks if self.copy is not None
                     else await asyncio.to_thread(repository_marks, self.triton_config.repository))
        except Exception as e:  # noqa: BLE001 - readiness must not hang on it: the answers then name no build
            if generation == self._identity_generation:
                self.identity = {}
                logger.warning("could not read which release and build are served (the answers and the audit trail "
                               "name none until models are loaded again): %s", e)
            return
        if generation != self._identity_generation:
            return
        if self.identity != (identity := {"release": release, "build": build}):
            logger.info("serving release %s, build %s", release, build)
        self.identity, self._loaded_marks, self.repository_changed = identity, marks, []

    def look_at_repository(self, marks: FileMarks) -> None:
        """Compare the repository's files (``marks``, as now) with those Triton loaded: a change is told once, as a
        WARNING, and measured (``dermassist_repository_changed``); files put back as they were are told too."""
        if self._loaded_marks is None or self.changing_models():
            return
        changed = changed_files(self._loaded_marks, marks)
        if changed and not self.repository_changed:
            shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            served = ("the copy made when its models were loaded is served, heals included, until an admin load of the "
                      "ensemble or a restart copies the files now there" if self.copy is not None else
                      "the models in memory are served until a heal or a restart loads the files now there, a mix of "
                      "both until all are loaded again")
            logger.warning("the served repository %s changed on disk since its models were loaded (%s): %s; never "
                           "change the served folder: export into a new one and switch (docs/operations.md, "
                           "\"Upgrading the models, and going back\")", self.source, shown, served)
        elif not changed and self.repository_changed:
            logger.info("the served repository %s holds the files its models were loaded from again", self.source)
        self.repository_changed = changed

    def _served_copy(self) -> ServedCopy:
        """The copy this guard serves (a ServerError for a guard given a tritonserver that reads the folder itself)."""
        if self.copy is None:
            raise ServerError("this guard serves no copy of the repository: it was given a tritonserver that reads the "
                              "folder itself")
        return self.copy

    def _close_copy(self) -> None:
        """Remove the served copy (tritonserver has stopped)."""
        if self.copy is not None:
            self.copy.close()

    def models_loaded(self) -> None:
        """Say that what Triton serves changes (a restart, a reload, an admin load or unload): the answers name no
        build until it is read again, when the pipeline is next ready or by ``read_identity_soon``."""
        self.identity = {}
        self._identity_due = True
        self._identity_generation += 1

    def models_changing(self, forget: bool = True) -> tuple[dict[str, str], bool, int]:
        """An admin load or unload is about to run: the answers name no build meanwhile (``models_loaded``; not with
        ``forget`` false, for a load that changes no model), and the stubs it stops are no faults until
        ``models_changed``; what was named before, for ``models_unchanged`` when it fails."""
        before = (self.identity, self._identity_due)
        if forget:
            self.models_loaded()
        self._planned += 1
        return (*before, self._identity_generation)

    def models_changed(self) -> None:
        """An admin load or unload has returned (done or failed): the stubs of the instances it replaced may still
        exit for PLANNED_CHANGE_GRACE_S without being taken for faults."""
        self._planned = max(0, self._planned - 1)
        self._planned_until = time.monotonic() + PLANNED_CHANGE_GRACE_S

    def changing_models(self) -> bool:
        """Whether an admin load or unload runs, or returned less than PLANNED_CHANGE_GRACE_S ago."""
        return self._planned > 0 or time.monotonic() < self._planned_until

    def models_unchanged(self, before: tuple[dict[str, str], bool, int]) -> None:
        """An admin load or unload failed: Triton keeps serving what it served (a failed load leaves the loaded version
        in place), so the answers name it again, unless a newer change came meanwhile."""
        identity, due, generation = before
        if generation == self._identity_generation:
            self.identity, self._identity_due = identity, due

    async def load_copied(self, load: Callable[[], Awaitable[Any]]) -> Any:
        """An admin load of the ensemble by a guard that serves a copy: copy the operator's folder again (a CopyError
        when it cannot be served: nothing changed), load each step whose files changed, then ``load`` (the ensemble's
        load, forwarded to Triton). The copy is kept if all loaded; else the one served before is put back and its
        steps loaded again, and a LoadFailed raised. A step is loaded by itself because Triton's load of an ensemble
        succeeds when a step it reloads fails, the step's older version serving on under the new files' build. The
        release and build are read from the copy once the load has ended, however it ended, never while it runs (a
        heal's read then would name files that may be put back). One at a time; run it in a task of its own
        (``start_load_copied``): it goes on to its end when the admin call that asked for it is cancelled."""
        copy = self._served_copy()
        failed: LoadFailed | None = None
        models: list[str] = []
        try:
            async with self.model_loads:
                self._copy_changing = True
                changed, marks = await asyncio.to_thread(copy.update)  # a CopyError: nothing changed
                models = sorted(set(changed) & set(ALL_MODELS))
                if changed:
                    logger.info("loading the ensemble: the served copy takes the changed %s of %s", ", ".join(changed),
                                self.source)
                # a planned change whatever changed (Triton replaces the instances of a step it takes for changed);
                # the answers name no build while a model it loads changed
                self.models_changing(forget=bool(models))
                try:
                    answer = await self._load_in_order(changed, load)
                except (grpc.aio.AioRpcError, TimeoutError) as e:
                    code, details = ((e.code(), e.details() or "") if isinstance(e, grpc.aio.AioRpcError) else
                                     (grpc.StatusCode.DEADLINE_EXCEEDED, f"the load did not end within reload_timeout_s "
                                                                         f"({self.config.reload_timeout_s:g} s)"))
                    failed = LoadFailed(code, details, await self._load_previous())
                else:
                    copy.keep()
                    self._source_marks = marks
                finally:
                    self.models_changed()
        finally:
            self._copy_changing = False
            if models or failed is not None:
                self.models_loaded()  # read from the copy now served, whatever was read meanwhile
            await self.read_identity()  # and a read a heal asked for while the copy changed
        if failed is not None:
            raise failed
        return answer

    async def _load_model(self, model: str) -> None:
        """Have Triton load ``model`` from the served copy (its AioRpcError when it does not)."""
        await self.triton.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(model_name=model),
                                              metadata=self._admin_metadata, timeout=self.triton_config.startup_timeout_s)

    async def _load_in_order(self, names: Collection[str], ensemble: Callable[[], Awaitable[Any]]) -> Any:
        """Load each step of ``names`` by itself, in the pipeline's order, then ``ensemble`` (the ensemble's load), all
        within reload_timeout_s (a restart may be waiting: a TimeoutError past it); ``ensemble``'s answer."""
        async with asyncio.timeout(self.config.reload_timeout_s):
            for step in (m for m in STEP_MODELS if m in names):
                await self._load_model(step)
            return await ensemble()

    def start_load_copied(self, load: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any]:
        """``load_copied`` in a task the guard keeps until it ends (its error, if no one awaited it, is logged)."""
        task = asyncio.get_running_loop().create_task(self.load_copied(load))
        self._identity_reads.add(task)
        task.add_done_callback(self._load_ended)
        return task

    def _load_ended(self, task: asyncio.Task[Any]) -> None:
        """Say how an admin load of the ensemble ended when it did not load (its caller may be gone: its audit line
        then says only that the call ended)."""
        self._identity_reads.discard(task)
        error = None if task.cancelled() else task.exception()
        if isinstance(error, LoadFailed):
            logger.warning("an admin load of the ensemble failed (%s); %s", first_line(str(error)), error.outcome)
        elif error is not None:
            logger.warning("an admin load of the ensemble was refused, nothing loaded: %s", error)

    async def _load_previous(self) -> bool:
        """A load of the updated copy failed: put back the copy served before and load its steps that the update had
        replaced, then the ensemble, so that each serves its earlier version again; whether that
        succeeded (if not, LOST_MODELS: the answers name no build until tritonserver is restarted)."""
        restored = await asyncio.to_thread(self._served_copy().restore)
        if restored:
            logger.info("loading the models served before the failed admin load again (%s)", ", ".join(restored))
            try:
                await self._load_in_order(restored, functools.partial(self._load_model, ENSEMBLE_NAME))
            except (grpc.aio.AioRpcError, TimeoutError) as e:
                why = first_line(describe(e)) if isinstance(e, grpc.aio.AioRpcError) else "not within reload_timeout_s"
                logger.error("%s (%s)", LOST_MODELS, why)
                self._identity_lost = True
                return False
        return True

    def read_identity_soon(self) -> None:
        """Read the identity in a task of its own: the admin call that asked for it may be cancelled (its deadline, its
        client) without cutting the read short."""
        task = asyncio.get_running_loop().create_task(self.read_identity())
        self._identity_reads.add(task)
        task.add_done_callback(self._identity_reads.discard)

    def _log_served(self, served: list[tuple[str, str]]) -> None:
        """Say which model versions are served: once when first ready, again only when a recovery changed them."""
        if served == self._served:
            return
        again = self._served is not None
        self._served = served
        logger.info("%s model versions: %s", "serving other" if again else "serving", versions_text(served))

    # ---- healing ----------------------------------------------------------------------------
    def _choose(self, fault: Fault) -> str:
        if (fault.server_down or self.config.recovery == "restart" or not fault.models
                or self.triton_config.model_control_mode != "explicit" or self.reloads >= self.config.max_reloads):
            return "restart"
        return "reload " + ", ".join(fault.models)

    async def _recover(self, fault: Fault) -> None:
        if not self._owns_server and getattr(self.server, "closing", False):  # its owner is stopping it: not healed
            self.readiness.set_not_ready(f"{fault.reason}; the tritonserver this guard was given is being stopped by "
                                         "its owner: not healed")
            await asyncio.sleep(self.config.scan_interval_s)
            return
        self._healing = fault
        try:
            await self._heal_fault(fault)
        finally:
            self._healing = None

    @property
    def healing_a_hang(self) -> bool:
        """Whether the guard is healing a pipeline that stopped answering (the calls it ends are not the cause)."""
        return self._healing is not None and self._healing.hang

    async def _heal_fault(self, fault: Fault) -> None:
        await self._after_brief_healing(fault)
        last = self.recoveries[-1] if self.recoveries else None
        # the cause a failed try found stays in the reason while the next one runs (it read "tritonserver exited")
        before = (f" (the last try failed: {last.error})" if last is not None and last.error is not None
                  and last.ready_at is None else "")
        record = Recovery(fault.reason, self._choose(fault), time.monotonic(), fault=fault_key(fault))
        self.recoveries.append(record)
        del self.recoveries[:-MAX_RECORDS]
        started = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S UTC")
        self.readiness.set_not_ready(f"{fault.reason}; recovering by {record.action} since {started}{before}")
        logger.warning("pipeline fault: %s; recovering by %s", fault.reason, record.action)
        # tritonserver's own log lives in its run folder, which a restart deletes: its last words go to the guard's log
        logger.warning("the last lines of tritonserver's log:\n%s", self.server.log_tail())
        problem = await self._heal(record.action, fault)
        if problem is not None and record.action != "restart":
            logger.warning("%s did not bring the pipeline back (%s); restarting tritonserver", record.action, problem)
            record.action += ", then restart"
            self.readiness.set_not_ready(f"{fault.reason}; recovering by {record.action} since {started} (the reload "
                                         f"failed: {problem})")
            problem = await self._heal("restart", fault)
        if problem is not None:
            record.error = problem
            backoff = recovery_backoff(self.recoveries, time.monotonic(), STABLE_READY_S)
            logger.error("recovery failed (%s); next try in %.0f s", problem, backoff)
            self.metrics.observe_recovery(record.action, healed=False)
            self.readiness.set_not_ready(f"recovery failed ({record.action}, since {started}): {problem}")
            await asyncio.sleep(backoff)
            return
        await self._mark_ready()
        record.ready_at = time.monotonic()
        self.metrics.observe_recovery(record.action, healed=True)
        logger.warning("recovered in %.2f s by %s", record.duration_s, record.action)

    async def _after_brief_healing(self, fault: Fault) -> None:
        """Back off before healing ``fault`` when the last recovery's readiness did not hold for STABLE_READY_S: a
        tritonserver short of file descriptors died half a second after each healed restart, and was restarted at
        once, for ever (failure audit 2)."""
        last = self.recoveries[-1] if self.recoveries else None
        now = time.monotonic()
        if (last is None or last.ready_at is None or held(last, now, STABLE_READY_S)
                or last.fault != fault_key(fault)):  # another step's fault is no flapping: healed at once
            return
        wait = recovery_backoff(self.recoveries, now, STABLE_READY_S, fault_key(fault))
        logger.warning("the pipeline broke %.1f s after the last recovery (%s) brought it back: waiting %.0f s before "
                       "healing it again", now - last.ready_at, last.action, wait)
        self.readiness.set_not_ready(f"{fault.reason}; it broke again {now - last.ready_at:.1f} s after the last "
                                     f"recovery: healing again in {wait:.0f} s")
        await asyncio.sleep(wait)

    async def _heal(self, action: str, fault: Fault) -> str | None:
        """Do ``action``; None when a canary then succeeds, else what went wrong."""
        try:
            if action == "restart":
                await self._restart()
            else:
                await self._reload(fault.models)
        except (grpc.aio.AioRpcError, DermAssistError) as e:
            return describe(e) if isinstance(e, grpc.aio.AioRpcError) else str(e)
        return await self.canary(after_heal=True)

    async def _reload(self, models: tuple[str, ...]) -> None:
        for stub in self.stubs:
            if stub.model in models:
                try:
                    os.kill(stub.pid, signal.SIGKILL)  # a hung or half-dead instance would block the reload
                except ProcessLookupError:
                    pass
        # the whole reload within reload_timeout_s, however many models the fault names (the liveness bound counts one
        # reload_timeout_s for it): a model that cannot load (a file gone) makes Triton wait for ever, and the fallback
        # restart is then due within seconds, not after tritonserver's whole start-up timeout. Each call's own gRPC
        # deadline is what is left of it (an unload answers at once: at most UNLOAD_TIMEOUT_S of it).
        metadata, budget_s = self._admin_metadata, self.config.reload_timeout_s
        end = time.monotonic() + budget_s

        def left(most_s: float = budget_s) -> float:
            return max(min(most_s, end - time.monotonic()), 0.001)

        try:
            async with asyncio.timeout(budget_s):
                for model in models:
                    await self.triton.RepositoryModelUnload(service_pb2.RepositoryModelUnloadRequest(model_name=model),
                                                            metadata=metadata, timeout=left(UNLOAD_TIMEOUT_S))
                for model in models:
                    await self.triton.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(model_name=model),
                                                          metadata=metadata, timeout=left())
                ensemble = await self.triton.ModelReady(service_pb2.ModelReadyRequest(name=ENSEMBLE_NAME),
                                                        timeout=left(RECOVERY_CALL_S))
                if not ensemble.ready:
                    await self.triton.RepositoryModelLoad(
                        service_pb2.RepositoryModelLoadRequest(model_name=ENSEMBLE_NAME), metadata=metadata,
                        timeout=left())
        except TimeoutError as e:
            raise ServerError(f"the reload of {', '.join(models)} did not end within reload_timeout_s "
                              f"({budget_s:g} s)") from e
        self.reloads += 1
        self.models_loaded()

    async def _restart(self) -> None:
        def restart() -> None:
            self.server.stop(timeout_s=RESTART_GRACE_S)
            if self._abandon.is_set():  # the guard began to stop meanwhile: start nothing it would have to stop
                raise ServerError("the restart of tritonserver was abandoned: the guard is stopping")
            if self.copy is not None:  # a copy that lost its models: a tritonserver serving nothing ("unknown model")
                self.copy.check(ServerError)
            self.server.start()

        # never while an admin load changes the copy (it would start on half of it, or check it between two renames);
        # the guard is not ready from the heal's start, and the load ends within its calls' deadlines
        async with self.model_loads:
            self._restarting = self._lifecycle.submit(restart)
            await asyncio.wrap_future(self._restarting)
        self._identity_lost = False  # every model loaded from the copy
        self.models_loaded()
        self.reloads = 0
        self._find_stubs(after_restart=True)
