"""Locust's final statistics as a CSV, written when the Locust process quits (import from a locustfile only).

Locust's ``--csv`` writer rewrites ``<prefix>_stats.csv`` once a second while the process lives and only closes
the file at shutdown, so the requests still in flight when the run time is up (about one per user) are missing
from it. The ``quitting`` event fires after the headless run's users have stopped (in-flight calls answered
within ``--stop-timeout``), when ``environment.stats`` holds what Locust prints and puts in its HTML report.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from locust.runners import WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

from dermassist.base.atomic import write_atomic

from .report import final_failures_path, final_stats_path

logger = logging.getLogger(__name__)


def write_stats_csv(environment: Any, path: Path, failures: bool = False) -> None:
    """Write ``environment.stats`` in Locust's own ``_stats.csv`` format to ``path`` (atomically); ``failures``: its
    ``_failures.csv`` format (each failure's request name, error and occurrences) instead."""
    def write(partial: Path) -> None:
        with partial.open("w", newline="") as f:
            writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
            (writer.failures_csv if failures else writer.requests_csv)(csv.writer(f))

    write_atomic(path, write)


def write_final_stats(environment: Any, **_kwargs: Any) -> None:
    """``events.quitting`` listener: with ``--csv PREFIX``, the final stats go to ``PREFIX_final_stats.csv`` and the
    failures to ``PREFIX_final_failures.csv`` (not on a worker, whose stats are its share only; the master writes the
    whole run's)."""
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix or isinstance(environment.runner, WorkerRunner):
        return
    path = final_stats_path(prefix)
    write_stats_csv(environment, path)
    write_stats_csv(environment, final_failures_path(prefix), failures=True)
    logger.info("final stats: %d requests, %d failures -> %s", environment.stats.total.num_requests,
                environment.stats.total.num_failures, path)
