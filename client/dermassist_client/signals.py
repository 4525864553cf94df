"""Block until SIGINT or SIGTERM: the foreground loop of ``demo`` and ``dicom-listen``."""
from __future__ import annotations

import signal
import threading
from typing import Callable


def wait_for_signal(alive: Callable[[], bool] | None = None, on_ready: Callable[[], None] | None = None) -> int:
    """Block the main thread until SIGINT or SIGTERM (its number is returned) or ``alive()`` is False (0).

    ``on_ready`` runs once the handlers are installed (e.g. to announce the page's URL).
    """
    received: list[int] = []
    done = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        done.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if on_ready is not None:
            on_ready()
        while not done.wait(0.5):
            if alive is not None and not alive():
                return 0
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return received[0]
