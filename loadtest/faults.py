"""Fault injection for a load test on the embedded server: SIGKILL or SIGSTOP one stub mid-run."""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import LoadtestError

logger = logging.getLogger(__name__)

SIGNALS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}


@dataclass
class FaultInjector:
    """Signals the first stub of ``model`` ``at_s`` seconds after ``start()``; records what it did."""

    guard: Any  # dermassist.guard.background.BackgroundGuard
    kind: str
    model: str
    at_s: float
    done: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in SIGNALS:
            raise LoadtestError(f"fault must be one of {', '.join(SIGNALS)}, got {self.kind!r}")
        if not any(s.model == self.model for s in self.guard.guard.stubs):
            models = sorted({s.model for s in self.guard.guard.stubs})
            raise LoadtestError(f"no Python-backend stub serves {self.model!r}; choose one of {', '.join(models)}")
        self._timer = threading.Timer(self.at_s, self._inject)
        self._timer.daemon = True

    def start(self) -> FaultInjector:
        """Arm the timer (call when the load starts)."""
        self._timer.start()
        return self

    def cancel(self) -> None:
        """Disarm it if it has not fired."""
        self._timer.cancel()

    def _inject(self) -> None:
        stub = next(s for s in self.guard.guard.stubs if s.model == self.model)
        os.kill(stub.pid, SIGNALS[self.kind])
        self.done = {"kind": self.kind, "model": self.model, "instance": stub.instance, "pid": stub.pid,
                     "at_s": self.at_s, "monotonic": time.monotonic()}
        logger.warning("fault injected: %s of %s (pid %d)", self.kind, stub.instance, stub.pid)

    def report(self) -> dict[str, Any]:
        """What was injected and how the guard healed it (seconds from the fault)."""
        if not self.done:
            return {"kind": self.kind, "model": self.model, "injected": False}
        injected = self.done["monotonic"]
        recoveries = [r for r in self.guard.guard.recoveries if r.detected_at >= injected - 1.0]
        return {**{k: v for k, v in self.done.items() if k != "monotonic"}, "injected": True,
                "recoveries": [{**{k: v for k, v in asdict(r).items() if k not in ("detected_at", "ready_at")},
                                "detected_after_s": round(r.detected_at - injected, 3),
                                "ready_after_s": None if r.ready_at is None else round(r.ready_at - injected, 3)}
                               for r in recoveries]}
