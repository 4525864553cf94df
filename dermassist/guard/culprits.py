"""Requests that were being answered each time the pipeline failed: one that takes a step or tritonserver down (a
request too large for the memory, a picture that crashes a decoder) is refused after its second failure, instead of
being forwarded again by every retry of its client. One 32-picture request had taken tritonserver down four times in
a minute, through the SDK's own retries, failing every other call each time (failure audit 5)."""
from __future__ import annotations

import collections
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

#: Failures of the pipeline a request may be in flight at before it is refused.
FAILURES_TO_REFUSE = 2
#: How long such a request is refused.
REFUSED_FOR_S = 600.0
#: Calls that failed this long before another count as failed with it (one crash fails every call in flight).
TOGETHER_S = 2.0
#: A request's failures are forgotten this long after its last one: the same pictures sent again another day start
#: afresh.
FORGOTTEN_AFTER_S = 600.0
#: The most requests remembered (a failure count, a refusal).
REMEMBERED = 256
#: Words of the refusal a client may look for.
REFUSED_WORDS = "was being answered each time the pipeline failed"


def fingerprint(images: Any) -> str:
    """What identifies a request across its retries: its pictures' hashes as audited (``request_images``)."""
    return hashlib.sha256(json.dumps(images, sort_keys=True, default=str).encode()).hexdigest()


class Culprits:
    """Counts, per request, the pipeline failures it was being answered at, and refuses one that reached
    FAILURES_TO_REFUSE. Only the largest request failing at a moment is counted (a bystander of the same failure is
    not blamed), by its size in bytes, at most once between two healings of the pipeline however many copies of it
    were in flight and however long their failures took to come in; a call forwarded before the last healing is not
    counted (the healing ended it); a request answered well, or that did not fail for FORGOTTEN_AFTER_S, is cleared
    (a picture a load test sends over and over was in flight at every fault a test injected); a request whose
    pictures could not be hashed (``key`` None) is never counted nor refused. ``clock``: time.monotonic unless a
    test steps it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._counted_at: dict[str, float] = {}  # when each request's last failure was counted
        self._refused: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._recent: collections.deque[tuple[float, int]] = collections.deque(maxlen=REMEMBERED)

    @property
    def suspects(self) -> bool:
        """Whether some request has failures counted (only then is an answered request's fingerprint needed)."""
        return bool(self._failures)

    def answered(self, key: str | None) -> None:
        """The request ``key`` was answered well: it takes nothing down."""
        if key is None:
            return
        self._failures.pop(key, None)
        self._counted_at.pop(key, None)

    @property
    def refusing(self) -> bool:
        """Whether some request is refused now (only then is a request's fingerprint needed before it is sent)."""
        now = self._clock()
        for key in [k for k, until in self._refused.items() if until <= now]:
            del self._refused[key]
        return bool(self._refused)

    def failed(self, key: str | None, size: int, in_flight: list[int], sent_at: float, healed_at: float) -> int:
        """A request (``key``, ``size`` bytes) forwarded at ``sent_at`` failed with the pipeline while calls of
        ``in_flight`` bytes were forwarded too, the pipeline having last been healed (turned ready) at ``healed_at``;
        how many failures it has now been blamed for (0: not blamed for this one)."""
        now = self._clock()
        self._recent.append((now, size))
        if key is None or sent_at < healed_at:
            return 0
        together = [s for t, s in self._recent if now - t <= TOGETHER_S]
        if size < max([*in_flight, *together]):
            return 0
        last = self._counted_at.get(key)
        if last is not None and now - last > FORGOTTEN_AFTER_S:
            self.answered(key)
        elif last is not None and last >= healed_at:  # counted since the last healing: the same failure
            return self._failures.get(key, 0)
        self._counted_at[key] = now
        count = self._failures.pop(key, 0) + 1
        self._failures[key] = count
        while len(self._failures) > REMEMBERED:
            self._counted_at.pop(self._failures.popitem(last=False)[0], None)
        if count >= FAILURES_TO_REFUSE:
            self._refused[key] = now + REFUSED_FOR_S
            while len(self._refused) > REMEMBERED:
                self._refused.popitem(last=False)
        return count

    def refusal(self, key: str | None, images: int, size: int) -> str | None:
        """The refusal of a request refused now (None when it is not)."""
        if key is None:
            return None
        until = self._refused.get(key)
        if until is None or until <= self._clock():
            return None
        return refusal_text(images, size, self._failures.get(key, FAILURES_TO_REFUSE), until - self._clock())


def refusal_text(images: int, size: int, failures: int, left_s: float) -> str:
    """Why a request is not run (again): it names the request and the fix."""
    return (f"this request ({images} picture(s), {size / 1e6:.1f} MB) {REFUSED_WORDS} ({failures} times): it is "
            f"not run again for {left_s / 60:.0f} more minute(s), so as not to take the service down for every "
            "client; send fewer or smaller pictures per call, or check the pictures")
