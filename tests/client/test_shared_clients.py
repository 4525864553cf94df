"""Clients shared by threads and tasks (concurrency audit): close() while calls are in flight tells each caller the
client was closed, over gRPC, sync and asyncio (asyncio's callers had got a bare CancelledError, and a TaskGroup's
calls vanished without an error); ready() keeps to one deadline for its two checks; a retry that gives up names the
first attempt's failure too. A stand-in gRPC server on loopback answers slowly or never."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from tritonclient.grpc import service_pb2

from dermassist.base.server import free_ports
from dermassist_client import (
    AsyncDermAssistClient,
    ClientConfigError,
    DermAssistClient,
    DermAssistClientError,
    ServerUnavailableError,
)
from dermassist_client.config import ClientConfig
from dermassist_client.retry import call_with_retries

READY_DELAY_S = 0.8


class _StandIn(grpc.GenericRpcHandler):
    """Answers ServerReady and ModelReady after READY_DELAY_S each, and never answers ModelInfer (``headers``: the
    metadata of each ModelInfer call)."""

    headers: list[dict[str, str]] = []

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        name = handler_call_details.method.rsplit("/", 1)[1]

        async def ready(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            await asyncio.sleep(READY_DELAY_S)
            kind = service_pb2.ServerReadyResponse if name == "ServerReady" else service_pb2.ModelReadyResponse
            return kind(ready=True).SerializeToString()

        async def never(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            _StandIn.headers.append({m.key: m.value for m in context.invocation_metadata() or ()})
            await asyncio.sleep(3600)
            return b""

        if name in ("ServerReady", "ModelReady"):
            return grpc.unary_unary_rpc_method_handler(ready)
        return grpc.unary_unary_rpc_method_handler(never) if name == "ModelInfer" else None


@pytest.fixture
def stand_in() -> Iterator[str]:
    (port,) = free_ports(1)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> grpc.aio.Server:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((_StandIn(),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        return server

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


PICTURE = b"\xff\xd8\xff" + b"never answered" * 10


def test_ready_keeps_to_one_deadline_for_both_checks(stand_in: str) -> None:
    """Each of the two checks had the whole timeout: 1.6 s for timeout 1.0."""
    with DermAssistClient(stand_in, timeout=1.0, retries=0) as client:
        start = time.monotonic()
        with pytest.raises(Exception, match="(?i)deadline"):
            client.ready()
        assert time.monotonic() - start < 1.3

    async def run() -> float:
        async with AsyncDermAssistClient(stand_in, timeout=1.0, retries=0) as aclient:
            start = time.monotonic()
            with pytest.raises(Exception, match="(?i)deadline"):
                await aclient.ready()
            return time.monotonic() - start

    assert asyncio.run(run()) < 1.3
    with DermAssistClient(stand_in, timeout=2.0, retries=0) as client:
        assert client.ready()  # both fit: 1.6 s of 2


def test_closing_an_asyncio_client_tells_its_callers_so_even_under_a_task_group(stand_in: str) -> None:
    async def run() -> list[BaseException]:
        client = AsyncDermAssistClient(stand_in, timeout=60, retries=0)

        async def close_soon() -> None:
            await asyncio.sleep(0.3)
            await client.close()

        caught: list[BaseException] = []
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(4):
                    group.create_task(client.analyze(PICTURE))
                group.create_task(close_soon())
        except* ClientConfigError as errors:
            caught.extend(errors.exceptions)
        return caught

    errors = asyncio.run(run())
    assert len(errors) == 4 and all("this client was closed" in str(e) for e in errors)


def test_a_real_cancellation_of_an_asyncio_call_stays_a_cancellation(stand_in: str) -> None:
    async def run() -> bool:
        async with AsyncDermAssistClient(stand_in, timeout=60, retries=0) as client:
            task = asyncio.create_task(client.analyze(PICTURE))
            await asyncio.sleep(0.3)
            task.cancel()
            await asyncio.wait([task])
            return task.cancelled()

    assert asyncio.run(run())


def test_closing_a_blocking_client_tells_its_callers_at_once_without_retrying(
        stand_in: str, caplog: pytest.LogCaptureFixture) -> None:
    """Each call had first been logged as "the server dropped the call" and retried after a backoff."""
    client = DermAssistClient(stand_in, timeout=60, retries=3)
    outcomes: list[BaseException] = []

    def call() -> None:
        try:
            client.analyze(PICTURE)
        except Exception as e:  # the test looks at what came
            outcomes.append(e)

    threads = [threading.Thread(target=call, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    start = time.monotonic()
    client.close()
    for thread in threads:
        thread.join(10)
    assert time.monotonic() - start < 2.0
    assert len(outcomes) == 4 and all(isinstance(e, ClientConfigError) for e in outcomes)
    assert "dropped the call" not in caplog.text and "retrying" not in caplog.text


def test_a_retry_that_gives_up_names_the_first_attempts_failure_too() -> None:
    """A server that stopped under a call and then refused the retries was told only as "connection refused"."""
    config = ClientConfig(url="h:1", retries=2, backoff_initial_s=0.01)
    failures = iter([ServerUnavailableError("the server dropped the call as it stopped"),
                     ServerUnavailableError("failed to connect: Connection refused"),
                     ServerUnavailableError("failed to connect: Connection refused")])

    def fail(timeout_s: float) -> None:
        raise next(failures)

    with pytest.raises(ServerUnavailableError) as caught:
        call_with_retries(config, fail)
    assert str(caught.value) == ("failed to connect: Connection refused (its first attempt: the server dropped the "
                                 "call as it stopped)")
    def refused(timeout_s: float) -> None:
        raise ServerUnavailableError("failed to connect: Connection refused")

    with pytest.raises(ServerUnavailableError) as again:
        call_with_retries(config, refused)
    assert str(again.value) == "failed to connect: Connection refused"  # the same every time: nothing else to name


def test_each_inference_request_repeats_its_id_in_a_header_the_guard_reads(stand_in: str) -> None:
    """So the audit line of a call that ended before its request was read still names it (concurrency audit 3)."""
    import re

    from dermassist.guard.front import REQUEST_ID_HEADER
    from dermassist_client.transport import REQUEST_ID_HEADER as SENT

    assert SENT == REQUEST_ID_HEADER
    _StandIn.headers.clear()
    with DermAssistClient(stand_in, timeout=0.5, retries=0) as client:
        with pytest.raises(Exception, match=r"\(request [0-9a-f]{32}\)") as caught:
            client.analyze(PICTURE)
    (sent,) = re.findall(r"\(request ([0-9a-f]{32})\)", str(caught.value))
    assert [h.get(REQUEST_ID_HEADER) for h in _StandIn.headers] == [sent]


def test_closing_an_asyncio_http_client_tells_its_callers_so_too(caplog: pytest.LogCaptureFixture) -> None:
    """Its calls had been logged as "server unavailable" and retried before the closed client's error, which no longer
    named the call (review 14)."""
    async def run() -> list[BaseException]:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(30)  # takes the request, never answers
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = AsyncDermAssistClient(f"127.0.0.1:{port}", "http", timeout=20, retries=3)
        calls = [asyncio.create_task(client.analyze(PICTURE)) for _ in range(3)]
        await asyncio.sleep(0.3)
        await client.close()
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        server.close()
        return list(outcomes)

    start = time.monotonic()
    outcomes = asyncio.run(run())
    assert time.monotonic() - start < 5
    assert all(isinstance(e, ClientConfigError) and "this client was closed" in str(e) for e in outcomes), outcomes
    assert all(str(e).startswith("analyzing 1 image(s)") for e in outcomes), outcomes
    assert "server unavailable" not in caplog.text


def test_an_http_call_that_waits_past_its_timeout_for_a_busy_connection_is_told_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every HTTP call runs on one of the client's HTTP_WORKERS threads: one that found none free within its own
    timeout had waited for them unbounded (3, 6 and 9 s for timeout 3 s, review 15)."""
    from dermassist_client import DeadlineExceededError
    from dermassist_client import transport as transport_module

    monkeypatch.setattr(transport_module, "HTTP_WORKERS", 1)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the request, never answers, until the client lets go of the connection
        writer.close()

    server = asyncio.run_coroutine_threadsafe(asyncio.start_server(silent, "127.0.0.1", 0), loop).result(5)
    port = server.sockets[0].getsockname()[1]
    client = DermAssistClient(f"127.0.0.1:{port}", "http", timeout=3.0, retries=0)
    try:
        held: list[BaseException] = []

        def hold() -> None:
            try:
                client.analyze(PICTURE)
            except DermAssistClientError as e:  # its socket's timeout, 3 s
                held.append(e)

        first = threading.Thread(target=hold, daemon=True)
        first.start()  # holds the one connection for 3 s
        time.sleep(0.3)
        start = time.monotonic()
        with pytest.raises(DeadlineExceededError, match="HTTP connections were busy with its other calls"):
            client.analyze(PICTURE, timeout_s=0.5)
        assert time.monotonic() - start < 1.5
        first.join(10)
        assert len(held) == 1 and not isinstance(held[0], ClientConfigError)
    finally:
        client.close()
        # on the server's own loop: closed from this thread it raced the loop's closing of the last connection
        # (asyncio's Server is not thread-safe: "'NoneType' object is not iterable" once in a run)
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_a_cancellation_is_its_callers_only_where_python_can_tell() -> None:
    from dermassist_client import aio_transport

    async def run() -> tuple[bool, bool]:
        task = asyncio.current_task()
        assert task is not None
        before = aio_transport._cancelled_by_its_caller()
        task.cancel()
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            return before, aio_transport._cancelled_by_its_caller()
        return before, False

    assert asyncio.run(run()) == (False, True)


# Each child starts with Python's own Ctrl-C handler, as a program run in a terminal's foreground does: a child of a
# process started in the background (`pytest ... &`) inherits SIGINT ignored, and Ctrl-C would never reach it.
HUNG_CALL = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from dermassist_client import DermAssistClient
client = DermAssistClient(sys.argv[1], "http", timeout=60.0, retries=0)
print("calling", flush=True)
client.analyze(b"\\xff\\xd8\\xff" + b"never answered" * 10)
"""


def test_ctrl_c_on_an_http_call_to_a_hung_server_ends_the_process_at_once() -> None:
    """The HTTP client's worker threads do not hold the process: Ctrl-C while a call waits on a server that never
    answers ended the main thread, and exit then waited for the worker's socket timeout (60 s here; review 15)."""
    import signal
    import socket
    import subprocess
    import sys

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    child = subprocess.Popen([sys.executable, "-c", HUNG_CALL, f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "calling\n"
        connection, _ = listener.accept()  # the call is sent; nothing is ever answered
        time.sleep(0.5)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=20)
        assert "KeyboardInterrupt" in stderr
        assert child.returncode != 0
        connection.close()
    finally:
        child.kill()
        child.wait()
        listener.close()


def test_an_http_client_dropped_without_close_ends_its_threads() -> None:
    """The client's own worker threads had held it for ever: 20 clients dropped without close() left 80 threads and
    40 open files (review 16, finding 4). Collected, a client ends its threads as close() does."""
    import gc
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        before = threading.active_count()
        for _ in range(5):
            client = DermAssistClient(f"127.0.0.1:{port}", "http", timeout=5.0, retries=0)
            assert threading.active_count() > before
            del client
        gc.collect()
        deadline = time.monotonic() + 10
        while threading.active_count() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() == before
    finally:
        listener.close()


CTRL_C_ELSEWHERE = """
import signal, sys, threading, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from dermassist_client import DermAssistClient
client = DermAssistClient(sys.argv[1], "http", timeout=60.0, retries=0)
def elsewhere():  # a Ctrl-C the kernel hands to a thread other than the waiting main thread
    time.sleep(1.0)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
threading.Thread(target=elsewhere, daemon=True).start()
print("calling", flush=True)
client.analyze(b"\\xff\\xd8\\xff" + b"never answered" * 10)
"""


def test_a_ctrl_c_handed_to_another_thread_still_stops_a_waiting_http_call() -> None:
    """A lock wait is interrupted only by a signal to its own thread: a Ctrl-C that reached another thread had been
    acted on only when the call's 60 s ran out (a CI run saw Ctrl-C on a hung call ignored for 20 s). The caller now
    looks at its signals every WAKE_S while it waits, and the client's workers block Ctrl-C and SIGTERM."""
    import socket
    import subprocess
    import sys

    listener = socket.create_server(("127.0.0.1", 0))
    child = subprocess.Popen([sys.executable, "-c", CTRL_C_ELSEWHERE, f"127.0.0.1:{listener.getsockname()[1]}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "calling\n"
        connection, _ = listener.accept()
        started = time.monotonic()
        _, stderr = child.communicate(timeout=30)
        assert "KeyboardInterrupt" in stderr and time.monotonic() - started < 10
        connection.close()
    finally:
        child.kill()
        child.wait()
        listener.close()


GEVENT_CHILD = """
from gevent import monkey
monkey.patch_all()
import signal, sys, time
from dermassist_client import DermAssistClient
client = DermAssistClient(sys.argv[1], "http", timeout=5.0, retries=0)
time.sleep(0.3)  # the workers (greenlets on the main OS thread) have run
print(sorted(s.name for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])), flush=True)
"""


def test_under_gevent_the_workers_leave_the_main_threads_signal_mask_alone() -> None:
    """Monkey-patched by gevent, the workers are greenlets on the main OS thread: blocking Ctrl-C and SIGTERM there
    blocked them for the whole process and every subprocess it started (review 17, finding 3)."""
    import socket
    import subprocess
    import sys

    listener = socket.create_server(("127.0.0.1", 0))
    try:
        run = subprocess.run([sys.executable, "-c", GEVENT_CHILD, f"127.0.0.1:{listener.getsockname()[1]}"],
                             capture_output=True, text=True, timeout=120)
    finally:
        listener.close()
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
