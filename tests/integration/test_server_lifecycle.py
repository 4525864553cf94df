"""The launcher against the real tritonserver binary: readiness, failure reporting, signals, no orphans."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dermassist.base.errors import ServerStartupError
from dermassist.base.server import SHM_DIR, TritonServer, free_ports
from dermassist.base.server_config import ServerConfig

pytestmark = pytest.mark.integration


def _tritonserver_pids(port: int) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"tritonserver.*--http-port={port}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _config(repository: Path, **kwargs: object) -> ServerConfig:
    http, grpc, metrics = free_ports(3)
    return ServerConfig(repository=repository, http_port=http, grpc_port=grpc, metrics_port=metrics, **kwargs)


def test_broken_model_fails_start_with_the_log_tail(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.pbtxt").write_text('name: "broken"\nbackend: "python"\nmax_batch_size: [oops\n')
    config = _config(tmp_path)
    with pytest.raises(ServerStartupError, match="exited with code") as err:
        TritonServer(config).start()
    assert "broken" in str(err.value)  # the tail names the model that failed
    assert _tritonserver_pids(config.http_port) == []


def _stub_pids(runtime_dir: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"triton_python_backend_stub.*{runtime_dir}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.mark.parametrize("timeout_s", [0.5, 3.0])
def test_not_ready_in_time_is_reported_and_no_process_is_left(tiny_repository: Path, timeout_s: float) -> None:
    config = _config(tiny_repository, startup_timeout_s=timeout_s)
    server = TritonServer(config)
    with pytest.raises(ServerStartupError, match="not ready within"):
        server.start()
    runtime_dir = server.log_path.parent
    time.sleep(0.5)
    assert _tritonserver_pids(config.http_port) == []
    assert _stub_pids(runtime_dir) == []  # stubs still loading TensorFlow/torch were ended too


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid), "-f", "tritonserver"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _serve(repository: Path, http: int, grpc: int, metrics: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dermassist.cli", "serve", "--repository", str(repository),
           "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _health(http: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http}{path}", timeout=1) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def _wait_for(http: int, path: str, status: int, timeout_s: float = 180) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code, body = _health(http, path)
        if code == status:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{path} never answered {status}")


def _stop(proc: subprocess.Popen, sig: int, triton: list[int]) -> str:
    try:
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "stopped" in out
    time.sleep(0.5)
    assert not [p for p in triton if Path(f"/proc/{p}").exists()], "tritonserver outlived serve"
    return out


@pytest.mark.slow
def test_serve_command_serves_through_the_guard_and_stops_on_sigterm(tiny_repository: Path, ham_jpeg: bytes) -> None:
    http, grpc, metrics = free_ports(3)
    proc = _serve(tiny_repository, http, grpc, metrics)
    triton: list[int] = []
    try:
        assert _wait_for(http, "/v2/health/ready", 200) == '{"ready": true}'
        triton = _children(proc.pid)
        assert triton, "serve should run tritonserver as its child"
        from tests.support.triton import infer

        assert infer(f"127.0.0.1:{grpc}", [ham_jpeg])["PROBABILITIES"].shape == (1, 8)
    finally:
        out = _stop(proc, signal.SIGTERM, triton)
    assert "ready in" in out and '"status":"OK"' in out  # the audit line went to stdout


def test_serve_stopped_while_tritonserver_starts_stops_without_waiting_for_it(tiny_repository: Path) -> None:
    """An orchestrator that gives up on a slow start sends SIGTERM: serve stops the starting tritonserver at once
    rather than first waiting for it to be ready (on a GPU host that can outlast the pod's grace period)."""
    http, grpc, metrics = free_ports(3)
    proc = _serve(tiny_repository, http, grpc, metrics)
    triton: list[int] = []
    deadline = time.monotonic() + 60
    while not triton and proc.poll() is None and time.monotonic() < deadline:
        triton = _children(proc.pid)  # tritonserver launched, still loading its models
        time.sleep(0.05)
    assert triton, "serve never launched tritonserver"
    assert _health(http, "/v2/health/ready")[0] == 0  # the guard's ports are not open yet: still starting
    out = _stop(proc, signal.SIGTERM, triton)
    assert "stopped while tritonserver was starting" in out and "tritonserver ready in" not in out


def test_serve_on_a_repository_without_the_ensemble_or_its_models_exits_2_before_starting(tmp_path: Path) -> None:
    """It started, stayed live and never became ready until stopped (fuzz audit 8): an orchestrator saw a pod that
    never became ready instead of a start that failed with its reason."""
    from dermassist.base.repository import stage_repository

    http, grpc, metrics = free_ports(3)
    staged = stage_repository(tmp_path / "staged")  # the configs and adapters, no model
    for repository, words in ((tmp_path / "empty", "is not a DermAssist model repository (it has no dermassist/"),
                              (staged, f"model repository {staged} lacks")):
        repository.mkdir(exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "dermassist.cli", "serve", "--repository", str(repository), "--http-port", str(http),
             "--grpc-port", str(grpc), "--metrics-port", str(metrics)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        assert words in done.stderr and "tritonserver ready" not in done.stderr


def test_serve_command_exits_non_zero_when_start_fails(tmp_path: Path) -> None:
    from dermassist.base.repository import missing_artifacts, stage_repository

    repository = stage_repository(tmp_path / "repository")
    for artifact in missing_artifacts(repository):  # empty stand-ins: present, but no model Triton can load
        artifact.touch()
    (repository / "broken").mkdir()
    (repository / "broken" / "config.pbtxt").write_text("this is not a config")
    http, grpc, metrics = free_ports(3)
    done = subprocess.run(
        [sys.executable, "-m", "dermassist.cli", "serve", "--repository", str(repository),
         "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode != 0
    assert "exited with code" in done.stderr and "last lines of its log" in done.stderr


def test_session_server_reports_its_start_time(triton_server: TritonServer) -> None:
    assert triton_server.running and 0 < triton_server.startup_s < triton_server.config.startup_timeout_s


def test_a_killed_server_leaves_no_shared_memory_behind(tiny_repository: Path) -> None:
    server = TritonServer(_config(tiny_repository)).start()
    try:
        regions = list(SHM_DIR.glob(f"{server.shm_prefix}*"))
        assert regions, "the Python backend's regions carry this start's prefix"
        os.killpg(server.pid, signal.SIGKILL)  # a crash, or the guard's kill after its grace
        assert server.process is not None and server.process.wait(timeout=30) == -signal.SIGKILL
        assert all(p.exists() for p in regions)  # a killed server removes nothing itself
    finally:
        server.stop()
    assert list(SHM_DIR.glob(f"{server.shm_prefix}*")) == []


@pytest.mark.slow
def test_sigterm_during_a_recovery_restart_that_cannot_finish_stops_serve_without_waiting_for_it(
        tiny_repository: Path, tmp_path: Path) -> None:
    """Operator audit 2: with a step's model.py gone and tritonserver killed, the guard's restart waits for a load that
    never ends (the whole --startup-timeout-s); a SIGTERM then took 95.5 s to stop serve. It must abandon the restart:
    serve stops well before the restart would have given up."""
    import shutil

    from preprocess.contract import CROP_MODEL

    repository = tmp_path / "repository"
    shutil.copytree(tiny_repository, repository)
    startup_timeout_s = 240.0
    http, grpc, metrics = free_ports(3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dermassist.cli", "serve", "--repository", str(repository), "--http-port", str(http),
         "--grpc-port", str(grpc), "--metrics-port", str(metrics), "--startup-timeout-s", str(startup_timeout_s)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    triton: list[int] = []
    try:
        _wait_for(http, "/v2/health/ready", 200)
        (first,) = _children(proc.pid)
        (repository / CROP_MODEL / "1" / "model.py").rename(tmp_path / "model.py")  # the restart cannot load it
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (triton and "recovering by restart" in _health(http, "/v2/health/ready")[1]):
            triton = [p for p in _children(proc.pid) if p != first]  # the restarted tritonserver, loading
            time.sleep(0.2)
        assert triton, "the guard never restarted tritonserver"
        time.sleep(2.0)  # the restarted server is well into its start
        stop_began = time.monotonic()
        out = _stop(proc, signal.SIGTERM, triton + [first])
        stopped_s = time.monotonic() - stop_began
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "the restart is abandoned" in out, out[-3000:]
    assert stopped_s < startup_timeout_s / 4, f"serve took {stopped_s:.1f} s to stop: it waited for the restart"


def test_the_metrics_port_gives_latency_quantiles_per_model(triton_server: TritonServer) -> None:
    """Operator audit 9: counters only gave means; --metrics-config=summary_latencies=true adds quantiles."""
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    from dermassist.guard.canary import canary_request

    with grpc.insecure_channel(triton_server.config.grpc_address) as channel:
        service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(canary_request("quantiles-1"), timeout=60)
    url = f"http://127.0.0.1:{triton_server.config.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    for series in ("nv_inference_request_summary_us", "nv_inference_queue_summary_us",
                   "nv_inference_compute_infer_summary_us"):
        assert f'{series}{{model="dermassist",version="1",quantile="0.95"}}' in text, series
