"""How a distributed Locust run ends: the documented commands are bounded, every call counts, a cut run fails."""
from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtest.config import ScenarioConfig
from loadtest.report import (
    AnswerCounts,
    answers_path,
    final_failures_path,
    final_stats_path,
    read_answers,
    read_failures,
    read_stats,
)
from loadtest.run_end import CUT_SHORT_EXIT_CODE, cut_short
from loadtest.runner import stop_timeout_s

ROOT = Path(__file__).resolve().parents[2]
SLOW_CALLS = Path(__file__).parent / "locustfiles" / "slow_calls.py"


def documented_master_command() -> list[str]:
    """README's distributed master command, continuation lines joined."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Load-testing a GPU host", 1)[1].split("\n## ", 1)[0]
    text = section.replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.startswith("locust ") and "--master " in ln]
    return shlex.split(line)


def flag(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def test_the_documented_master_gives_up_on_missing_workers_and_lets_calls_finish() -> None:
    """Without --expect-workers-max-wait a master whose worker failed to start waited forever; without
    --stop-timeout the workers cancelled the calls in flight (the server audited them CANCELLED)."""
    master = documented_master_command()
    assert "--headless" in master
    wait = flag(master, "--expect-workers-max-wait")
    assert wait is not None and 0 < int(wait) <= 300
    assert flag(master, "--stop-timeout") == str(stop_timeout_s(ScenarioConfig()))  # what `make loadtest` passes
    assert int(flag(master, "--stop-timeout")) > ScenarioConfig().deadline_s  # no call in flight is cut at the end


@pytest.mark.parametrize(("run_time", "ran", "short"), [
    (600, 600.0, False), (600, 599.2, False), (600, 9.1, True), (10, 8.5, True), (10, 9.995, False),
    (None, 3.0, False), (0, 3.0, False), (600, None, False),
])
def test_cut_short_compares_the_time_run_with_the_run_time(run_time, ran, short) -> None:
    problem = cut_short(run_time, ran)
    assert (problem is not None) == short
    if short:
        assert f"stopped after {ran:.1f} s of its {run_time} s run time (-t)" in problem


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _locust(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "locust", "-f", str(SLOW_CALLS), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _distributed(tmp_path: Path, run_time_s: int, call_s: float) -> tuple[subprocess.Popen, subprocess.Popen, dict]:
    port = str(_free_port())
    env = {**os.environ, "SLOW_CALLS_TRUTH": str(tmp_path / "truth"), "SLOW_CALL_S": str(call_s),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    master = _locust("--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--headless",
                     "-u", "2", "-r", "10", "-t", f"{run_time_s}s", "--host", "127.0.0.1:1", "--expect-workers", "1",
                     "--expect-workers-max-wait", "60", "--stop-timeout", str(stop_timeout_s(ScenarioConfig())),
                     "--csv", str(tmp_path / "dist"), "--only-summary", cwd=tmp_path, env=env)
    worker = _locust("--worker", "--master-host", "127.0.0.1", "--master-port", port, cwd=tmp_path, env=env)
    return master, worker, env


def _finish(process: subprocess.Popen, timeout: float = 90) -> tuple[int, str]:
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out


def test_the_masters_final_stats_hold_the_workers_last_calls(tmp_path: Path) -> None:
    """The master stopped listening half a second after it told the workers to quit, while they were still answering
    their calls in flight: their last report (and up to 3 s of calls) never reached the final stats."""
    master, worker, _ = _distributed(tmp_path, run_time_s=3, call_s=2.0)
    code, log = _finish(master)
    _finish(worker)
    counts = [json.loads(p.read_text())["requests"] for p in tmp_path.glob("truth.[0-9]*")]
    truth = {"requests": max(counts)}  # the worker's; the master made none
    summary = read_stats(final_stats_path(str(tmp_path / "dist")))
    assert code == 0, log  # a run that lasted its -t is not cut short
    assert truth["requests"] >= 4  # 2 users: a call ended at 2 s, and the one in flight at 3 s ended at 4 s
    assert summary.total.requests == truth["requests"], log
    # the answers' counts travel with the workers' reports, the last one included: 2 images and 1 retry a call
    n = truth["requests"]
    assert read_answers(answers_path(str(tmp_path / "dist"))) == {
        "slow": AnswerCounts(images=2 * n, not_assessable=n, refer=n, retries={"UNAVAILABLE": n})}, log


def test_a_run_whose_last_worker_quit_fails(tmp_path: Path) -> None:
    """Locust: "The last worker quit, stopping test", then exit 0 after a fraction of the run time."""
    master, worker, _ = _distributed(tmp_path, run_time_s=60, call_s=0.2)
    deadline = time.monotonic() + 60
    while not (tmp_path / "truth.started").exists():
        assert master.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.2)
    time.sleep(1.0)
    worker.send_signal(signal.SIGTERM)  # the worker dies a second into a 60 s run
    _finish(worker)
    code, log = _finish(master)
    assert "The last worker quit" in log
    assert code == CUT_SHORT_EXIT_CODE and "the run was cut short: it stopped after" in log, log
    assert "of its 60 s run time (-t)" in log


def test_a_call_still_waiting_when_the_stop_timeout_runs_out_is_a_failure(fake_dermassist, tmp_path: Path) -> None:
    """500 users against a saturated server: Locust stopped the users still waiting after --stop-timeout 30, and
    their calls (a third of the run, its slowest) were in no figure: 0 failures, exit 0."""
    fake_dermassist.delay_s = 8.0  # every answer comes after the run and its stop timeout are over
    env = {**os.environ, **ScenarioConfig(deadline_s=30).to_env(),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless",
                           "-u", "2", "-r", "10", "-t", "2s", "--host", fake_dermassist.plain, "--stop-timeout", "1",
                           "--csv", str(tmp_path / "run"), "--only-summary", "--exit-code-on-error", "0"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    summary = read_stats(final_stats_path(str(tmp_path / "run")))
    assert summary.total.requests == summary.total.failures == 2, done.stdout + done.stderr  # both users' calls
    failures = read_failures(final_failures_path(str(tmp_path / "run")))
    assert [n for error, n in failures.items() if error.startswith("StopTimeoutTooShort(")] == [2], failures  # one row
    # cut by a --stop-timeout (1 s) shorter than the deadline (30 s): the setting, never the server's saturation
    assert summary.saturation_problem(failures, 2, 30) is None
    log = done.stdout + done.stderr
    assert "no answer when Locust stopped its user" in log and "give --stop-timeout at least the deadline and a margin" in log


def test_without_a_stop_timeout_the_calls_cut_at_the_end_are_told_not_counted(fake_dermassist, tmp_path: Path) -> None:
    """Locust's default --stop-timeout is 0: it stops users at once by design, and their calls in flight (each
    answered in 0.5 s by a healthy server) were counted as failures blamed on a saturated server (exit 1).

    Each user's first call is answered in 0.3 s and the next in 4 s, so the stop at 2 s finds one in flight whatever
    the run's phase: with every call 0.5 s, a stop a few ms before an answer was delivered after it (the gRPC call
    could not be cut there) and nothing was in flight to tell (two CI runs)."""
    fake_dermassist.first_delays, fake_dermassist.delay_s = [0.3, 0.3], 4.0
    # no bad inputs: the stand-in answers every request, so a drawn bad input would fail as accepted
    env = {**os.environ, **ScenarioConfig(bad_share=0.0).to_env(),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless",
                           "-u", "2", "-r", "10", "-t", "2s", "--host", fake_dermassist.plain,
                           "--csv", str(tmp_path / "run"), "--only-summary"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    log = done.stdout + done.stderr
    summary = read_stats(final_stats_path(str(tmp_path / "run")))
    assert done.returncode == 0 and summary.total.requests > 0 and summary.total.failures == 0, log
    assert "call(s) in flight were cut when Locust stopped their users without a --stop-timeout" in log, log
    assert f"pass --stop-timeout {stop_timeout_s(ScenarioConfig())}" in log and "saturated" not in log


def test_ctrl_c_ends_the_run_with_one_line_and_leaves_no_earlier_summary(fake_dermassist, monkeypatch, tmp_path: Path,
                                                                          caplog) -> None:
    """Ctrl-C printed a raw traceback, and the earlier run's summary.md stayed beside this run's partial reports."""
    from loadtest import run

    earlier = ("summary.md", "summary.json", "report.html", "dermassist_stats.csv", "dermassist_final_stats.csv",
               "dermassist_final_failures.csv", "dermassist_answers.json", "locust.log")
    for stale in (*earlier, "notes.txt"):
        (tmp_path / stale).write_text("an earlier run's 525 requests")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "run_locust", interrupted)
    assert run.main(["--host", fake_dermassist.plain, "--report-dir", str(tmp_path)]) == run.INTERRUPTED_EXIT_CODE == 130
    assert [name for name in earlier if (tmp_path / name).exists()] == []  # Locust never wrote its report.html
    assert (tmp_path / "notes.txt").exists()  # what is not a run's report stays
    assert f"interrupted: no summary was written; Locust's partial reports, if any, are in {tmp_path}" in caplog.text



def test_the_embedded_servers_audit_trail_is_this_runs(monkeypatch, tmp_path: Path) -> None:
    """reports/loadtest/audit.jsonl was appended to by every run (496 lines, then 1228 after three)."""
    from contextlib import ExitStack

    import dermassist.base.repository
    import dermassist.guard.background
    from loadtest import run
    from loadtest.config import RunConfig

    made: list[str] = []

    class Guard:  # stands in for BackgroundGuard: no server is started
        def __init__(self, public, config) -> None:
            made.append(config.audit_log)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            return None

    monkeypatch.setattr(dermassist.guard.background, "BackgroundGuard", Guard)
    monkeypatch.setattr(dermassist.base.repository, "require_artifacts", lambda *args: None)
    (tmp_path / "audit.jsonl").write_text('{"an earlier run": 1}\n' * 3)
    with ExitStack() as stack:
        run._embedded_guard(stack, RunConfig(report_dir=tmp_path))
    assert made == [str(tmp_path / "audit.jsonl")] and not (tmp_path / "audit.jsonl").exists()


def test_statistics_asked_for_but_refused_stop_the_run_before_it_starts(fake_dermassist, monkeypatch, tmp_path: Path,
                                                                         caplog) -> None:
    """A wrong --admin-key-file was a WARNING: the run went on and exited 0 without the statistics asked for."""
    from loadtest import run
    from loadtest.errors import LocustRunError

    def started(*args: object) -> None:
        raise LocustRunError("the run started")

    monkeypatch.setattr(run, "run_locust", started)
    key = tmp_path / "admin.key"
    key.write_text("a-wrong-key-of-enough-characters")
    argv = ["--host", fake_dermassist.plain, "--admin-key-file", str(key), "--report-dir", str(tmp_path)]
    fake_dermassist.admin_key = "the-servers-own-key-of-enough-chars"
    assert run.main(argv) == 2 and "the run started" not in caplog.text
    assert f"the server's statistics, asked for with --admin-key-file {key}, cannot be read" in caplog.text
    assert f"the server at {fake_dermassist.plain} refused the key; expected its admin key" in caplog.text
    assert len([r for r in caplog.records if "statistics" in r.getMessage()]) == 1  # told once, not twice
    caplog.clear()
    fake_dermassist.admin_key = ""  # a server without the statistics API: not told as a wrong key
    assert run.main(argv) == 2 and "the run started" not in caplog.text
    assert "UNIMPLEMENTED" in caplog.text and "not a refused key" in caplog.text and "refused the key" not in caplog.text
    caplog.clear()
    fake_dermassist.admin_key = key.read_text()  # the right key: the run starts
    assert run.main(argv) == 2 and "the run started" in caplog.text and "cannot be read" not in caplog.text
