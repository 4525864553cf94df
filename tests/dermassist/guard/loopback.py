"""A Front on loopback before a stand-in Triton that answers the admin and metadata calls too (what they received is
kept), with the front's own server options (its request size limit), and a health endpoint serving its /metrics."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import grpc
from tritonclient.grpc import service_pb2

from dermassist.guard.config import UNLIMITED_MESSAGES, GuardConfig
from dermassist.guard.front import SERVICE, Front
from dermassist.guard.guard import audit_trail
from dermassist.guard.health import Readiness, start_health_server
from dermassist.guard.metrics import GuardMetrics

ADMIN_KEY = "operator-key-0123456789"
TRITON_VERSION = "2.51.0"
_ANSWERS = {
    "RepositoryModelLoad": service_pb2.RepositoryModelLoadResponse(),
    "RepositoryModelUnload": service_pb2.RepositoryModelUnloadResponse(),
    "RepositoryIndex": service_pb2.RepositoryIndexResponse(),
    "LogSettings": service_pb2.LogSettingsResponse(),
    "ModelMetadata": service_pb2.ModelMetadataResponse(name="step", platform="python"),
    "ModelReady": service_pb2.ModelReadyResponse(ready=True),
    "ServerMetadata": service_pb2.ServerMetadataResponse(name="triton", version=TRITON_VERSION,
                                                         extensions=["model_repository", "parameters"]),
}


async def _answer_infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.sleep(0)
    return service_pb2.ModelInferResponse(model_name="dermassist").SerializeToString()


@contextmanager
def front_before_stand_in(audit: Path, config: GuardConfig | None = None, *,
                          model_infer: Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]] = _answer_infer,
                          report_step_failure: Callable[[str, float], None] = lambda details, sent_at: None,
                          ) -> Iterator[SimpleNamespace]:
    """The front's address, its Front, what the stand-in Triton received (method, raw request), the health
    endpoint's address (its /metrics: the front's) and the event loop they run on (readiness changes go through it).
    ``model_infer``: the stand-in's ModelInfer (an async grpc.aio handler of the raw request); ``report_step_failure``:
    what the front's guard does with a failed step."""
    config = config or GuardConfig(audit_log=str(audit))
    received: list[tuple[str, bytes]] = []
    audit_failures: list[str] = []  # what the front told its guard of audit lines it could not write
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def handler(name: str):
        async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            received.append((name, request))
            return _ANSWERS[name].SerializeToString()
        return grpc.unary_unary_rpc_method_handler(answer)

    async def start() -> tuple[grpc.aio.Server, grpc.aio.Server, Front, int, asyncio.Server]:
        triton = grpc.aio.server()
        handlers = {name: handler(name) for name in _ANSWERS}
        handlers["ModelInfer"] = grpc.unary_unary_rpc_method_handler(model_infer)
        triton.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        triton_port = triton.add_insecure_port("127.0.0.1:0")
        await triton.start()
        readiness = Readiness()
        readiness.set_ready()
        metrics = GuardMetrics()
        identity_reads: list[str] = []  # what the front told the guard of the served identity, in order

        guard = SimpleNamespace(admin_key=ADMIN_KEY, internal_admin_key="internal", readiness=readiness, healing_a_hang=False,
                                config=config, versions={}, identity={}, audit=audit_trail(str(audit), metrics), stopping=False,
                                report_step_failure=report_step_failure, report_audit_failure=audit_failures.append,
                                models_changing=lambda: identity_reads.append("forget") or ({}, True, 0),
                                models_unchanged=lambda before: identity_reads.append("restore"),
                                models_changed=lambda: identity_reads.append("changed"),
                                read_identity_soon=lambda: identity_reads.append("read"), identity_reads=identity_reads,
                                copy=None)  # a tritonserver it was given: loads read the folder itself
        front = Front(guard, grpc.aio.insecure_channel(f"127.0.0.1:{triton_port}", options=UNLIMITED_MESSAGES),  # type: ignore[arg-type]
                      metrics)
        server = grpc.aio.server(options=config.server_options())
        server.add_generic_rpc_handlers((front,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        health = await start_health_server("127.0.0.1", 0, readiness, front.metrics.text)
        return triton, server, front, port, health

    triton, server, front, port, health = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    http_port = health.sockets[0].getsockname()[1]
    try:
        yield SimpleNamespace(address=f"127.0.0.1:{port}", front=front, received=received, audit=audit,
                              audit_failures=audit_failures,
                              http_address=f"127.0.0.1:{http_port}", loop=loop)
    finally:
        async def stop() -> None:
            health.close()
            await server.stop(None)
            await triton.stop(None)
            await front.channel.close()
            front.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
