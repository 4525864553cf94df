"""A Guard before a stand-in tritonserver (nothing is started): its restarts can be made slow, its canary always
answers well, and the health endpoint is read over HTTP."""
from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from dermassist.base.errors import ServerStartupError
from dermassist.base.server import free_ports
from dermassist.base.server_config import ServerConfig
from dermassist.guard.background import BackgroundGuard
from dermassist.guard.config import GuardConfig
from tests.support.guard import public_config

RESTART_S = 60.0  # how long the stand-in tritonserver's start takes when nothing interrupts it


class StandInServer:
    """Enough of TritonServer for the guard: ``alive`` says whether it runs; a start takes ``restart_s`` unless a
    signal comes first, which makes it fail as a tritonserver stopped while it starts does."""

    def __init__(self, tmp_path: Path, restart_s: float = RESTART_S, **settings: Any) -> None:
        (grpc_port,) = free_ports(1)  # nothing listens there: the guard's calls to "Triton" fail at once
        self.config = ServerConfig(repository=tmp_path, admin_key="k", grpc_port=grpc_port, **settings)
        self.pid = os.getpid()
        self.alive = True
        self.restart_s = restart_s
        self.signals: list[int] = []
        self.starting = threading.Event()
        self.interrupted = threading.Event()
        self.started = 0

    @property
    def running(self) -> bool:
        return self.alive

    @property
    def returncode(self) -> int | None:
        return None if self.alive else -9

    def log_tail(self, lines: int = 40) -> str:
        return "(the stand-in's log)"

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self.interrupted.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        self.alive = False

    def start(self) -> StandInServer:
        self.starting.set()
        if self.interrupted.wait(self.restart_s):
            raise ServerStartupError("tritonserver exited with code -15 before becoming ready")
        self.alive, self.started = True, self.started + 1
        return self


def background_guard(tmp_path: Path, server: StandInServer, **settings: Any) -> BackgroundGuard:
    """A BackgroundGuard before ``server`` whose canary always answers well (nothing else is stood in)."""
    config = GuardConfig(audit_log=str(tmp_path / "audit.jsonl"), **settings)
    background = BackgroundGuard(public_config(tmp_path), config, server, ready_timeout_s=30)  # type: ignore[arg-type]

    async def canary() -> str | None:
        return None

    background.guard.canary = canary  # type: ignore[method-assign]
    return background


def http_get(address: str, path: str) -> tuple[int, dict]:
    """Status and JSON body of a GET on the health endpoint."""
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
