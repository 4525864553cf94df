"""The launcher against the real tritonserver binary: readiness, failure reporting, signals, no orphans."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dermassist.config import ServerConfig
from dermassist.errors import ServerStartupError
from dermassist.server import TritonServer, free_ports

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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_command_forwards_signals_and_leaves_no_orphan(tmp_path: Path, sig: int) -> None:
    http, grpc, metrics = free_ports(3)
    cmd = [sys.executable, "-m", "dermassist.cli", "serve", "--repository", str(tmp_path),
           "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        assert _tritonserver_pids(http), "server should be running"
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "ready in" in out and "stopped" in out
    assert _tritonserver_pids(http) == []


def test_serve_command_exits_non_zero_when_start_fails(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.pbtxt").write_text("this is not a config")
    http, grpc, metrics = free_ports(3)
    done = subprocess.run(
        [sys.executable, "-m", "dermassist.cli", "serve", "--repository", str(tmp_path),
         "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0
    assert "exited with code" in done.stderr and "last lines of its log" in done.stderr


def test_session_server_reports_its_start_time(triton_server: TritonServer) -> None:
    assert triton_server.running and 0 < triton_server.startup_s < triton_server.config.startup_timeout_s
