"""``python -m loadtest.run``: start the embedded server behind the guard, run Locust headless, judge the CSV.

The embedded server is what ``dermassist serve`` runs (gRPC front with its audit trail, truthful
readiness, self-healing); ``--fault kill|stop`` signals one Python-backend stub mid-run to show that
the run still ends with no unexpected failure. Triton's statistics of the ensemble (behind the admin
key), read before and after the run, go into summary.json as the counts during it (the guard's canary
calls, one every few seconds, included; a restart or reload by the guard resets them, see ``counts_during``).

Before the run, the target must answer ``ServerReady`` and ``ModelReady`` (``loadtest.preflight``): an unreachable
server (a wrong port, an unresolvable host, TLS at one end only) is exit 2 with the reason, not a run of failures.

Every answer is read: its ASSESSABLE and REFER flags are counted per scenario, and the summary gives the shares
of answered images NOT ASSESSABLE and REFER and the calls retried (``loadtest.answers``).

Exit codes: 0 = requests were served and no unexpected failure, 1 = unexpected failures during the run (or no
requests), or more answered images NOT ASSESSABLE than ``--max-not-assessable-share``, 2 = the run could not be
made (missing models, bad or unknown settings, an unreachable or unready target, Locust or the server broke, the
run was cut short), 130 = interrupted (Ctrl-C: no summary is written).
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dermassist.base.corpus import CorpusSpec, build_corpus, describe_corpus
from dermassist.base.errors import INTERRUPTED_EXIT_CODE, DermAssistError, ImageCorpusError
from dermassist.base.logs import configure_logging
from dermassist.base.paths import writable_folder_problem
from dermassist.base.settings import setting_help, setting_names

from .config import RunConfig, ScenarioConfig, check_together, check_variables
from .errors import LoadtestConfigError, LoadtestError
from .faults import SIGNALS
from .preflight import check_target
from .report import LoadtestSummary, read_failures, retries_text
from .runner import locust_report_files, run_locust

if TYPE_CHECKING:
    from dermassist.guard.background import BackgroundGuard

logger = logging.getLogger("loadtest.run")

# Guard recoveries that reset Triton's statistics of the ensemble: a restart of tritonserver, and a reload (the
# guard unloads and loads the faulty steps, and the ensemble is reloaded with them: its counts start again at 0).
COUNTER_RESETS = ("restart", "reload")
# What summary.json's server ``fail`` is: Triton's count, not a number of requests (measured with Triton 2.51).
FAIL_COUNT_NOTE = ("Triton's failure count of the ensemble, not a number of requests: Triton counts a request "
                   "a step rejects with INVALID_ARGUMENT (a bad input) twice")


def build_parser() -> argparse.ArgumentParser:
    """Flags (each overrides its LOADTEST_* variable)."""
    p = argparse.ArgumentParser(prog="python -m loadtest.run", description=__doc__.splitlines()[0])
    run, scenario = RunConfig, ScenarioConfig
    p.add_argument("-u", "--users", type=int, help=setting_help(run, "users", "concurrent Locust users"))
    p.add_argument("-r", "--spawn-rate", type=float, help=setting_help(run, "spawn_rate", "users started per second"))
    p.add_argument("-t", "--run-time", dest="run_time_s", type=int, help=setting_help(run, "run_time_s", "seconds of load"))
    p.add_argument("--host", help=setting_help(run, "host", "gRPC HOST:PORT of a running Triton (none: start the embedded one)"))
    p.add_argument("--repository", help=setting_help(run, "repository", "model repository for the embedded server"))
    p.add_argument("--report-dir", help=setting_help(run, "report_dir", "where CSV/HTML reports go"))
    p.add_argument("--bad-share", type=float, help=setting_help(scenario, "bad_share", "share of bad-input calls"))
    p.add_argument("--batch-size", type=int, help=setting_help(scenario, "batch_size", "images per batch call"))
    p.add_argument("--deadline", dest="deadline_s", type=float,
                   help=setting_help(scenario, "deadline_s", "per-call gRPC deadline, s"))
    p.add_argument("--fault", choices=tuple(SIGNALS), help=setting_help(run, "fault", "SIGKILL or SIGSTOP one stub mid-run"))
    p.add_argument("--fault-model", help=setting_help(run, "fault_model", "whose stub"))
    p.add_argument("--fault-at", dest="fault_at_s", type=float, help=setting_help(run, "fault_at_s", "seconds into the run"))
    p.add_argument("--admin-key-file",
                   help=setting_help(run, "admin_key_file", "admin key of a --host server, to read its statistics"))
    p.add_argument("--root-certificates",
                   help=setting_help(scenario, "root_certificates", "CA of the server's certificate (PEM): TLS"))
    p.add_argument("--private-key", help=setting_help(scenario, "private_key", "client key (PEM), for mutual TLS"))
    p.add_argument("--certificate-chain",
                   help=setting_help(scenario, "certificate_chain", "client certificate (PEM), for mutual TLS"))
    p.add_argument("--max-not-assessable-share", type=float,
                   help=setting_help(scenario, "max_not_assessable_share",
                                     "fail when a larger share of the answered images is NOT ASSESSABLE"))
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    return p


def _embedded_guard(stack: ExitStack, run: RunConfig) -> BackgroundGuard:
    """The embedded server behind the guard, as ``dermassist serve`` runs it (audit trail in the report folder)."""
    from dermassist.base.repository import require_artifacts
    from dermassist.base.server import free_ports
    from dermassist.base.server_config import ServerConfig
    from dermassist.guard.background import BackgroundGuard
    from dermassist.guard.config import GuardConfig

    require_artifacts(run.repository, LoadtestError, "pass --repository / --host")
    http, grpc, metrics = free_ports(3)
    public = ServerConfig(repository=run.repository, http_port=http, grpc_port=grpc, metrics_port=metrics)
    run.report_dir.mkdir(parents=True, exist_ok=True)
    (run.report_dir / "audit.jsonl").unlink(missing_ok=True)  # this run's trail, as every report of the folder
    guard = BackgroundGuard(public, GuardConfig(audit_log=str(run.report_dir / "audit.jsonl")))
    return stack.enter_context(guard)


def server_statistics(host: str, admin_headers: dict[str, str], root_certificates: str = "", private_key: str = "",
                      certificate_chain: str = "") -> dict[str, Any]:
    """Success and failure counts of the ensemble from Triton's statistics (restricted: needs the key; TLS with
    ``root_certificates``, presenting the client certificate ``certificate_chain`` when given); when they cannot be
    read, ``error`` and the gRPC status ``code``."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from dermassist_client.classes import MODEL_NAME

    tls: dict[str, Any] = {"ssl": True, "root_certificates": root_certificates} if root_certificates else {}
    if root_certificates and certificate_chain:
        tls.update(private_key=private_key, certificate_chain=certificate_chain)
    client = grpcclient.InferenceServerClient(host, **tls)
    try:
        stats = client.get_inference_statistics(MODEL_NAME, headers=admin_headers, as_json=True)["model_stats"]
    except InferenceServerException as e:  # the caller tells it: the run stops, or goes on without the counts
        return {"model": MODEL_NAME, "error": str(e), "code": e.status() or ""}
    finally:
        client.close()
    inference = stats[0].get("inference_stats", {}) if stats else {}
    return {"model": MODEL_NAME, "success": int(inference.get("success", {}).get("count", 0)),
            "fail": int(inference.get("fail", {}).get("count", 0))}


# The statuses of a refused admin key (the guard's front: PERMISSION_DENIED; an authenticating proxy: UNAUTHENTICATED).
KEY_REFUSED = ("StatusCode.PERMISSION_DENIED", "StatusCode.UNAUTHENTICATED")


def statistics_refusal(reading: dict[str, Any], key_file: str, host: str) -> str:
    """Why a run asked for the statistics (``--admin-key-file``) stops: a refused key names the key file; any other
    status (a server without the statistics API, one healing, a timeout) is named as it came."""
    headline = (f"the server's statistics, asked for with --admin-key-file {key_file}, cannot be read "
                f"({reading['error']})")
    if reading.get("code") in KEY_REFUSED:
        return (f"{headline}: the server at {host} refused the key; expected its admin key: pass its key file, or "
                "leave --admin-key-file out to run without them")
    return (f"{headline}: not a refused key; check the server at {host} serves Triton's statistics extension and is "
            "ready, then run again, or leave --admin-key-file out to run without them")


def counter_resets(actions: Iterable[str]) -> list[str]:
    """The guard's recovery actions (``Recovery.action``) that reset Triton's counts of the ensemble."""
    return [a for a in actions if any(word in a for word in COUNTER_RESETS)]


def counts_during(before: dict[str, Any], after: dict[str, Any], resets: Sequence[str] = ()) -> dict[str, Any]:
    """The ensemble's success and failure counts during the run (``after - before``), with Triton's totals.

    Triton counts from the ensemble's last load (the server's start, or a restart or reload by the guard), so after
    such a reset during the run only the counts since it can be told. The embedded guard says which recoveries
    reset them (``resets``, see ``counter_resets``); of a ``--host`` server a reset can be seen only when a count
    went down. Either reading may hold an ``error``. ``fail`` is Triton's count: see FAIL_COUNT_NOTE.
    """
    if "error" in after:
        return after
    totals = {k: after[k] for k in ("success", "fail")}
    out: dict[str, Any] = {"model": after["model"], **totals, "since_model_load": totals, "fail_note": FAIL_COUNT_NOTE}
    if "error" in before:
        out["note"] = ("counted since the ensemble was last loaded: the counts before the run could not be read "
                       f"({before['error']})")
    elif resets:
        out["note"] = (f"Triton's counts were reset during the run (by the guard's {'; '.join(resets)}): "
                       "counted since the last reset")
    elif any(after[k] < before[k] for k in totals):
        out["note"] = "Triton's counts went down during the run (a restart or reload): counted since that reset"
    else:
        out.update({k: after[k] - before[k] for k in totals})
    return out


def _admin_headers(run: RunConfig, guard: BackgroundGuard | None) -> dict[str, str] | None:
    from dermassist.base.server_config import GRPC_ADMIN_HEADER, read_secret_file

    if guard is not None:  # the key the public port takes (the front swaps it for tritonserver's own)
        return {GRPC_ADMIN_HEADER: guard.guard.admin_key}
    if run.admin_key_file:
        return {GRPC_ADMIN_HEADER: read_secret_file(Path(run.admin_key_file), "admin key")}
    return None


SUMMARY_FILES = ("summary.md", "summary.json")


def embedded_target(host: str, repository: Path) -> str:
    """The embedded server and the release it serves, for the summary (the repository code is imported here only:
    a --host run needs neither it nor the image stack under it)."""
    from dermassist.base.repository import served_models

    return f"the embedded server on {host} serving {served_models(repository)}"


def write_summary(summary: LoadtestSummary, run: RunConfig, scenario: ScenarioConfig,
                  extra: dict[str, Any] | None = None, started_utc: str = "", target: str = "") -> None:
    """Write summary.md and summary.json beside Locust's reports (``extra``: fault and server figures; ``ok`` false
    too when too many answers were NOT ASSESSABLE, ``not_assessable_problem`` says why); ``started_utc`` and
    ``target`` (the server and what it serves) tell runs apart."""
    run.report_dir.mkdir(parents=True, exist_ok=True)
    problem = answers_problem(summary, scenario)
    header = (f"Run started {started_utc or 'at an unrecorded time'} against {target or 'an unrecorded target'}.\n"
              f"Locust: {run.users} users, {run.run_time_s} s, mix {scenario.mix_text()}; corpus: {corpus_line(scenario)}")
    (run.report_dir / "summary.md").write_text(f"{header}\n\n{summary.table()}\n")
    payload = {"started_utc": started_utc, "target": target, "run": {k: str(v) for k, v in asdict(run).items()},
               "scenario": {k: str(v) for k, v in asdict(scenario).items()},
               "rows": {k: asdict(v) for k, v in summary.rows.items()}, "total": asdict(summary.total),
               "images_per_s": summary.images_per_s(), "unexpected_failures": summary.unexpected_failures,
               "answers": {k: v.to_json() for k, v in summary.answers.items()},
               "total_answers": summary.total_answers().to_json(),
               "not_assessable_problem": problem, "ok": summary.ok() and problem is None, **(extra or {})}
    (run.report_dir / "summary.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")


def corpus_line(scenario: ScenarioConfig) -> str:
    """What the users sent, for the summary: the corpus the Locust processes built from these settings."""
    try:
        files = build_corpus(CorpusSpec(scenario.image_source, scenario.image_cache, scenario.per_size,
                                        scenario.corpus_sizes()))
        file_bytes = [f.stat().st_size for f in files]  # the sizes only: the files' bytes are the Locust users' to read
    except (ImageCorpusError, OSError) as e:
        return f"not read ({e})"
    return describe_corpus(file_bytes, scenario.corpus_sizes())


def answers_problem(summary: LoadtestSummary, scenario: ScenarioConfig) -> str | None:
    """Why the run fails on its answers (too many NOT ASSESSABLE), or None."""
    return summary.not_assessable_problem(scenario.max_not_assessable_share,
                                          setting_names(ScenarioConfig, "max_not_assessable_share"))


def main(argv: list[str] | None = None) -> int:
    """Run the load test; return the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    flags = vars(args)
    run: RunConfig | None = None
    try:
        check_variables(os.environ)
        run = RunConfig.resolve(flags)
        scenario = ScenarioConfig.resolve(flags)
        check_together(run, scenario)
        problem = writable_folder_problem(run.report_dir)  # before the server starts, not after the run
        if problem is not None:
            raise LoadtestConfigError(f"{setting_names(RunConfig, 'report_dir')} {run.report_dir} {problem}; expected a "
                                      "folder the reports can be written in: pass another path")
        extra: dict[str, Any] = {}
        with ExitStack() as stack:
            guard = None if run.host else _embedded_guard(stack, run)
            host = run.host if guard is None else guard.grpc_address
            tls = (scenario.root_certificates, scenario.private_key, scenario.certificate_chain)
            check_target(host, *tls)  # unreachable or not ready: exit 2, not a run of failures
            injector = None
            if run.fault:
                from .faults import FaultInjector

                injector = FaultInjector(guard, run.fault, run.fault_model, run.fault_at_s).start()
                stack.callback(injector.cancel)
            headers = _admin_headers(run, guard)
            before = server_statistics(host, headers, *tls) if headers is not None else None
            if before is not None and "error" in before:
                if guard is None:  # asked for with --admin-key-file
                    raise LoadtestError(statistics_refusal(before, run.admin_key_file, host))
                logger.warning("could not read the embedded server's statistics before the run: %s", before["error"])
            heals_before = len(guard.guard.recoveries) if guard is not None else 0
            for stale in (*SUMMARY_FILES, *locust_report_files()):  # an earlier run's must not read as this one's
                (run.report_dir / stale).unlink(missing_ok=True)
            started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            target = host if guard is None else embedded_target(host, run.repository)
            summary, files = run_locust(run, scenario, host)
            saturation = summary.saturation_problem(read_failures(files.failures), run.users, scenario.deadline_s)
            if saturation is not None:
                extra["saturation_problem"] = saturation
            if injector is not None:
                extra["fault"] = injector.report()
            if headers is not None and before is not None:
                resets = counter_resets(r.action for r in guard.guard.recoveries[heals_before:]) if guard else []
                after = server_statistics(host, headers, *tls)
                if "error" in after:
                    logger.warning("could not read the server's statistics after the run: %s", after["error"])
                extra["server"] = counts_during(before, after, resets)
    except DermAssistError as e:  # ours (LoadtestError), or the server launcher's (start-up failure)
        logger.error("%s", e)
        return 2
    except KeyboardInterrupt:
        logger.error("interrupted: no summary was written%s", "" if run is None else
                     f"; Locust's partial reports, if any, are in {run.report_dir}")
        return INTERRUPTED_EXIT_CODE
    write_summary(summary, run, scenario, extra, started, target)
    print(summary.table())
    print(f"reports: {files.stats_csv.parent} (HTML {files.html.name}, CSV {files.stats_csv.name})")
    retried = {name: counts.retries for name, counts in summary.answers.items() if counts.retries}
    if retried:
        logger.warning("%d call(s) were sent again after the server could not answer them (counted once each, as "
                       "their last try, with their total time): %s", summary.total_answers().retried,
                       retries_text(retried))
    if not summary.ok():
        logger.error("load test failed: %d requests, %d unexpected failures (see %s)%s",
                     summary.total.requests, summary.unexpected_failures, files.html,
                     "" if saturation is None else f"; {saturation}")
        return 1
    problem = answers_problem(summary, scenario)
    if problem is not None:
        logger.error("load test failed: %s", problem)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
