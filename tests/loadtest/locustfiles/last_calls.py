"""A locustfile for the tests (no server): users whose LAST call, made as they stop, fails.

Locust's periodic stats CSV is made stale on purpose (one write at the start, the next an hour later), as it is
for the calls that end after its last one-second rewrite; the final stats hook is registered as in
``loadtest/locustfile.py`` (``run_end.install``). Every request event is counted here too, and the counts go to the
JSON file named by ``LAST_CALLS_TRUTH`` when the process quits: what the summary must show.
"""
import json
import os

import locust.stats
from locust import User, constant, events, task

from loadtest import run_end

locust.stats.CSV_STATS_INTERVAL_SEC = 3600  # the periodic CSV keeps its first (empty) snapshot
run_end.install(events)  # as loadtest/locustfile.py does

SEEN = {"requests": 0, "failures": 0}


@events.request.add_listener
def _count(exception=None, **_kwargs) -> None:
    """Count every request Locust is told of."""
    SEEN["requests"] += 1
    SEEN["failures"] += exception is not None


@events.quit.add_listener
def _write_truth(**_kwargs) -> None:
    """The counts, once every request has been made."""
    with open(os.environ["LAST_CALLS_TRUTH"], "w") as f:
        json.dump(SEEN, f)


class LastCallsUser(User):
    """Quick successful calls while the run lasts; one failing call as it stops."""

    wait_time = constant(0.05)

    def _fire(self, name: str, exception: BaseException | None) -> None:
        self.environment.events.request.fire(request_type="grpc", name=name, response_time=1.0, response_length=0,
                                             exception=exception, context={})

    @task
    def call(self) -> None:
        """One successful call."""
        self._fire("single", None)

    def on_stop(self) -> None:
        """The last call of this user, in flight when the run time was up: it fails."""
        self._fire("last", RuntimeError("failed at the end of the run"))
