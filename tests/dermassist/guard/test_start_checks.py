"""What an operator audit found at the guard's start: a second serve sharing the public port, a never-ready server
that logged nothing, settings that failed only after the models loaded (or as tracebacks), served versions untold."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2

from dermassist.base.errors import ConfigError, ServerError
from dermassist.base.server import TritonServer, free_ports
from dermassist.base.server_config import ServerConfig
from dermassist.guard.audit import AuditLog
from dermassist.guard.config import MAX_GRPC_MS, GuardConfig
from dermassist.guard.guard import Guard, versions_text
from dermassist.guard.health import Readiness, same_reason
from dermassist.guard.ports import BusyPort, bind_failure
from tests.support.guard import make_certificates


def _guard(tmp_path: Path, name: str = "a", **public: object) -> Guard:
    """A Guard in front of a stand-in server (nothing is started), its public ports free."""
    server = SimpleNamespace(config=ServerConfig(repository=tmp_path, admin_key="k"), pid=os.getpid())
    http, grpc_port = free_ports(2)
    settings: dict[str, object] = {"http_port": http, "grpc_port": grpc_port, **public}
    return Guard(ServerConfig(repository=tmp_path, **settings),  # type: ignore[arg-type]
                 GuardConfig(audit_log=str(tmp_path / f"{name}.jsonl")), server)  # type: ignore[arg-type]


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """A socket listening on a free loopback port (a port another process holds)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held


# --- 1. the public gRPC port is one process's ---------------------------------------------------------------


def test_the_front_refuses_so_reuseport() -> None:
    assert dict(GuardConfig().server_options())["grpc.so_reuseport"] == 0


def test_a_second_front_on_the_same_port_fails_naming_the_port_the_flag_and_the_fix(tmp_path: Path) -> None:
    """gRPC sets SO_REUSEPORT by default: a second serve bound the same port and took half the clients and their
    audit lines."""
    first, second = _guard(tmp_path, "first"), _guard(tmp_path, "second")
    second.public = first.public

    async def main() -> None:
        for guard in (first, second):
            guard.channel = grpc.aio.insecure_channel("127.0.0.1:1")
        server = await first._start_front()
        try:
            await second._start_front()
        finally:
            await server.stop(None)
            for guard in (first, second):
                await guard.channel.close()
                guard.front.close()

    port = first.public.grpc_port
    with pytest.raises(ServerError, match=rf"cannot serve gRPC on 127.0.0.1:{port} \(Address already in use\); .*"
                                          rf"stop what holds port {port} .*--grpc-port / DERMASSIST_GRPC_PORT"):
        asyncio.run(main())
    first.audit.close()
    second.audit.close()


@pytest.mark.parametrize(("field", "flag"), [("grpc_port", "--grpc-port"), ("http_port", "--http-port")])
def test_a_taken_public_port_is_told_before_tritonserver_starts(tmp_path: Path, listening: socket.socket, field: str,
                                                                flag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second serve learnt of its taken port only after the models loaded (minutes on a GPU host)."""
    port = listening.getsockname()[1]
    monkeypatch.setattr(TritonServer, "start", lambda self: pytest.fail("tritonserver started though a port is taken"))
    http, grpc_port = free_ports(2)
    public = ServerConfig(repository=tmp_path, **{"http_port": http, "grpc_port": grpc_port, field: port})
    guard = Guard(public, GuardConfig(audit_log=str(tmp_path / "a.jsonl")))  # its own tritonserver, never started
    with pytest.raises(ServerError, match=rf"127.0.0.1:{port} \(Address already in use\); .*{flag}"):
        asyncio.run(guard.run(asyncio.Event()))


def test_a_port_below_1024_without_privileges_is_told_as_such_not_as_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """EACCES (root here cannot meet it, so the message is built from the errno as the probe gives it)."""
    from dermassist.base import server as server_module

    monkeypatch.setattr(server_module, "unprivileged_port_start", lambda: 1024)
    text = bind_failure([BusyPort("gRPC", "0.0.0.0", 80, "Permission denied", "grpc_port", errno.EACCES),
                         BusyPort("the health endpoint", "0.0.0.0", 8000, "Address already in use", "http_port",
                                  errno.EADDRINUSE)])
    assert "port 80 below 1024 needs privileges (root or CAP_NET_BIND_SERVICE): use a port from 1024 up" in text
    assert "stop what holds port 8000 (another `dermassist serve`? `ss -ltnp 'sport = :8000'` shows which)" in text
    assert "holds port 80 " not in text and "sport = :80'" not in text
    only = bind_failure([BusyPort("gRPC", "0.0.0.0", 443, "Permission denied", "grpc_port", errno.EACCES)])
    assert "stop what holds" not in only and "or pass another --grpc-port / DERMASSIST_GRPC_PORT" in only
    policy = bind_failure([BusyPort("gRPC", "0.0.0.0", 8001, "Permission denied", "grpc_port", errno.EACCES)])
    assert "below 1024" not in policy and "binding port 8001 was denied by a security policy" in policy
    monkeypatch.setattr(server_module, "unprivileged_port_start", lambda: 80)  # a host whose sysctl lowered it
    lowered = bind_failure([BusyPort("gRPC", "0.0.0.0", 443, "Permission denied", "grpc_port", errno.EACCES),
                            BusyPort("gRPC", "0.0.0.0", 79, "Permission denied", "http_port", errno.EACCES)])
    assert "binding port 443 was denied by a security policy" in lowered
    assert "port 79 below 80 needs privileges (root or CAP_NET_BIND_SERVICE): use a port from 80 up" in lowered


def test_the_first_unprivileged_port_is_read_from_the_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno as errno_module

    from dermassist.base import server as server_module

    sysctl = tmp_path / "ip_unprivileged_port_start"
    monkeypatch.setattr(server_module, "UNPRIVILEGED_PORT_START", sysctl)
    assert server_module.unprivileged_port_start() == 1024  # not told: Linux's default
    sysctl.write_text("443\n")
    assert server_module.unprivileged_port_start() == 443
    denied = OSError(errno_module.EACCES, "Permission denied")
    assert "port 80 below 443 needs privileges" in server_module.port_message("grpc_port", "", 80, denied)
    assert "denied by a security policy" in server_module.port_message("grpc_port", "", 8001, denied)


def test_every_taken_public_port_is_told_in_one_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three taken ports took three tries to find, each told in other words."""
    monkeypatch.setattr(TritonServer, "start", lambda self: pytest.fail("tritonserver started though ports are taken"))
    held = [socket.socket() for _ in range(3)]
    try:
        for s in held:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
        http, grpc_port, metrics = (s.getsockname()[1] for s in held)
        public = ServerConfig(repository=tmp_path, http_port=http, grpc_port=grpc_port, metrics_port=metrics)
        guard = Guard(public, GuardConfig(audit_log=str(tmp_path / "a.jsonl")))
        with pytest.raises(ServerError) as refused:
            asyncio.run(guard.run(asyncio.Event()))
    finally:
        for s in held:
            s.close()
    text = str(refused.value)
    assert f"gRPC on 127.0.0.1:{grpc_port} (Address already in use)" in text
    assert f"the health endpoint on 127.0.0.1:{http} (Address already in use)" in text
    assert f"Triton's metrics on 127.0.0.1:{metrics} (Address already in use)" in text
    assert f"stop what holds ports {grpc_port} and {http} and {metrics}" in text
    assert f"ss -ltnp '( sport = :{grpc_port} or sport = :{http} or sport = :{metrics} )'" in text
    assert text.endswith("fix --host / DERMASSIST_HOST or --metrics-host / DERMASSIST_METRICS_HOST")
    assert "--grpc-port / DERMASSIST_GRPC_PORT and --http-port / DERMASSIST_HTTP_PORT and --metrics-port" in text


# --- 2. a server that is never ready says why ----------------------------------------------------------------


def test_a_never_ready_server_logs_each_new_reason_once(caplog: pytest.LogCaptureFixture) -> None:
    failed = ("canary inference failed: INVALID_ARGUMENT: [request id: dermassist-canary-{}] in ensemble 'dermassist', "
              "CLS_INPUT must be (N, 3, 224, 224)")
    readiness = Readiness()
    with caplog.at_level(logging.WARNING, logger="dermassist.guard.health"):
        for canary in range(1, 6):  # one canary every interval while starting: told once
            readiness.set_not_ready(failed.format(canary))
        readiness.set_not_ready("canary inference failed: UNAVAILABLE: Socket closed")  # another reason: told
        readiness.set_not_ready("canary inference failed: UNAVAILABLE: Socket closed")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"not ready: {failed.format(1)}", "not ready: canary inference failed: UNAVAILABLE: Socket closed"]
    assert list(readiness.history) == []  # no flip: it never was ready


def test_a_flip_from_ready_is_still_logged_even_with_the_reason_of_before(caplog: pytest.LogCaptureFixture) -> None:
    readiness = Readiness()
    readiness.set_not_ready("stub exited")
    readiness.set_ready()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dermassist.guard.health"):
        readiness.set_not_ready("stub exited")
    assert [r.getMessage() for r in caplog.records] == ["not ready: stub exited"]


def test_reasons_that_differ_only_in_request_ids_are_the_same() -> None:
    assert same_reason("failed: [request id: dermassist-canary-3] x", "failed: [request id: dermassist-canary-4] x")
    assert same_reason("canary dermassist-canary-3 failed", "canary dermassist-canary-12 failed")
    assert not same_reason("failed: x", "failed: y")


# --- 3. settings that failed late or as tracebacks ---------------------------------------------------------


def test_an_audit_log_that_is_a_folder_or_under_a_file_is_a_config_error(tmp_path: Path) -> None:
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match=rf"audit_log {tmp_path} is a folder; .*--audit-log / DERMASSIST_AUDIT_LOG"):
        GuardConfig(audit_log=str(tmp_path))
    with pytest.raises(ConfigError, match=rf"audit_log {a_file}/audit.jsonl cannot be made: {a_file} is a file.*--audit-log"):
        GuardConfig.resolve({"audit_log": str(a_file / "audit.jsonl")}, {})
    assert GuardConfig(audit_log=str(tmp_path / "new" / "audit.jsonl")).audit_log.endswith("audit.jsonl")


def test_an_audit_log_on_a_device_or_a_named_pipe_is_a_config_error(tmp_path: Path) -> None:
    """/dev/null would keep no audit line, /dev/full would refuse every call, and opening a named pipe with no reader
    yet blocked serve before it logged anything: all refused at start."""
    for device in ("/dev/null", "/dev/full"):
        with pytest.raises(ConfigError, match=rf"audit_log {device} is a device, not a file .*--audit-log"):
            GuardConfig(audit_log=device)
    pipe = tmp_path / "audit.fifo"
    os.mkfifo(pipe)
    with pytest.raises(ConfigError, match=rf"audit_log {pipe} is a named pipe or socket, not a file .*--audit-log"):
        GuardConfig(audit_log=str(pipe))
    with pytest.raises(ConfigError, match=rf"audit log {pipe} is a named pipe"):  # as opened (a pipe made after start)
        AuditLog(pipe)


@pytest.mark.skipif(not Path("/proc/version").is_file(), reason="no /proc here")
def test_an_audit_log_that_cannot_be_appended_to_is_a_config_error_before_anything_starts(tmp_path: Path) -> None:
    """DERMASSIST_AUDIT_LOG=/proc/version: a regular file by its looks, and a bare OSError when opened."""
    config = GuardConfig.resolve({}, {"DERMASSIST_AUDIT_LOG": "/proc/version"})
    with pytest.raises(ConfigError, match=r"audit log /proc/version cannot be appended to \(.+\); .*--audit-log"):
        AuditLog(config.audit_log)
    server = SimpleNamespace(config=ServerConfig(repository=tmp_path, admin_key="k"))
    with pytest.raises(ConfigError, match="/proc/version"):
        Guard(ServerConfig(repository=tmp_path), config, server)  # type: ignore[arg-type]


def test_a_connection_age_past_grpcs_32_bit_limit_is_a_config_error() -> None:
    assert GuardConfig(grpc_max_connection_age=MAX_GRPC_MS).grpc_max_connection_age == 2**31 - 1
    for name in ("grpc_max_connection_age", "grpc_max_connection_age_grace"):
        flag = "--" + name.replace("_", "-")
        too_long: dict[str, Any] = {name: 99_999_999_999}
        with pytest.raises(ConfigError, match=rf"{name} must be .* to 2147483647 .*got 99999999999; .*{flag}"):
            GuardConfig(**too_long)
    with pytest.raises(ConfigError, match="grpc_max_connection_age"):
        GuardConfig(grpc_max_connection_age=True)


# --- 4. TLS files that are not PEM, a host that does not resolve --------------------------------------------


@pytest.mark.parametrize(("field", "flag"), [("tls_cert", "--tls-cert"), ("tls_key", "--tls-key"),
                                             ("tls_client_ca", "--tls-client-ca")])
def test_a_tls_file_that_is_not_pem_is_a_config_error_naming_the_file_and_the_flag(tmp_path: Path, field: str,
                                                                                   flag: str) -> None:
    certs = make_certificates(tmp_path / "certs")
    hostname = tmp_path / "hostname"
    hostname.write_text("dermassist-node-1\n")  # what /etc/hostname holds
    files: dict[str, Any] = {"tls_cert": certs.server_cert, "tls_key": certs.server_key, "tls_client_ca": certs.ca}
    files[field] = hostname
    kind = "private key" if field == "tls_key" else "certificate"
    with pytest.raises(ConfigError, match=rf"{field} file {hostname} is not a PEM {kind}: .*{flag} / DERMASSIST_"):
        GuardConfig(**files)


def test_real_pem_files_pass_and_a_certificate_is_not_a_key(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    assert GuardConfig(tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.ca).mutual_tls
    with pytest.raises(ConfigError, match="tls_key file .* is not a PEM private key"):
        GuardConfig(tls_cert=certs.server_cert, tls_key=certs.server_cert)


def test_the_guard_and_tritonservers_port_checks_give_one_verdict() -> None:
    """And the demo page's (the client's copy: the client imports nothing of the server's packages)."""
    from dermassist.base.server import bind_problem
    from dermassist.guard.config import port_problem
    from dermassist_client.page_address import _bind_error

    (free,) = free_ports(1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        for host, port in (("127.0.0.1", free), ("127.0.0.1", taken.getsockname()[1]), ("[::1]", free),
                           ("nosuchhost.invalid", free)):
            assert (port_problem(host, port) is None) == (bind_problem(host, port) is None), (host, port)
            assert port_problem(host, port) == _bind_error(host, port), (host, port)


def test_a_host_that_does_not_resolve_is_a_config_error_before_tritonserver_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"host nosuchhost.invalid does not resolve .*--host / DERMASSIST_HOST"):
        _guard(tmp_path, host="nosuchhost.invalid")
    assert not (tmp_path / "a.jsonl").exists()  # refused before the audit trail was opened


# --- 5. the served versions are told once --------------------------------------------------------------------


def test_the_served_model_versions_are_logged_once_when_first_ready(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """An extra version folder served by accident shows as a second version of its model."""
    index = service_pb2.RepositoryIndexResponse()
    for name, version in (("prepare", "1"), ("dermassist", "1"), ("prepare", "2"), ("classify", "1")):
        index.models.add(name=name, version=version, state="READY")

    class Triton:
        async def RepositoryIndex(self, request, metadata, timeout):  # Triton's method name
            return index

    guard = _guard(tmp_path)
    guard.triton = Triton()

    async def twice() -> None:
        guard.readiness = Readiness()
        await guard._mark_ready()
        guard.readiness.set_not_ready("stub exited")
        await guard._mark_ready()  # healed, same versions: not told again

    with caplog.at_level(logging.INFO, logger="dermassist.guard.guard"):
        asyncio.run(twice())
    told = [r.getMessage() for r in caplog.records if "model versions" in r.getMessage()]
    assert told == ["serving model versions: classify 1; dermassist 1; prepare 1, 2"]
    assert all(r.levelno == logging.INFO for r in caplog.records if "model versions" in r.getMessage())
    guard.audit.close()


def test_a_failed_recovery_after_which_the_watchdog_finds_the_pipeline_working_counts_as_healed(tmp_path: Path) -> None:
    """A restart's canary failed (a slow first inference), the next canary passed: the next, unrelated incident waited
    4 s instead of 2 s, because the failed record never learnt that the pipeline came back."""
    from dermassist.guard.faults import Recovery, recovery_backoff

    class Triton:
        async def RepositoryIndex(self, request, metadata, timeout):  # Triton's method name
            return service_pb2.RepositoryIndexResponse()

    guard = _guard(tmp_path)
    guard.triton = Triton()
    failed = Recovery("stub exited", "restart", 1.0, error="canary inference failed: DEADLINE_EXCEEDED")
    guard.recoveries.append(failed)

    async def healed_by_the_watchdog() -> None:
        guard.readiness = Readiness()
        await guard._mark_ready()

    asyncio.run(healed_by_the_watchdog())
    assert failed.ready_at is not None and failed.error is not None  # it failed; the pipeline came back after it
    later = failed.ready_at + 120.0  # the pipeline then worked for two minutes
    guard.recoveries.append(Recovery("another fault", "restart", later, error="x"))
    assert recovery_backoff(guard.recoveries, later + 1.0, 60.0) == 2.0
    guard.audit.close()


def test_versions_text_sorts_models_and_versions_numerically() -> None:
    assert versions_text([("b", "10"), ("a", "1"), ("b", "9")]) == "a 1; b 9, 10"
    assert versions_text([]) == "none"


def test_tls_files_grpc_cannot_use_are_blamed_not_the_free_port(tmp_path: Path) -> None:
    """gRPC says only "Failed to bind": with the port free, an unusable key was told as a port another process held."""
    import dataclasses

    certs = make_certificates(tmp_path / "certs")
    guard = _guard(tmp_path)
    guard.config = dataclasses.replace(guard.config, tls_cert=Path(certs.server_cert), tls_key=Path(certs.server_key))
    Path(certs.server_key).write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")

    async def main() -> None:
        guard.channel = grpc.aio.insecure_channel("127.0.0.1:1")
        try:
            await guard._start_front()
        finally:
            await guard.channel.close()
            if getattr(guard, "front", None) is not None:
                guard.front.close()

    port = guard.public.grpc_port
    with pytest.raises(ServerError, match=rf"cannot serve gRPC with TLS on 127.0.0.1:{port} though the port is free: "
                                          r"gRPC could not use the certificate .*server.* with the key .*openssl pkey"):
        asyncio.run(main())
    guard.audit.close()
