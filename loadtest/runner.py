"""Run Locust headless as its own process and collect its CSV/HTML reports.

The summary is read from ``dermassist_final_stats.csv``, which the locustfile writes when Locust quits (see
``loadtest.final_stats``), not from Locust's periodic ``dermassist_stats.csv``, which misses the requests still
in flight when the run time is up; the answers' counts from ``dermassist_answers.json`` (``loadtest.answers``).
"""
from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from .config import RunConfig, ScenarioConfig
from .errors import LocustRunError
from .report import LoadtestSummary, answers_path, final_failures_path, final_stats_path, read_answers, read_stats

logger = logging.getLogger(__name__)

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
CSV_PREFIX = "dermassist"
# When the run time is up, the calls in flight get this long beyond their deadline to end (answered, or failed at
# it): a --stop-timeout shorter than the deadline had Locust stop users still waiting, and their calls, the run's
# slowest, were in no figure.
STOP_MARGIN_S = 5


@dataclass(frozen=True)
class LocustReports:
    """Files one headless run writes (``stats_csv``: the final stats, every request of the run; ``answers``: what
    the answers said, per scenario; ``failures``: the final failures, per error)."""

    stats_csv: Path
    html: Path
    log: Path
    answers: Path
    failures: Path


def locust_report_files() -> tuple[str, ...]:
    """The names of every report one run's Locust writes in the report folder (its own CSVs, the final ones, the
    answers, the HTML report, its log)."""
    csvs = ("_stats.csv", "_failures.csv", "_exceptions.csv", "_stats_history.csv")
    finals = (final_stats_path(CSV_PREFIX), answers_path(CSV_PREFIX), final_failures_path(CSV_PREFIX))
    return (*(CSV_PREFIX + suffix for suffix in csvs), *(str(path) for path in finals), "report.html", "locust.log")


def stop_timeout_s(scenario: ScenarioConfig) -> int:
    """Locust's ``--stop-timeout`` for ``scenario``: its per-call deadline and a margin, so no call is cut."""
    return math.ceil(scenario.deadline_s) + STOP_MARGIN_S


def locust_command(run: RunConfig, host: str, reports: Path, scenario: ScenarioConfig | None = None) -> list[str]:
    """The headless ``locust`` command line for a run against ``host`` (gRPC HOST:PORT)."""
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(run.users), "-r", str(run.spawn_rate), "-t", f"{run.run_time_s}s",
        "--host", host, "--stop-timeout", str(stop_timeout_s(scenario or ScenarioConfig())),
        "--csv", str(reports / CSV_PREFIX), "--html", str(reports / "report.html"),
        "--only-summary", "--loglevel", "INFO", "--exit-code-on-error", "0",
    ]


def run_locust(run: RunConfig, scenario: ScenarioConfig, host: str) -> tuple[LoadtestSummary, LocustReports]:
    """Run Locust against ``host`` and return its parsed summary; raise LocustRunError if it broke."""
    reports = Path(run.report_dir)
    reports.mkdir(parents=True, exist_ok=True)
    files = LocustReports(final_stats_path(reports / CSV_PREFIX), reports / "report.html", reports / "locust.log",
                          answers_path(reports / CSV_PREFIX), final_failures_path(reports / CSV_PREFIX))
    for stale in (files.stats_csv, files.answers, files.failures):  # a previous run's must not pass for this one's
        stale.unlink(missing_ok=True)
    env = {**os.environ, **scenario.to_env(), "PYTHONPATH": os.pathsep.join(
        p for p in (str(LOCUSTFILE.parents[1]), os.environ.get("PYTHONPATH", "")) if p)}
    cmd = locust_command(run, host, reports, scenario)
    logger.info("locust: %d users for %d s against %s (log %s)", run.users, run.run_time_s, host, files.log)
    timeout = run.run_time_s + stop_timeout_s(scenario) + 120
    with files.log.open("wb") as log:
        try:
            code = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                                  cwd=LOCUSTFILE.parents[1]).returncode
        except subprocess.TimeoutExpired as e:
            raise LocustRunError(f"locust did not finish within {timeout} s; see {files.log}") from e
    if code != 0:
        tail = "\n".join(files.log.read_text(errors="replace").splitlines()[-30:])
        raise LocustRunError(f"locust exited with code {code}; last lines of {files.log}:\n{tail}")
    return replace(read_stats(files.stats_csv), answers=read_answers(files.answers)), files
