"""The front's gate to Triton: calls go through together, except a request that was in flight when the pipeline
failed (a suspect, ``Culprits``), which is forwarded with no other call beside it, so that a second failure is its own
and an innocent request that happened to fail with it is answered and cleared. Without it the largest request failing
was blamed: a small picture that crashed a decoder beside a larger innocent request took the service down again and
again, and the innocent one was refused (review 13, finding 3a)."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

#: Why a call that waited at the gate past its hold is refused (UNAVAILABLE: clients retry).
ALONE_WAIT = ("DermAssist is answering, alone, a request that was in flight when the pipeline failed (to tell whether "
              "it takes the pipeline down) and this call could not be forwarded within its hold; retry")


class AloneGate:
    """Counts the calls forwarded together and the one forwarded alone. A call waiting to go alone goes before the calls
    that come after it (they wait behind it), so that a steady stream of calls cannot keep it waiting. Run on one
    event loop: the counts change between awaits only, and leaving the gate never awaits (it cannot be cancelled
    half-way)."""

    def __init__(self) -> None:
        self.together = 0  # calls forwarded together now
        self.alone = False  # whether a call is forwarded alone now
        self.waiting_alone = 0  # calls waiting to go alone
        self._changed: asyncio.Event | None = None

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _until(self, free: Callable[[], bool], timeout_s: float | None) -> None:
        """Return once ``free()`` holds, in the caller's own task (the caller takes its place before anything else
        runs); TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            while not free():
                if self._changed is None:
                    self._changed = asyncio.Event()
                await self._changed.wait()

    @contextlib.asynccontextmanager
    async def forwarding(self, alone: bool, timeout_s: float | None) -> AsyncIterator[None]:
        """Hold the gate while a call is forwarded: ``alone``, once no other call is forwarded; else together, once no
        call is forwarded or waiting to go alone. TimeoutError when that takes over ``timeout_s`` (None: no limit)."""
        if alone:
            self.waiting_alone += 1
            try:
                await self._until(lambda: not self.alone and not self.together, timeout_s)
            finally:
                self.waiting_alone -= 1
                self._wake()
            self.alone = True
        else:
            if self.alone or self.waiting_alone:
                await self._until(lambda: not self.alone and not self.waiting_alone, timeout_s)
            self.together += 1
        try:
            yield
        finally:
            if alone:
                self.alone = False
            else:
                self.together -= 1
            self._wake()
