"""Helpers for tests of the guard: certificates made on the spot, guards on free ports, audit reading."""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dermassist.base.server import free_ports
from dermassist.base.server_config import ServerConfig


@dataclass(frozen=True)
class Certificates:
    """PEM files of a throw-away CA, a server certificate for 127.0.0.1/localhost and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_name: str


def make_certificates(folder: Path, client_name: str = "clinic-a") -> Certificates:
    """Issue the certificates with trustme into ``folder``."""
    import trustme

    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert(f"{client_name}.example.org", common_name=client_name)
    paths = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key",
                         folder / "client.pem", folder / "client.key", client_name)
    ca.cert_pem.write_to_path(paths.ca)
    for leaf, cert, key in ((server, paths.server_cert, paths.server_key), (client, paths.client_cert, paths.client_key)):
        leaf.private_key_pem.write_to_path(key)
        for i, blob in enumerate(leaf.cert_chain_pems):
            blob.write_to_path(cert, append=i > 0)
    return paths


def public_config(repository: Path, **kwargs: object) -> ServerConfig:
    """The guard's public settings on three free ports."""
    http, grpc, metrics = free_ports(3)
    return ServerConfig(repository=repository, http_port=http, grpc_port=grpc, metrics_port=metrics, **kwargs)


def audit_lines(path: Path) -> list[dict]:
    """Every JSON line of an audit trail."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@contextmanager
def front_on_loopback(audit: Path, model_infer: Callable[[bytes, Any], Any],
                      report_step_failure: Callable[[str, float], None] = lambda details, sent_at: None) -> Iterator[int]:
    """The gRPC port of a Front on loopback, in its own event loop thread, before a stand-in Triton whose ModelInfer
    is ``model_infer`` (an async grpc.aio handler of the raw request); the front's guard is ready and audits to
    ``audit``."""
    import grpc

    from dermassist.guard.audit import AuditLog
    from dermassist.guard.config import GuardConfig
    from dermassist.guard.front import SERVICE, Front
    from dermassist.guard.health import Readiness

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[grpc.aio.Server, grpc.aio.Server, Front, int]:
        triton = grpc.aio.server()
        triton.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            SERVICE, {"ModelInfer": grpc.unary_unary_rpc_method_handler(model_infer)}),))
        triton_port = triton.add_insecure_port("127.0.0.1:0")
        await triton.start()
        readiness = Readiness()
        readiness.set_ready()
        guard = SimpleNamespace(admin_key="operator", internal_admin_key="internal", readiness=readiness,
                                config=GuardConfig(audit_log=str(audit)), versions={}, audit=AuditLog(audit),
                                stopping=False, report_step_failure=report_step_failure)
        served = Front(guard, grpc.aio.insecure_channel(f"127.0.0.1:{triton_port}"))  # type: ignore[arg-type]
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((served,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return triton, server, served, port

    triton, server, served, port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield port
    finally:
        async def stop() -> None:
            await server.stop(None)
            await triton.stop(None)
            await served.channel.close()
            served.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
