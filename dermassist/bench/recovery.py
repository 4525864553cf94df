"""``python -m dermassist.bench.recovery [--repository DIR]``: how fast the guard heals each step.

Starts the served repository behind the guard, SIGKILLs and then SIGSTOPs one stub of every
Python-backend step with ``--recovery reload``, then SIGKILLs one with ``--recovery restart``, and
prints how long readiness took to turn false and to come back after each fault (markdown table).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from ..base.logs import configure_logging
from ..base.repository import SOURCE_REPOSITORY
from ..base.server import free_ports
from ..base.server_config import ServerConfig
from ..guard.background import BackgroundGuard
from ..guard.config import GuardConfig

logger = logging.getLogger(__name__)


def heal_once(guard: BackgroundGuard, model: str, sig: int, timeout_s: float = 300.0) -> tuple[str, float, float]:
    """Signal one stub of ``model``; (action, seconds until not ready, seconds until ready again)."""
    faults = len(guard.guard.recoveries)
    stub = next(s for s in guard.guard.stubs if s.model == model)
    started = time.monotonic()
    os.kill(stub.pid, sig)
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        recoveries = guard.guard.recoveries
        record = recoveries[-1] if len(recoveries) > faults else None
        if record is not None and record.ready_at is not None and guard.guard.readiness.ready:
            return record.action, record.detected_at - started, record.ready_at - started
        time.sleep(0.02)
    raise TimeoutError(f"{model} was not healed within {timeout_s:.0f} s")


def measure(repository: Path, audit_log: str) -> list[str]:
    """Markdown rows: fault, recovery, not ready after, ready after."""
    rows = ["| fault | recovery | not ready after s | ready again after s |", "|---|---|---|---|"]
    for mode in ("reload", "restart"):
        http, grpc, metrics = free_ports(3)
        public = ServerConfig(repository=repository, http_port=http, grpc_port=grpc, metrics_port=metrics)
        with BackgroundGuard(public, GuardConfig(audit_log=audit_log, recovery=mode, max_reloads=100)) as guard:
            models = sorted({s.model for s in guard.guard.stubs})
            faults = [(m, s) for m in models for s in (signal.SIGKILL, signal.SIGSTOP)] if mode == "reload" \
                else [(models[0], signal.SIGKILL)]
            for model, sig in faults:
                action, down, up = heal_once(guard, model, sig)
                rows.append(f"| {model} {signal.Signals(sig).name} | {action} | {down:.2f} | {up:.2f} |")
                logger.info("%s", rows[-1])
                time.sleep(2.0)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(prog="python -m dermassist.bench.recovery", description=__doc__.splitlines()[0])
    parser.add_argument("--repository", default=str(SOURCE_REPOSITORY), help="servable model repository")
    parser.add_argument("--audit-log", help="where the guard's audit lines go (default: a temporary file, deleted at "
                                            "the end; the guard refuses a device such as /dev/null)")
    args = parser.parse_args(argv)
    configure_logging()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="dermassist-recovery-") as folder:
        rows = measure(Path(args.repository), args.audit_log or str(Path(folder) / "audit.jsonl"))
    print(f"load average at start {load:.1f}\n" + "\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
