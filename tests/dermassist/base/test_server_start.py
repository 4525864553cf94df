"""A failed tritonserver start, without tritonserver: its errors picked out of the whole log, a port taken before it runs."""
from __future__ import annotations

import errno
import socket
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dermassist.base import server as server_module
from dermassist.base.errors import ConfigError, ServerStartupError
from dermassist.base.server import (
    TritonServer,
    bind_problem,
    check_ports,
    free_ports,
    startup_report,
    triton_errors,
)
from dermassist.base.server_config import ServerConfig
from tests.support.polling import wait_until

_TRACE = (r"\n\nAt:\n  /opt/dermassist/preprocess/params.py(70): read_tuned\n"
          r"  /opt/dermassist/preprocess/params.py(99): step_params\n  /models/triage/1/model.py(36): initialize\n")
_REASON = ("InvalidTensorError: /models/triage/1/tuned.json is not a tuned-values artifact (Expecting property name "
           r"enclosed in double quotes: line 2 column 1 (char 13)); expected {\"values\": {...}}")
_RULE = "+-------------------+---------+--------------------------------------------------------------+"

# tritonserver 2.51 on a CPU host, a repository whose triage/1/tuned.json is cut short (trimmed from a real run)
FAILED_START_LOG = "\n".join([
    'W1204 23:31:37.566117 5856 pinned_memory_manager.cc:273] "Unable to allocate pinned system memory, pinned memory '
    'pool will not be available: CUDA driver version is insufficient for CUDA runtime version"',
    'I1204 23:31:37.566182 5856 cuda_memory_manager.cc:117] "CUDA memory pool disabled"',
    'E1204 23:31:37.566270 5856 server.cc:241] "CudaDriverHelper has not been initialized."',
    *[f'I1204 23:31:37.5680{i} 5856 model_lifecycle.cc:472] "loading: {m}:1"'
      for i, m in enumerate(("lesion_classifier", "lesion_crop", "lesion_segmenter", "prepare", "triage"))],
    'I1204 23:31:39.252983 5856 python_be.cc:2249] "TRITONBACKEND_ModelInstanceInitialize: prepare_0_0 (CPU device 0)"',
    'I1204 23:31:40.136660 5856 model_lifecycle.cc:839] "successfully loaded \'prepare\'"',
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    'I1204 23:31:42.146034 5856 python_be.cc:2249] "TRITONBACKEND_ModelInstanceInitialize: triage_0_0 (CPU device 0)"',
    f'I1204 23:31:42.508633 5856 pb_stub.cc:366] "Failed to initialize Python stub: {_REASON}{_TRACE}"',
    f'E1204 23:31:42.864784 5856 backend_model.cc:692] "ERROR: Failed to create instance: {_REASON}{_TRACE}"',
    f'E1204 23:31:42.864925 5856 model_lifecycle.cc:642] "failed to load \'triage\' version 1: Internal: {_REASON}{_TRACE}"',
    'I1204 23:31:42.864943 5856 model_lifecycle.cc:777] "failed to load \'triage\'"',
    "/opt/dermassist/.venv/lib/python3.11/site-packages/torch/jit/_serialization.py:176: FutureWarning: "
    "`torch.jit.load` is deprecated. Please switch to `torch.export`.",
    "  warnings.warn(",
    'I1204 23:31:44.685032 5856 model_lifecycle.cc:839] "successfully loaded \'lesion_classifier\'"',
    'E1204 23:31:45.113345 5856 ensemble_scheduler.cc:1468] "unable to create stream for dermassist: CUDA driver '
    'version is insufficient for CUDA runtime version"',
    'E1204 23:31:46.481683 5856 model_repository_manager.cc:703] "Invalid argument: ensemble \'dermassist\' depends on '
    f"'triage' which has no loaded version. Model 'triage' loading failed with error: version 1 is at UNAVAILABLE "
    f'state: Internal: {_REASON}{_TRACE};"',
    "I1204 23:31:46.481798 5856 server.cc:674] ",
    _RULE, "| Model             | Version | Status                                                       |", _RULE,
    *[f"| {m:<17} | 1       | READY                                                        |"
      for m in ("lesion_classifier", "lesion_crop", "lesion_segmenter", "prepare")],
    "| triage            | 1       | UNAVAILABLE: Internal: InvalidTensorError: /models/triage/1/t |", _RULE, "",
    "Error: Failed to initialize NVML",
    'W1204 23:31:46.494592 5856 metrics.cc:798] "DCGM unable to start: DCGM initialization error"',
    "I1204 23:31:46.494888 5856 tritonserver.cc:2598] ",
    _RULE,
    *[f"| {k:<32} | {v:<25} |" for k, v in (
        ("server_id", "triton"), ("server_version", "2.51.0"), ("model_repository_path[0]", "/models"),
        ("model_control_mode", "MODE_NONE"), ("strict_model_config", "0"), ("model_config_name", "embedded"),
        ("rate_limit", "OFF"), ("pinned_memory_pool_byte_size", "268435456"),
        ("min_supported_compute_capability", "6.0"), ("strict_readiness", "1"), ("exit_timeout", "30"),
        ("cache_enabled", "0"))],
    _RULE, "",
    'I1204 23:31:46.494953 5856 server.cc:305] "Waiting for in-flight requests to complete."',
    'I1204 23:31:46.495389 5856 server.cc:336] "All models are stopped, unloading models"',
    *[f'I1204 23:31:{46 + i // 2:02d}.495400 5856 server.cc:345] "Timeout {30 - i}: Found {4 - i // 6} live models and '
      '0 in-flight non-inference requests"' for i in range(26)],
    "error: creating server: Internal - failed to load all models",
])


def test_the_failing_model_and_its_python_exception_are_picked_out_of_the_whole_log() -> None:
    old_tail = FAILED_START_LOG.splitlines()[-40:]  # what the message showed: countdowns and the option table
    assert not any("failed to load 'triage'" in line for line in old_tail)
    errors = triton_errors(FAILED_START_LOG)
    assert errors[0].startswith("I1204 23:31:42.508633 5856 pb_stub.cc:366] Failed to initialize Python stub: "
                                "InvalidTensorError: /models/triage/1/tuned.json is not a tuned-values artifact")
    assert 'expected {"values": {...}}\n\nAt:\n  /opt/dermassist/preprocess/params.py(70): read_tuned' in errors[0]
    assert errors[2].startswith("E1204 23:31:42.864925 5856 model_lifecycle.cc:642] failed to load 'triage' version 1: "
                                "Internal: InvalidTensorError:")
    assert errors[2].endswith("(traceback as above)")  # one traceback, not four
    assert sum("read_tuned" in e for e in errors) == 1
    assert errors[-1] == "error: creating server: Internal - failed to load all models"
    assert len(errors) == 5  # stub, instance, load, ensemble, last word
    text = "\n".join(errors)
    assert "CudaDriverHelper" not in text and "unable to create stream" not in text  # every CPU start says those
    assert "NVML" not in text and "FutureWarning" not in text and "Timeout" not in text


def test_a_cuda_error_that_fails_a_model_is_kept() -> None:
    log = ('E1204 10:00:00.000001 1 model_lifecycle.cc:642] "failed to load \'lesion_classifier\' version 1: '
           'Internal: unable to create stream: CUDA driver version is insufficient for CUDA runtime version"')
    assert triton_errors(log) == [log.replace('642] "', "642] ")[:-1]]


def test_a_config_that_does_not_parse_is_named_by_protobuf_and_triton() -> None:
    log = "\n".join([
        "[libprotobuf ERROR /tmp/tritonbuild/tritonserver/build/_deps/protobuf/src/google/protobuf/text_format.cc:337] "
        'Error parsing text-format inference.ModelConfig: 1:6: Message type "inference.ModelConfig" has no field named "this".',
        'E1204 23:38:10.554134 12689 model_repository_manager.cc:1460] "Poll failed for model directory \'broken\': '
        'failed to read text proto from /models/broken/config.pbtxt"',
        "Error: Failed to initialize NVML",
    ])
    errors = triton_errors(log)
    assert [e[:40] for e in errors] == ["[libprotobuf ERROR /tmp/tritonbuild/trit", "E1204 23:38:10.554134 12689 model_reposi"]
    assert errors[1].endswith("] Poll failed for model directory 'broken': failed to read text proto from "
                              "/models/broken/config.pbtxt")


def test_a_python_traceback_written_to_the_log_is_one_error_and_the_list_is_capped() -> None:
    log = "\n".join(["I1204 10:00:00.000001 1 server.cc:1] \"x\"", "Traceback (most recent call last):",
                     '  File "/models/prepare/1/model.py", line 3, in <module>', "    import cv3",
                     "ModuleNotFoundError: No module named 'cv3'", "after"])
    assert triton_errors(log) == ["Traceback (most recent call last):\n  File \"/models/prepare/1/model.py\", line 3, "
                                  "in <module>\n    import cv3\nModuleNotFoundError: No module named 'cv3'"]
    many = "\n".join(f'E1204 10:00:00.{i:06d} 1 a.cc:1] "error {i}"' for i in range(20))
    capped = triton_errors(many, limit=3)
    assert capped[:3] == [f"E1204 10:00:00.{i:06d} 1 a.cc:1] error {i}" for i in range(3)]
    assert capped[3] == "... and 17 more error line(s)"


def test_the_report_shows_the_errors_first_then_a_short_tail_and_the_kept_log() -> None:
    report = startup_report("tritonserver exited with code 1 before becoming ready", FAILED_START_LOG,
                            Path("/tmp/kept.log"), "raise the timeout")
    lines = report.splitlines()
    assert lines[:2] == ["tritonserver exited with code 1 before becoming ready", "Triton's errors:"]
    assert report.index("failed to load 'triage' version 1") < report.index("last lines of its log:")
    assert "raise the timeout" not in report  # the log says what went wrong: waiting longer would not help
    tail = report.split("last lines of its log:\n")[1].splitlines()
    assert tail[-1] == "full log: /tmp/kept.log"
    assert len(tail) == server_module.REPORT_TAIL_LINES + 1 and not any(t.startswith(("|", "+")) for t in tail)


def _fake_start(tmp_path: Path, log: str, poll: int | None, timeout_s: float = 180.0) -> TritonServer:
    """A TritonServer as start() leaves it while waiting: its log written, a process that ``poll``s as given."""
    server = TritonServer(ServerConfig(repository=tmp_path, http_port=free_ports(1)[0], startup_timeout_s=timeout_s))
    server.log_path = tmp_path / "run" / "tritonserver.log"
    server.log_path.parent.mkdir()
    server.log_path.write_text(log)
    process: Any = SimpleNamespace(poll=lambda: poll)
    server.process = process
    return server


def test_an_exit_before_ready_reports_the_failing_model_and_keeps_the_whole_log(tmp_path: Path) -> None:
    server = _fake_start(tmp_path, FAILED_START_LOG, poll=1)
    with pytest.raises(ServerStartupError) as err:
        server._wait_ready(server.process, started=server_module.time.monotonic())  # type: ignore[arg-type]
    message = str(err.value)
    try:
        assert message.startswith("tritonserver exited with code 1 before becoming ready\nTriton's errors:\n")
        assert message.index("failed to load 'triage' version 1") < message.index("last lines of its log:")
        assert server.kept_log is not None and message.endswith(f"full log: {server.kept_log}")
        assert server.kept_log.read_text() == FAILED_START_LOG and server.kept_log.parent != tmp_path / "run"
    finally:
        if server.kept_log is not None:
            server.kept_log.unlink()


def test_a_timeout_with_an_empty_log_says_to_raise_the_startup_timeout(tmp_path: Path) -> None:
    server = _fake_start(tmp_path, "", poll=None, timeout_s=0.3)
    with pytest.raises(ServerStartupError) as err:
        server._wait_ready(server.process, started=server_module.time.monotonic())  # type: ignore[arg-type]
    try:
        assert str(err.value).startswith(
            "tritonserver was not ready within 0.3 s\nthe log names no error: tritonserver may need longer on this host; "
            "raise --startup-timeout-s / DERMASSIST_STARTUP_TIMEOUT_S (now 0.3 s)\nits log is empty")
    finally:
        if server.kept_log is not None:
            server.kept_log.unlink()


@pytest.fixture
def taken_port():
    """A port another process (here: a socket) listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        yield listener.getsockname()[1]


@pytest.fixture
def no_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tritonserver was launched although its metrics port is taken")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(server_module, "PORT_SETTLE_S", 0.3)


def test_a_taken_port_cannot_be_bound_and_a_free_one_can(taken_port: int) -> None:
    error = bind_problem("127.0.0.1", taken_port)
    assert error is not None and error.errno == errno.EADDRINUSE
    assert bind_problem("127.0.0.1", free_ports(1)[0]) is None


def test_a_port_that_comes_free_while_the_check_waits_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    http, grpc = free_ports(2)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    config = ServerConfig(repository=tmp_path, http_port=http, grpc_port=grpc, metrics_port=listener.getsockname()[1])
    assert bind_problem("127.0.0.1", config.metrics_port) is not None  # taken when the check starts
    clock = SimpleNamespace(now=100.0, sleeps=[])

    def sleep(seconds: float) -> None:  # the check's waits, on the test's clock; the port comes free after the third
        clock.sleeps.append(seconds)
        clock.now += seconds
        if len(clock.sleeps) == 3:
            listener.close()  # a stopped server's last process going away

    monkeypatch.setattr(server_module, "time", SimpleNamespace(monotonic=lambda: clock.now, sleep=sleep))
    check_ports(config, settle_s=5.0)
    assert clock.sleeps == [0.1, 0.1, 0.1]  # it waited for the metrics port while taken, and not past it


def test_a_taken_metrics_port_stops_the_start_before_tritonserver_runs(tmp_path: Path, taken_port: int,
                                                                       no_launch: None) -> None:
    http, grpc = free_ports(2)
    config = ServerConfig(repository=tmp_path, http_port=http, grpc_port=grpc, metrics_port=taken_port)
    with pytest.raises(ConfigError) as err:
        TritonServer(config).start()
    message = str(err.value)
    assert message.startswith(f"metrics port {taken_port} cannot be bound on 127.0.0.1 ([Errno {errno.EADDRINUSE}] ")
    assert message.endswith(f"stop what holds port {taken_port} (another `dermassist serve`? `ss -ltnp 'sport = "
                            f":{taken_port}'` shows which); or pass another --metrics-port / DERMASSIST_METRICS_PORT")
    with pytest.raises(ConfigError, match=f"metrics port {taken_port} cannot be bound on 127.0.0.1"):
        check_ports(ServerConfig(repository=tmp_path, http_port=http, grpc_port=grpc, metrics_port=taken_port,
                                 metrics_host="127.0.0.1"))


def test_serve_exits_2_naming_the_taken_metrics_port(tmp_path: Path, taken_port: int, no_launch: None,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from dermassist.cli import main

    http, grpc = free_ports(2)
    argv = ["serve", "--repository", str(tmp_path), "--http-port", str(http), "--grpc-port", str(grpc),
            "--metrics-port", str(taken_port), "--audit-log", str(tmp_path / "audit.jsonl")]
    assert main(argv) == 2
    (error,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"Triton's metrics on 127.0.0.1:{taken_port} (Address already in use)" in error
    assert "--metrics-port / DERMASSIST_METRICS_PORT" in error


def test_only_the_newest_kept_logs_stay(tmp_path: Path) -> None:
    """A crash-looping service kept one log per failed start, without end."""
    import os

    from dermassist.base.server import KEPT_LOG_PREFIX, prune_kept_logs

    logs = [tmp_path / f"{KEPT_LOG_PREFIX}{i}.log" for i in range(8)]
    for age, log in enumerate(logs):  # logs[0] newest
        log.write_text("I1204 ...")
        os.utime(log, ns=(10**18 - age * 10**9, 10**18 - age * 10**9))
    other = tmp_path / "other.log"
    other.write_text("not ours")
    assert sorted(prune_kept_logs(tmp_path, keep=5)) == sorted(logs[5:])
    assert sorted(tmp_path.glob("*.log")) == sorted([*logs[:5], other])


def test_a_start_asked_for_while_the_owner_is_closing_the_server_is_refused(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A guard's restart (stop, then start) that the owner's ``with`` block ended in the middle of started a fresh
    tritonserver after the owner had stopped it (a review's race: the owner's Ctrl-C 0.1 s into the restart's stop)."""
    import threading
    import time

    from dermassist.base.errors import ServerError

    server = TritonServer(ServerConfig(repository=tmp_path))
    events: list[str] = []

    def slow_stop(timeout_s: float) -> None:
        events.append(f"stop by {threading.current_thread().name}")
        time.sleep(0.5)  # tritonserver's graceful stop takes a while

    monkeypatch.setattr(server, "_stop", slow_stop)
    monkeypatch.setattr(server, "_start", lambda: events.append("START") or server)
    outcome: list[BaseException] = []

    def restart() -> None:  # what the guard's lifecycle thread does
        server.stop()
        try:
            server.start()
        except ServerError as e:
            outcome.append(e)

    guard = threading.Thread(target=restart, name="guard")
    guard.start()
    assert wait_until(lambda: events == ["stop by guard"], 5)  # the guard's stop is under way (not a guessed sleep)
    server.__exit__(None, None, None)  # the owner's with block ends while the restart stops the server
    guard.join(5)
    assert "START" not in events and events == ["stop by guard", "stop by MainThread"]
    assert len(outcome) == 1 and "being stopped by its owner" in str(outcome[0])
    server.closing = False  # a new with block: started again as asked
    assert server.start() is server and events[-1] == "START"


def test_a_start_in_progress_ends_at_once_when_its_owner_closes_the_server(tmp_path: Path) -> None:
    """The owner's stop waits for a start in progress (one at a time): the start must not wait out its startup
    timeout (180 s) for a server its owner is stopping."""
    import time

    from dermassist.base.errors import ServerError

    server = TritonServer(ServerConfig(repository=tmp_path, http_port=free_ports(1)[0], startup_timeout_s=60))
    server.closing = True
    running = SimpleNamespace(poll=lambda: None)  # a tritonserver that would never become ready
    started = time.monotonic()
    with pytest.raises(ServerError, match="stopped by its owner while it started"):
        server._wait_ready(running, started)  # type: ignore[arg-type]
    assert time.monotonic() - started < 5


def test_the_regions_and_run_folders_of_a_start_whose_processes_are_gone_are_removed(tmp_path: Path) -> None:
    """A guard and tritonserver killed together left 44 MiB of /dev/shm and a run folder that no later start removed
    (soak audit 1): a start removes those whose lock no process holds any more, and nothing else (review 12: a pid
    alone named a live server of another PID namespace dead, and a restarted container's PID 1 alive)."""
    import fcntl
    import os

    from dermassist.base.server import OWNER_LOCK, hold_run_folder, remove_orphans, shm_prefix

    shm, tmp = tmp_path / "shm", tmp_path / "tmp"
    shm.mkdir()
    tmp.mkdir()

    def start(name: str) -> tuple[Path, list[Path], int]:
        folder = tmp / f"dermassist-triton-{name}"
        folder.mkdir()
        prefix = shm_prefix()
        regions = [shm / f"{prefix}prepare_0_0", shm / f"{prefix}crop_0_0"]
        for region in regions:
            region.write_bytes(b"\0" * 16)
        return folder, regions, hold_run_folder(folder, prefix)

    dead_folder, dead_regions, dead_lock = start("dead")
    live_folder, live_regions, live_lock = start("live")
    os.close(dead_lock)  # every process of that start is gone: its lock is free
    old = tmp / "dermassist-triton-06wj81_v"  # an older start's folder, without a lock: not known whose
    old.mkdir()
    other = [shm / "dermassist-123-abc-other", tmp / "dermassist-tritonserver-1sptk5vl.log"]
    for path in other:
        path.write_bytes(b"x")
    try:
        assert sorted(remove_orphans(shm, tmp)) == sorted([*dead_regions, dead_folder])
        assert all(p.exists() for p in (live_folder, *live_regions, old, *other))
        with open(live_folder / OWNER_LOCK, "rb") as held:  # still held by the live start's descriptor
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                raise AssertionError("the live start's lock could be taken")
            except BlockingIOError:
                pass
    finally:
        os.close(live_lock)
