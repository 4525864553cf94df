"""A SIGTERM handler for as long as a piece of work runs: a training run (segmenter or classifier) saving what it
reached, a build passing the signal on to its stage."""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def on_sigterm(handler: Callable[[int, object], None]) -> Callable[[], None]:
    """Make ``handler`` this process's SIGTERM handler until the returned function is called, which puts the earlier
    one back (a handler not set from Python reads as None: the default's then); nothing is changed off the main thread,
    where Python cannot set a handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    earlier = signal.signal(signal.SIGTERM, handler)

    def restore() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if earlier is None else earlier)

    return restore


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's stop, a container's shutdown) while a model trains: handled as a Ctrl-C, so the
    run saves and says what it reached before it stops."""

    exit_code = 143  # 128 + SIGTERM: what a shell reports for a process the signal stopped


def stop_on_sigterm() -> Callable[[], None]:
    """Make SIGTERM raise :class:`Terminated` (a KeyboardInterrupt) in this process until the returned function is
    called (:func:`on_sigterm`), but not while a KeyboardInterrupt is being handled: the run is then already stopping
    and saving, which a second exception raised in its handler would cut short (a build passes its Ctrl-C on as a
    SIGTERM, which can arrive just after the terminal's own Ctrl-C: review 16, finding 7)."""

    def terminate(signum: int, frame: object) -> None:
        if isinstance(sys.exc_info()[1], KeyboardInterrupt):
            return
        raise Terminated(f"stopped by signal {signal.Signals(signum).name}")

    return on_sigterm(terminate)


@contextmanager
def sigterm_ignored() -> Iterator[None]:
    """SIGTERM ignored while a stopped run saves what it reached: a scheduler, or a build passing its own on, may send
    a second, which would stop the save half-way; the earlier handler is put back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    earlier = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if earlier is None else earlier)
