"""What a Locust run's answers said, per scenario: images answered, NOT ASSESSABLE, referred; and the calls retried.

Locust's statistics count requests and failures only: a run where every image came back NOT ASSESSABLE (a corpus
that is not skin, a segmenter that finds no lesion) passed with a fine images/s, and a call retried after
UNAVAILABLE counted once, as a success. Each Locust process counts its users' answers and retries in an
``AnswerTally``. A worker sends its counts with each stats report to the master (``report_to_master``) and starts
again from 0; the master adds them up (``worker_report``, the workers' last reports included: ``run_end``). When
Locust quits, the master (or the single process) writes them beside the final stats as ``PREFIX_answers.json``
(``--csv PREFIX``), logs them, and judges the not-assessable share (``report.not_assessable_problem``). Where
Locust resets its statistics (``--reset-stats`` once every user has spawned, or the web UI's reset), every process
starts its counts again too, so they cover the requests the statistics cover.

Locust is imported by no code here: the tests use it without a Locust process.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dermassist.base.atomic import write_atomic

from .protocol import Answer
from .report import AnswerCounts, answers_path, not_assessable_problem, retries_text

logger = logging.getLogger(__name__)

# The key of a worker's report that carries its counts.
REPORT_KEY = "dermassist_answers"
IMAGES, NOT_ASSESSABLE, REFER = "images", "not_assessable", "refer"
RETRY = "retry:"  # + the status code's name: one count per retry


class AnswerTally:
    """Counts per scenario name: ``images`` answered, ``not_assessable``, ``refer``, and ``retry:<CODE>`` per retry.

    ``max_not_assessable_share`` is the limit the master (or the single process) judges at quit; ``setting`` how an
    operator changes it, for the message.
    """

    def __init__(self, max_not_assessable_share: float = 1.0, setting: str = "") -> None:
        self.counts: dict[str, dict[str, int]] = {}
        self.max_not_assessable_share = max_not_assessable_share
        self.setting = setting
        self.reset_with_stats = False  # Locust's --reset-stats (events.init tells)

    def _add(self, scenario: str, key: str, n: int) -> None:
        row = self.counts.setdefault(scenario, {})
        row[key] = row.get(key, 0) + n

    def add_answer(self, scenario: str, answer: Answer) -> None:
        """Count the images of one answer of ``scenario``: answered, not assessable, referred."""
        self._add(scenario, IMAGES, len(answer.assessable))
        self._add(scenario, NOT_ASSESSABLE, sum(not a for a in answer.assessable))
        self._add(scenario, REFER, sum(answer.refer))

    def add_retry(self, scenario: str, code: str) -> None:
        """Count one call of ``scenario`` sent again after it failed with ``code`` (a status code's name)."""
        self._add(scenario, RETRY + code, 1)

    def merge(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        """Add another process's counts (``take``'s form)."""
        for scenario, row in counts.items():
            for key, n in row.items():
                self._add(scenario, key, int(n))

    def take(self) -> dict[str, dict[str, int]]:
        """The counts so far, and start again from none (a worker's report to the master)."""
        taken, self.counts = self.counts, {}
        return taken

    def summary(self) -> dict[str, AnswerCounts]:
        """The counts as ``report.read_answers`` reads them back, per scenario name."""
        return {scenario: AnswerCounts(
            images=row.get(IMAGES, 0), not_assessable=row.get(NOT_ASSESSABLE, 0), refer=row.get(REFER, 0),
            retries={k.removeprefix(RETRY): n for k, n in sorted(row.items()) if k.startswith(RETRY)})
            for scenario, row in sorted(self.counts.items())}

    def write(self, path: Path) -> None:
        """Write the counts as JSON to ``path`` (atomically)."""
        payload = {scenario: counts.to_json() for scenario, counts in self.summary().items()}
        write_atomic(path, lambda partial: partial.write_text(json.dumps(payload, indent=2) + "\n"))

    # Locust listeners (registered by run_end.install)

    def on_init(self, environment: Any, **_kwargs: Any) -> None:
        """``events.init``: whether Locust resets its statistics once every user has spawned (``--reset-stats``)."""
        self.reset_with_stats = bool(getattr(environment, "reset_stats", False))

    def on_spawning_complete(self, user_count: int = 0, **_kwargs: Any) -> None:
        """``events.spawning_complete``: with ``--reset-stats``, start again from none, as Locust's statistics do."""
        if self.reset_with_stats:
            self.counts = {}

    def on_test_start(self, **_kwargs: Any) -> None:
        """``events.test_start``: a new test of the same session (the web UI's Stop, then Start or New test) starts
        from none, as Locust's statistics do (``runner.start`` clears them)."""
        self.counts = {}

    def on_reset_stats(self, **_kwargs: Any) -> None:
        """``events.reset_stats`` (the web UI's reset): start again from none."""
        self.counts = {}

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        """``events.report_to_master`` (a worker): send the counts since the last report."""
        data[REPORT_KEY] = self.take()

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        """``events.worker_report`` (the master): add a worker's counts."""
        self.merge(data.get(REPORT_KEY) or {})

    def on_quitting(self, environment: Any, **_kwargs: Any) -> None:
        """``events.quitting`` (the master or the single process): write ``PREFIX_answers.json`` with ``--csv PREFIX``,
        log the shares and the retries, and fail a run with too many NOT ASSESSABLE answers (exit code
        ``--exit-code-on-error``, Locust's for failed requests; ``python -m loadtest.run`` passes 0 and judges
        itself)."""
        from locust.runners import WorkerRunner

        if isinstance(environment.runner, WorkerRunner):
            return
        summary = self.summary()
        prefix = getattr(environment.parsed_options, "csv_prefix", None)
        if prefix:
            self.write(answers_path(prefix))
        for scenario, counts in summary.items():
            logger.info("answers of %s: %s", scenario, counts.text())
        retried = {scenario: counts.retries for scenario, counts in summary.items() if counts.retries}
        if retried:
            logger.warning("calls sent again after the server could not answer them (each counted once, as its last "
                           "try, with its total time): %s", retries_text(retried))
        problem = not_assessable_problem(summary, self.max_not_assessable_share, self.setting)
        if problem is not None:
            logger.error("%s", problem)
            exit_code = getattr(environment.parsed_options, "exit_code_on_error", 1)
            if exit_code and environment.process_exit_code is None:
                environment.process_exit_code = exit_code
