"""``python -m loadtest.run``: start the embedded Triton, run Locust headless, judge the CSV.

Exit codes: 0 = requests were served and no unexpected failure, 1 = unexpected failures (or no
requests), 2 = the run could not be made (missing models, bad settings, Locust or server broke).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import ExitStack
from dataclasses import asdict

from dermassist.errors import DermAssistError

from .config import RunConfig, ScenarioConfig
from .errors import LoadtestError
from .report import LoadtestSummary
from .runner import run_locust

logger = logging.getLogger("loadtest.run")


def build_parser() -> argparse.ArgumentParser:
    """Flags (each overrides its LOADTEST_* variable)."""
    p = argparse.ArgumentParser(prog="python -m loadtest.run", description=__doc__.splitlines()[0])
    p.add_argument("-u", "--users", type=int, help="concurrent Locust users (LOADTEST_USERS, default 4)")
    p.add_argument("-r", "--spawn-rate", type=float, help="users started per second (LOADTEST_SPAWN_RATE, default 2)")
    p.add_argument("-t", "--run-time", dest="run_time_s", type=int, help="seconds of load (LOADTEST_RUN_TIME_S, default 60)")
    p.add_argument("--host", help="gRPC HOST:PORT of a running Triton; default: start the embedded server (LOADTEST_HOST)")
    p.add_argument("--repository", help="model repository for the embedded server (LOADTEST_REPOSITORY)")
    p.add_argument("--report-dir", help="where CSV/HTML reports go (LOADTEST_REPORT_DIR, default reports/loadtest)")
    p.add_argument("--bad-share", type=float, help="share of bad-input calls (LOADTEST_BAD_SHARE, default 0.01)")
    p.add_argument("--batch-size", type=int, help="images per batch call (LOADTEST_BATCH_SIZE, default 8)")
    p.add_argument("--deadline", dest="deadline_s", type=float, help="per-call gRPC deadline, s (LOADTEST_DEADLINE_S)")
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    return p


def _embedded_server(stack: ExitStack, run: RunConfig) -> str:
    from dermassist.repository import require_artifacts
    from dermassist.server import embedded_server

    require_artifacts(run.repository, LoadtestError, "pass --repository / --host")
    return stack.enter_context(embedded_server(run.repository)).config.grpc_address


def write_summary(summary: LoadtestSummary, run: RunConfig, scenario: ScenarioConfig) -> None:
    """Write summary.md and summary.json beside Locust's reports."""
    run.report_dir.mkdir(parents=True, exist_ok=True)
    header = f"Locust: {run.users} users, {run.run_time_s} s, mix {scenario.mix_text()}"
    (run.report_dir / "summary.md").write_text(f"{header}\n\n{summary.table()}\n")
    payload = {"run": {k: str(v) for k, v in asdict(run).items()}, "scenario": {k: str(v) for k, v in asdict(scenario).items()},
               "rows": {k: asdict(v) for k, v in summary.rows.items()}, "total": asdict(summary.total),
               "unexpected_failures": summary.unexpected_failures, "ok": summary.ok()}
    (run.report_dir / "summary.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run the load test; return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    flags = vars(args)
    try:
        run = RunConfig.resolve(flags)
        scenario = ScenarioConfig.resolve(flags)
        with ExitStack() as stack:
            host = run.host or _embedded_server(stack, run)
            summary, files = run_locust(run, scenario, host)
    except (LoadtestError, DermAssistError) as e:  # ours, or the server launcher's (start-up failure)
        logger.error("%s", e)
        return 2
    write_summary(summary, run, scenario)
    print(summary.table())
    print(f"reports: {files.stats_csv.parent} (HTML {files.html.name}, CSV {files.stats_csv.name})")
    if not summary.ok():
        logger.error("load test failed: %d requests, %d unexpected failures (see %s)",
                     summary.total.requests, summary.unexpected_failures, files.html)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
