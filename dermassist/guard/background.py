"""Running a Guard: in the foreground until a signal (``serve``), or on its own event loop in a thread
(``BackgroundGuard``: the demo, the bench, the load test and the tests)."""
from __future__ import annotations

import asyncio
import signal
import threading
import time
from dataclasses import dataclass, field

from ..base.errors import ServerError
from ..base.server import TritonServer
from ..base.server_config import ServerConfig
from .config import GuardConfig
from .guard import Guard


async def serve_until_signal(guard: Guard) -> None:
    """Run the guard until SIGINT or SIGTERM; SIGHUP opens the audit log's path again (after a rotation)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, guard.audit.reopen)
    await guard.run(stop)


@dataclass
class BackgroundGuard:
    """A Guard on its own event loop in a thread: ``with BackgroundGuard(public, config) as g: ...``."""

    public: ServerConfig
    config: GuardConfig = field(default_factory=GuardConfig)
    server: TritonServer | None = None
    ready_timeout_s: float = ServerConfig.startup_timeout_s  # the wait for tritonserver's own start-up

    def __post_init__(self) -> None:
        self.guard = Guard(self.public, self.config, self.server)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="dermassist-guard", daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await self.guard.run(self._stop, on_started=self._started.set)

        try:
            asyncio.run(main())
        except BaseException as e:  # noqa: BLE001 - handed to the starting thread
            self._error = e
        finally:
            self._started.set()

    def __enter__(self) -> BackgroundGuard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> BackgroundGuard:
        """Start and wait until the guard is ready (a canary succeeded)."""
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error
        if not self.wait_ready(self.ready_timeout_s):
            self.stop()
            raise ServerError(f"the guard did not become ready within {self.ready_timeout_s:.0f} s: "
                              f"{self.guard.readiness.reason}")
        return self

    def wait_ready(self, timeout_s: float) -> bool:
        """Poll readiness for up to ``timeout_s``; whether it came."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.guard.readiness.ready:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop the front, the watchdog and tritonserver."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=120)

    @property
    def running(self) -> bool:
        """Whether the guard's thread still runs (it ends when stopped, or when the guard failed for good)."""
        return self._thread.is_alive()

    @property
    def grpc_address(self) -> str:
        """host:port of the public gRPC front."""
        return self.public.grpc_address

    @property
    def http_address(self) -> str:
        """host:port of the health endpoint."""
        return self.public.http_address
