"""Block until SIGINT or SIGTERM: the foreground loop of ``demo`` and ``dicom-listen``."""
from __future__ import annotations

import signal
import time
from typing import Callable

POLL_S = 0.1  # how often the loop looks for a signal received and asks ``alive``


def wait_for_signal(alive: Callable[[], bool] | None = None, on_ready: Callable[[], None] | None = None) -> int:
    """Block the main thread until SIGINT or SIGTERM (its number is returned) or ``alive()`` is False (0).

    ``on_ready`` runs once the handlers are installed (e.g. to announce the page's URL). The handler only notes the
    signal: Python runs it in the main thread between any two bytecodes, also inside ``threading.Event.wait`` while
    that holds its lock, so a handler that set an Event (as this one did) could deadlock there; with other threads
    about (gRPC, the page's server, the guard), a signal is often delivered to one of them and handled just then.
    """
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)  # no lock taken: see above

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if on_ready is not None:
            on_ready()
        while not received:
            if alive is not None and not alive():
                return 0
            time.sleep(POLL_S)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return received[0]
