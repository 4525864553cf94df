"""Commands that failed late or with a traceback: each is refused at once with the config error (exit 2)."""
from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dermassist.base.server import TritonServer
from dermassist.cli import main
from dermassist.commands.demo import page_address_problem


@pytest.fixture
def no_tritonserver(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that starts tritonserver fails the test: each refusal must come before the models load."""
    def start(self: TritonServer) -> TritonServer:
        raise AssertionError("tritonserver was started before the setting was refused")

    monkeypatch.setattr(TritonServer, "start", start)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process listens on."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def _refused(argv: list[str], caplog: pytest.LogCaptureFixture) -> str:
    """Run the command; assert it exits 2 and return what it logged at ERROR."""
    with caplog.at_level(logging.ERROR):
        assert main(argv) == 2
    return caplog.text


# --- serve ----------------------------------------------------------------------------------------------------


def test_serve_of_a_folder_without_models_exits_2_naming_what_is_missing(tmp_path: Path, no_tritonserver: None,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """An empty --repository started, warned, and stayed not ready until stopped (fuzz audit 8)."""
    from dermassist.base.repository import stage_repository

    empty = tmp_path / "empty"
    empty.mkdir()
    from dermassist.base.server import free_ports

    http, grpc_port, metrics = free_ports(3)
    audit = ["--audit-log", str(tmp_path / "audit.jsonl"), "--http-port", str(http), "--grpc-port", str(grpc_port),
             "--metrics-port", str(metrics)]
    text = _refused(["serve", "--repository", str(empty), *audit], caplog)
    assert f"{empty} is not a DermAssist model repository (it has no dermassist/config.pbtxt)" in text
    caplog.clear()
    staged = stage_repository(tmp_path / "staged")  # the configs and adapters, no model
    text = _refused(["serve", "--repository", str(staged), *audit], caplog)
    assert f"model repository {staged} lacks" in text and "model.savedmodel" in text
    assert f"`dermassist models --repository {staged}`" in text


def test_serve_with_an_audit_log_that_is_a_folder_exits_2(tmp_path: Path, no_tritonserver: None,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    text = _refused(["serve", "--repository", str(tmp_path), "--audit-log", str(tmp_path)], caplog)
    assert f"audit_log {tmp_path} is a folder" in text and "--audit-log" in text


def test_serve_with_an_audit_log_under_a_file_exits_2(tmp_path: Path, no_tritonserver: None,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    a_file = tmp_path / "FILE"
    a_file.write_text("x")
    text = _refused(["serve", "--repository", str(tmp_path), "--audit-log", str(a_file / "audit.jsonl")], caplog)
    assert f"{a_file} is a file, not a folder" in text


@pytest.mark.skipif(not Path("/proc/version").is_file(), reason="no /proc here")
def test_serve_with_an_audit_log_of_proc_exits_2(tmp_path: Path, no_tritonserver: None,
                                                 monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DERMASSIST_AUDIT_LOG", "/proc/version")
    assert "audit log /proc/version cannot be appended to" in _refused(["serve", "--repository", str(tmp_path)], caplog)


def test_serve_with_a_connection_age_past_32_bits_exits_2(tmp_path: Path, no_tritonserver: None,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    text = _refused(["serve", "--repository", str(tmp_path), "--grpc-max-connection-age", "99999999999"], caplog)
    assert "grpc_max_connection_age must be" in text and "--grpc-max-connection-age" in text


def test_serve_with_tls_files_that_are_not_pem_exits_2(tmp_path: Path, no_tritonserver: None,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    hostname = tmp_path / "hostname"
    hostname.write_text("dermassist-node-1\n")
    text = _refused(["serve", "--repository", str(tmp_path), "--tls-cert", str(hostname), "--tls-key", str(hostname)],
                    caplog)
    assert f"tls_cert file {hostname} is not a PEM certificate" in text and "--tls-cert" in text


def test_serve_on_a_host_that_does_not_resolve_exits_2(tmp_path: Path, no_tritonserver: None,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    text = _refused(["serve", "--repository", str(tmp_path), "--host", "nosuchhost.invalid"], caplog)
    assert "host nosuchhost.invalid does not resolve" in text and "--host" in text


def test_serve_on_a_taken_grpc_port_exits_2_before_tritonserver_starts(tmp_path: Path, no_tritonserver: None,
                                                                        taken_port: int,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    text = _refused(["serve", "--repository", str(tmp_path), "--grpc-port", str(taken_port),
                     "--audit-log", str(tmp_path / "audit.jsonl")], caplog)
    assert f"cannot serve gRPC on 127.0.0.1:{taken_port} (Address already in use)" in text and "--grpc-port" in text


# --- demo -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["-1", "0", "70000"])
def test_demo_on_a_port_out_of_range_exits_2(port: str, no_tritonserver: None, caplog: pytest.LogCaptureFixture) -> None:
    assert f"--port must be a TCP port from 1 to 65535, got {port}" in _refused(["demo", "--port", port], caplog)


def test_demo_on_a_taken_port_exits_2_naming_it(taken_port: int, no_tritonserver: None,
                                                caplog: pytest.LogCaptureFixture) -> None:
    text = _refused(["demo", "--port", str(taken_port)], caplog)
    assert f"cannot serve the demo page on 127.0.0.1:{taken_port}: Address already in use" in text
    assert "Cannot find empty port" not in text


def test_demo_on_a_host_that_does_not_resolve_exits_2(no_tritonserver: None, caplog: pytest.LogCaptureFixture) -> None:
    assert "--host nosuchhost.invalid does not resolve" in _refused(["demo", "--host", "nosuchhost.invalid"], caplog)


def test_a_free_page_address_has_no_problem(taken_port: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert page_address_problem("127.0.0.1", free) is None
    assert page_address_problem("localhost", taken_port) is not None
    assert page_address_problem("127.0.0.1", True) is not None


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_a_page_port_outside_the_tcp_range_is_named_with_the_range(port: int) -> None:
    assert page_address_problem("127.0.0.1", port) == (
        f"demo --port must be a TCP port from 1 to 65535, got {port}; pass another --port / DERMASSIST_DEMO_PORT (with "
        "make demo: DERMASSIST_DEMO_PORT=7861 make demo)")


def test_make_demo_can_move_the_page_and_every_taken_port_is_named_in_one_message(
        taken_port: int, no_tritonserver: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """`make demo` passes no flag, so the page's port could not be moved; with the page's port and the server's gRPC
    port both taken, only the page's was named, and the server's came on the next try with `serve`'s flags."""
    monkeypatch.setenv("DERMASSIST_DEMO_PORT", str(taken_port))
    monkeypatch.setenv("DERMASSIST_GRPC_PORT", str(taken_port))
    text = _refused(["demo"], caplog)
    assert f"cannot serve the demo page on 127.0.0.1:{taken_port}" in text
    assert (f"gRPC on 127.0.0.1:{taken_port} (Address already in use): stop what holds port {taken_port} (another "
            f"`dermassist serve`? `ss -ltnp 'sport = :{taken_port}'` shows which), or pass another --grpc-port / "
            "DERMASSIST_GRPC_PORT") in text
    assert "(the server's address is DERMASSIST_HOST)" in text and "--metrics-host" not in text
    caplog.clear()
    monkeypatch.setenv("DERMASSIST_DEMO_PORT", "7999")
    monkeypatch.setenv("DERMASSIST_METRICS_HOST", "nosuchhost.invalid")  # told as the address, not a port to change
    text = _refused(["demo"], caplog)
    assert "the server's address DERMASSIST_METRICS_HOST=nosuchhost.invalid does not resolve" in text
    assert "--metrics-port" not in text
    monkeypatch.delenv("DERMASSIST_METRICS_HOST")
    caplog.clear()
    monkeypatch.setenv("DERMASSIST_DEMO_PORT", "not-a-port")
    assert "environment variable DERMASSIST_DEMO_PORT must be of type int, got 'not-a-port'" in _refused(["demo"], caplog)


# --- bench ----------------------------------------------------------------------------------------------------


def test_bench_with_a_report_dir_under_a_file_exits_2_before_measuring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    import dermassist.bench.runner as runner

    monkeypatch.setattr(runner, "require_artifacts", lambda *a: pytest.fail("the bench began before its settings"))
    a_file = tmp_path / "FILE"
    a_file.write_text("x")
    text = _refused(["bench", "--report-dir", str(a_file / "rep")], caplog)
    assert f"report_dir {a_file}/rep cannot be made: {a_file} is a file" in text and "--report-dir" in text


def test_serve_takes_the_liveness_and_reload_settings_as_flags_over_the_environment() -> None:
    """The guard's liveness bound, reload deadline and exit-when-not-live had environment variables only, while its
    messages named flags that did not exist."""
    from dermassist.cli import build_parser
    from dermassist.guard.config import GuardConfig

    argv = ["serve", "--max-unready-s", "900", "--reload-timeout-s", "45", "--exit-when-not-live"]
    config = GuardConfig.resolve(vars(build_parser(argv).parse_args(argv)),
                                 {"DERMASSIST_MAX_UNREADY_S": "700", "DERMASSIST_RELOAD_TIMEOUT_S": "50"})
    assert (config.max_unready_s, config.reload_timeout_s, config.exit_when_not_live) == (900.0, 45.0, True)
    unset = GuardConfig.resolve(vars(build_parser(["serve"]).parse_args(["serve"])), {"DERMASSIST_MAX_UNREADY_S": "700"})
    assert (unset.max_unready_s, unset.exit_when_not_live) == (700.0, GuardConfig().exit_when_not_live)


def test_serve_refuses_a_liveness_bound_shorter_than_a_normal_recovery(tmp_path: Path, no_tritonserver: None,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    text = _refused(["serve", "--repository", str(tmp_path), "--max-unready-s", "30"], caplog)
    assert "max_unready_s (30 s) must exceed the longest normal recovery" in text


def test_a_page_port_that_is_one_of_the_servers_is_refused_before_the_models_load(
        no_tritonserver: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """DERMASSIST_DEMO_PORT=8000 passed the check (8000 was free), and Gradio failed once the models had loaded."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    monkeypatch.setenv("DERMASSIST_DEMO_PORT", str(free))
    monkeypatch.setenv("DERMASSIST_HTTP_PORT", str(free))
    text = _refused(["demo"], caplog)
    assert f"the demo page's port {free} is also the server's http port (--http-port / DERMASSIST_HTTP_PORT)" in text
