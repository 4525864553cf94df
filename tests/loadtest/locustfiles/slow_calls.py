"""A locustfile for the distributed tests (no server): every call takes ``SLOW_CALL_S`` seconds.

The end-of-run listeners are installed as in ``loadtest/locustfile.py`` (``run_end.install``). Each process counts
the requests it made and writes them, when it quits, to ``<SLOW_CALLS_TRUTH>.<pid>``: the workers' counts are what
the master's final stats must show. A user that starts touches ``<SLOW_CALLS_TRUTH>.started``. Each call counts
one answer of two images (one NOT ASSESSABLE, one referred) and one retry in the answers' tally, which the master
must add up as it adds up the requests.
"""
import json
import os

import gevent
from locust import User, constant, events, task

from loadtest import run_end
from loadtest.answers import AnswerTally
from loadtest.protocol import Answer

TALLY = AnswerTally()
run_end.install(events, TALLY)  # as loadtest/locustfile.py does

SEEN = {"requests": 0}


@events.request.add_listener
def _count(**_kwargs) -> None:
    """Count every request this process made."""
    SEEN["requests"] += 1


@events.quit.add_listener
def _write_truth(**_kwargs) -> None:
    """This process's count, once every request has been made."""
    with open(f"{os.environ['SLOW_CALLS_TRUTH']}.{os.getpid()}", "w") as f:
        json.dump(SEEN, f)


class SlowCallUser(User):
    """Calls that take SLOW_CALL_S each: at the end of the run every user has one in flight."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Say the run has begun."""
        open(f"{os.environ['SLOW_CALLS_TRUTH']}.started", "a").close()

    @task
    def call(self) -> None:
        """One call, reported when it ends."""
        seconds = float(os.environ.get("SLOW_CALL_S", "1"))
        gevent.sleep(seconds)
        TALLY.add_retry("slow", "UNAVAILABLE")
        TALLY.add_answer("slow", Answer(assessable=(False, True), refer=(True, False)))
        self.environment.events.request.fire(request_type="grpc", name="slow", response_time=seconds * 1000,
                                             response_length=0, exception=None, context={})
