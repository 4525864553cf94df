"""The guard's own Prometheus metrics, served as text on the health port at ``/metrics``.

Triton's counters see only what reaches Triton and restart at 0 with each reload; these count what clients see at
the front (every inference call by gRPC status, refusals included, and its latency), the admin calls, the recoveries
and their outcome, the canaries that found the pipeline busy, and, read when scraped, readiness, liveness, how long
the guard has been unready, the calls in flight and those waiting for readiness. Plain text exposition format 0.0.4,
written here (no client library is needed for a few counters).
"""
from __future__ import annotations

import collections
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# seconds: a single image answers in tens of ms on a GPU, a batch of 32 large ones takes minutes on a CPU
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
RECOVERY_ACTIONS = ("reload", "restart", "reload_then_restart")
RECOVERY_RESULTS = ("healed", "failed")


def recovery_kind(action: str) -> str:
    """The ``action`` label of a recovery: "reload lesion_crop, then restart" -> "reload_then_restart"."""
    if action.startswith("reload"):
        return "reload_then_restart" if action.endswith("then restart") else "reload"
    return "restart"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values)) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass(frozen=True)
class Sample:
    """One gauge read when scraped: its name, help text and value."""

    name: str
    help: str
    value: float


class GuardMetrics:
    """Counters and the latency histogram the front and the watchdog update; ``text`` renders them with the gauges
    read at scrape time. Updated from the event loop and read from it; a lock keeps a render whole anyway."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: collections.Counter[str] = collections.Counter({"OK": 0})
        self.admin_calls: collections.Counter[str] = collections.Counter()
        self.recoveries: collections.Counter[tuple[str, str]] = collections.Counter(
            {(a, r): 0 for a in RECOVERY_ACTIONS for r in RECOVERY_RESULTS})
        self.canary_busy = 0
        self.audit_failures = 0  # calls refused because their audit line could not be written
        self.held = 0  # inference calls that arrived while the guard was not ready and waited for it
        self.waiting = 0  # inference calls waiting for readiness now
        self.over_budget = 0  # inference calls refused because the front held too many request bytes already
        self.accepts_refused = 0  # connections the health port could not accept: out of file descriptors
        self._buckets = [0] * len(LATENCY_BUCKETS_S)
        self._latency_sum = 0.0
        self._latency_count = 0

    def observe_request(self, status: str, seconds: float) -> None:
        """One inference call answered by the front with gRPC ``status`` after ``seconds``."""
        with self._lock:
            self.requests[status] += 1
            self._latency_sum += seconds
            self._latency_count += 1
            for i, bound in enumerate(LATENCY_BUCKETS_S):
                if seconds <= bound:
                    self._buckets[i] += 1

    def observe_admin(self, status: str) -> None:
        """One admin (restricted) call answered with gRPC ``status``."""
        with self._lock:
            self.admin_calls[status] += 1

    def observe_audit_failure(self) -> None:
        """One call refused because its audit line could not be written."""
        with self._lock:
            self.audit_failures += 1

    def observe_accept_refused(self) -> None:
        """One connection a listening socket of the guard's event loop could not accept (out of file descriptors)."""
        with self._lock:
            self.accepts_refused += 1

    def observe_recovery(self, action: str, healed: bool) -> None:
        """One recovery by ``action`` (as the guard logs it) that healed the pipeline or failed."""
        with self._lock:
            self.recoveries[(recovery_kind(action), RECOVERY_RESULTS[0] if healed else RECOVERY_RESULTS[1])] += 1

    def text(self, gauges: Iterable[Sample] = ()) -> str:
        """The Prometheus text exposition of the counters, the histogram and ``gauges``."""
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
            lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

        with self._lock:
            family("dermassist_requests_total", "counter",
                   "Inference calls answered by the guard's front, by gRPC status (refusals at the front included).",
                   ((_labels(("status",), (s,)), n) for s, n in sorted(self.requests.items())))
            lines.extend(["# HELP dermassist_request_seconds Latency of inference calls at the front, any status.",
                          "# TYPE dermassist_request_seconds histogram"])
            for bound, count in zip(LATENCY_BUCKETS_S, self._buckets):
                lines.append(f'dermassist_request_seconds_bucket{{le="{_number(bound)}"}} {count}')
            lines.append(f'dermassist_request_seconds_bucket{{le="+Inf"}} {self._latency_count}')
            lines.append(f"dermassist_request_seconds_sum {_number(self._latency_sum)}")
            lines.append(f"dermassist_request_seconds_count {self._latency_count}")
            family("dermassist_admin_calls_total", "counter", "Admin (restricted API) calls, by gRPC status.",
                   ((_labels(("status",), (s,)), n) for s, n in sorted(self.admin_calls.items())))
            family("dermassist_recoveries_total", "counter",
                   "Recoveries of a broken pipeline, by action and whether they healed it.",
                   ((_labels(("action", "result"), key), n) for key, n in sorted(self.recoveries.items())))
            family("dermassist_canary_busy_total", "counter",
                   "Canaries that timed out behind client calls: busy, not broken (nothing was healed).",
                   (("", self.canary_busy),))
            family("dermassist_audit_write_failures_total", "counter",
                   "Calls refused (UNAVAILABLE) because their audit line could not be written (a full disk?).",
                   (("", self.audit_failures),))
            family("dermassist_held_total", "counter",
                   "Inference calls that arrived while the guard was not ready and were held for readiness.",
                   (("", self.held),))
            family("dermassist_waiting_for_readiness", "gauge", "Inference calls waiting for readiness now.",
                   (("", self.waiting),))
            family("dermassist_over_inflight_budget_total", "counter",
                   "Inference calls refused (UNAVAILABLE) because the requests in flight held --max-inflight-mib.",
                   (("", self.over_budget),))
            family("dermassist_accepts_refused_total", "counter",
                   "Connections to the health port refused an accept because the guard was out of file descriptors "
                   "(each tried again a second later).", (("", self.accepts_refused),))
        for gauge in gauges:
            family(gauge.name, "gauge", gauge.help, (("", gauge.value),))
        return "\n".join(lines) + "\n"
