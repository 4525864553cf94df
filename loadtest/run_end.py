"""How a Locust run ends (import from a locustfile only): every call counted, and a run cut short is a failure.

Two gaps of Locust 2.47 in a distributed run, closed by the listeners ``install`` registers:

- When the run time is up, the master sends the workers "quit" and stops listening half a second later, while
  each worker first lets its users finish the calls in flight (``--stop-timeout``) and only then sends its last
  report: the calls of the last seconds (up to a report interval, 3 s, and the calls in flight) never reached the
  master's figures. On the master, ``collect_last_reports`` receives those last reports before the final stats are
  written (``loadtest.final_stats``), up to ``--stop-timeout`` plus a margin.
- When the last worker quits (killed, crashed), Locust logs "The last worker quit, stopping test" and the master
  exits 0 after a fraction of its ``-t``. ``RunClock`` times the run from ``test_start`` to the first
  ``test_stopping``; a headless run that stopped well before its ``-t`` sets the exit code to CUT_SHORT_EXIT_CODE
  with a log line that says so (``cut_short`` decides).

The answers' counts (``loadtest.answers``) travel with the workers' reports and are written beside the final stats.

Locust (and gevent's monkey-patching) is imported inside the listeners, so the tests can import ``cut_short``.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .answers import AnswerTally

logger = logging.getLogger(__name__)

# A run that ends less than this before its -t was cut short (Locust's run-time timer starts a moment before
# test_start fires, so a full run measures a few milliseconds short of -t).
RUN_TIME_SLACK_S = 1.0
# What `python -m loadtest.run` calls "the run could not be made" (Locust itself uses 1 for failed requests).
CUT_SHORT_EXIT_CODE = 2
# How long the master waits for the workers' last reports beyond their --stop-timeout.
REPORT_MARGIN_S = 10.0


def cut_short(run_time_s: float | None, ran_s: float | None, slack_s: float = RUN_TIME_SLACK_S) -> str | None:
    """Why a run of ``-t run_time_s`` that ran ``ran_s`` seconds (test_start to stopping) was cut short, or None when
    it ran its time, had no run time, or never started."""
    if not run_time_s or ran_s is None or ran_s >= run_time_s - slack_s:
        return None
    return (f"the run was cut short: it stopped after {ran_s:.1f} s of its {run_time_s:g} s run time (-t), so its "
            "figures cover less than asked; see the log above for why (e.g. 'The last worker quit'), then run again")


class RunClock:
    """When the run started (``test_start``) and first began to stop (``test_stopping``), on a master or a single
    process (a worker knows no run time)."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.stopping: float | None = None

    def on_test_start(self, environment: Any, **_kwargs: Any) -> None:
        """``events.test_start`` listener."""
        from locust.runners import WorkerRunner

        if not isinstance(environment.runner, WorkerRunner) and self.started is None:
            self.started = time.monotonic()

    def on_test_stopping(self, environment: Any, **_kwargs: Any) -> None:
        """``events.test_stopping`` listener."""
        if self.started is not None and self.stopping is None:
            self.stopping = time.monotonic()

    def ran_s(self) -> float | None:
        """Seconds from the start to the first stop (to now when no stop came); None before any start."""
        if self.started is None:
            return None
        return (self.stopping if self.stopping is not None else time.monotonic()) - self.started

    def on_quitting(self, environment: Any, **_kwargs: Any) -> None:
        """``events.quitting`` listener: a headless run cut short exits with CUT_SHORT_EXIT_CODE."""
        from locust.runners import WorkerRunner

        options = environment.parsed_options
        if isinstance(environment.runner, WorkerRunner) or options is None or not getattr(options, "headless", False):
            return
        problem = cut_short(getattr(options, "run_time", None), self.ran_s())
        if problem is not None:
            logger.error("%s (exit code %d)", problem, CUT_SHORT_EXIT_CODE)
            environment.process_exit_code = CUT_SHORT_EXIT_CODE


def collect_last_reports(environment: Any, **_kwargs: Any) -> None:
    """``events.quitting`` listener on the master: receive the last report of every worker still connected (sent once
    its users finished their calls in flight), until each said "quit" or ``--stop-timeout`` + REPORT_MARGIN_S."""
    import gevent  # type: ignore[import-untyped]  # no stubs; Locust runs on it
    from locust.exception import RPCError, RPCReceiveError
    from locust.runners import MasterRunner

    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    waiting = {node.id for node in runner.clients.all}
    deadline = time.monotonic() + (environment.stop_timeout or 0.0) + REPORT_MARGIN_S
    while waiting and time.monotonic() < deadline:
        try:
            with gevent.Timeout(max(deadline - time.monotonic(), 0.0)):
                _, msg = runner.server.recv_from_client()
        except gevent.Timeout:
            break
        except (RPCError, RPCReceiveError) as e:
            logger.warning("stopped waiting for the workers' last reports: %s", e)
            break
        if msg.type == "stats":
            environment.events.worker_report.fire(client_id=msg.node_id, data=msg.data)
        elif msg.type == "quit":
            waiting.discard(msg.node_id)
    if waiting:
        logger.warning("%d worker(s) sent no last report within --stop-timeout + %g s (%s): the final stats miss "
                       "their last calls", len(waiting), REPORT_MARGIN_S, ", ".join(sorted(waiting)))


def install(events: Any, tally: AnswerTally | None = None) -> RunClock:
    """Register the end-of-run listeners on Locust's ``events``: the final stats CSV and the answers' counts
    (``tally``; none given: an empty one), the workers' last reports before them (``quitting`` fires its listeners
    last-registered first) and the cut-short check. The workers send ``tally``'s counts to the master with each
    report; every process resets them when Locust resets its statistics (a new test, ``--reset-stats``, the web UI)."""
    from .answers import AnswerTally
    from .final_stats import write_final_stats

    tally = AnswerTally() if tally is None else tally
    clock = RunClock()
    events.init.add_listener(tally.on_init)
    events.spawning_complete.add_listener(tally.on_spawning_complete)
    events.reset_stats.add_listener(tally.on_reset_stats)
    events.test_start.add_listener(tally.on_test_start)
    events.report_to_master.add_listener(tally.on_report_to_master)
    events.worker_report.add_listener(tally.on_worker_report)
    events.quitting.add_listener(tally.on_quitting)
    events.quitting.add_listener(write_final_stats)
    events.quitting.add_listener(collect_last_reports)
    events.quitting.add_listener(clock.on_quitting)
    events.test_start.add_listener(clock.on_test_start)
    events.test_stopping.add_listener(clock.on_test_stopping)
    return clock
