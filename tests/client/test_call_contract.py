"""What a caller of the SDK and the command line is promised: one deadline per call, settings refused up front, TLS
mistakes named, no stale output left looking current, exit codes and JSON records that lose no input."""
from __future__ import annotations

import asyncio
import datetime
import http.server
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import trustme
from PIL import Image
from tritonclient.utils import InferenceServerException

from dermassist_client import (
    AsyncDermAssistClient,
    ClientConfig,
    ClientConfigError,
    ConnectionSetupError,
    DeadlineExceededError,
    DermAssistClient,
    InvalidImageError,
    PartialBatchError,
    ServerUnavailableError,
)
from dermassist_client.cli import EXIT_FAILED, EXIT_UNREACHABLE, build_parser, main, summary_line
from dermassist_client.config import certificate_dates_problem
from dermassist_client.images import encode_image
from dermassist_client.interop import InteropRun
from dermassist_client.result import build_result
from dermassist_client.retry import call_with_retries
from dermassist_client.translate import translate
from dermassist_client.transport import RawAnswer


def _outputs(n: int, assessable: bool = True) -> dict[str, np.ndarray]:
    """n rows whose top class is MEL (index 3, p=0.65), a lesion found, assessable as asked."""
    probs = np.full((n, 8), 0.05, np.float32)
    probs[:, 3] = 0.65
    return {"PROBABILITIES": probs, "MASK": np.zeros((n, 256, 256), np.uint8),
            "BBOX": np.tile(np.array([[10, 20, 30, 40]], np.int32), (n, 1)),
            "LESION_FRACTION": np.full((n, 1), 0.5, np.float32),
            "REFER": np.full((n, 1), True), "REFER_SCORE": np.full((n, 1), 0.75, np.float32),
            "ASSESSABLE": np.full((n, 1), assessable), "NOTE": np.array([[b""]] * n, dtype=object)}


def _png() -> bytes:
    return encode_image(Image.new("RGB", (60, 40), (150, 100, 90))).data


# --- 2: one deadline for the whole public call ---------------------------------------------------------------------

class _SlowTransport:
    """Answers each request after ``delay`` s (or fails at its deadline, as gRPC does), refusing requests holding
    b"bad"."""

    def __init__(self, delay: float = 0.1) -> None:
        self.delay = delay
        self.timeouts: list[float] = []

    def infer(self, data: list[bytes], with_crop: bool, timeout_s: float, request_id: str) -> RawAnswer:
        self.timeouts.append(timeout_s)
        time.sleep(min(self.delay, timeout_s))
        if timeout_s < self.delay:
            raise DeadlineExceededError("no answer within the deadline")
        if b"bad" in data:
            raise InvalidImageError("the server rejected the image: IMAGE row 0: too small", "IMAGE row 0: too small")
        return RawAnswer(_outputs(len(data)), "dermassist", "1", request_id)

    async def ainfer(self, data: list[bytes], with_crop: bool, timeout_s: float, request_id: str) -> RawAnswer:
        return await asyncio.to_thread(self.infer, data, with_crop, timeout_s, request_id)


def test_analyze_batch_shares_one_deadline_across_its_requests() -> None:
    """8 requests of 0.1 s under timeout 0.3: the old code gave each request its own 0.3 s and took 0.8 s."""
    client = DermAssistClient("127.0.0.1:1", timeout=0.3, retries=0, max_batch_size=1)
    client._transport = fake = _SlowTransport()
    with pytest.raises(DeadlineExceededError):
        client.analyze_batch([_png()] * 8)
    assert len(fake.timeouts) <= 4 and fake.timeouts == sorted(fake.timeouts, reverse=True)


def test_the_one_image_resends_after_a_refusal_share_the_calls_deadline() -> None:
    """A refused request of 4 is resent image by image: 5 requests of 0.1 s do not fit in 0.3 s."""
    client = DermAssistClient("127.0.0.1:1", timeout=0.3, retries=0, max_batch_size=4)
    client._transport = fake = _SlowTransport()
    with pytest.raises(DeadlineExceededError):
        client.analyze_batch([_png(), b"bad", _png(), _png()])
    assert max(fake.timeouts[1:]) < 0.25  # every resend got what was left of the call's 0.3 s, none a fresh 0.3 s


def test_the_asyncio_batch_shares_one_deadline_too() -> None:
    """Requests of 0.2 s under timeout 0.3: the refused request's resends start with 0.1 s left, too little."""
    aclient = AsyncDermAssistClient("127.0.0.1:1", timeout=0.3, retries=0, max_batch_size=4)
    fake = _SlowTransport(delay=0.2)
    aclient._transport = type("T", (), {"infer": staticmethod(fake.ainfer)})()
    with pytest.raises(DeadlineExceededError):
        asyncio.run(aclient.analyze_batch([_png(), b"bad", _png(), _png()] * 2))
    # both requests refused, then resends with what was left (how many start before it runs out is the scheduler's)
    assert len(fake.timeouts) >= 3 and max(fake.timeouts[2:]) < 0.15


def test_a_calls_own_timeout_replaces_the_configs() -> None:
    """timeout_s given to one call bounds that call (the DICOM node answers within its own time); None keeps the
    config's 30 s."""
    client = DermAssistClient("127.0.0.1:1", timeout=30, retries=0)
    client._transport = fake = _SlowTransport(delay=0.5)
    with pytest.raises(DeadlineExceededError):
        client.analyze(_png(), timeout_s=0.2)
    assert fake.timeouts[0] <= 0.2
    client.analyze(_png())
    assert fake.timeouts[1] > 29
    client.analyze_batch([_png()], timeout_s=5)
    assert 4 < fake.timeouts[2] <= 5


def test_the_asyncio_calls_take_their_own_timeout_too() -> None:
    aclient = AsyncDermAssistClient("127.0.0.1:1", timeout=30, retries=0)
    fake = _SlowTransport(delay=0.5)
    aclient._transport = type("T", (), {"infer": staticmethod(fake.ainfer)})()
    with pytest.raises(DeadlineExceededError):
        asyncio.run(aclient.analyze(_png(), timeout_s=0.2))
    with pytest.raises(DeadlineExceededError):
        asyncio.run(aclient.analyze_batch([_png()], timeout_s=0.2))
    assert max(fake.timeouts) <= 0.2


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True, "5"])
def test_a_calls_timeout_that_cannot_work_is_refused_by_name(timeout) -> None:
    client = DermAssistClient("127.0.0.1:1")
    client._transport = fake = _SlowTransport()
    with pytest.raises(ClientConfigError, match=r"timeout_s must be a positive number of seconds .*got"):
        client.analyze(_png(), timeout_s=timeout)
    assert fake.timeouts == []


# --- 3: settings that cannot work are refused --------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, fragment", [
    ({"timeout_s": float("inf")}, "timeout_s must be a positive number of seconds up to 2,000,000 \\(about 23 days; a finite"),
    ({"timeout_s": 1e10}, "timeout_s must be a positive number of seconds up to 2,000,000"),  # it overflowed gRPC's deadline
    ({"keepalive_time_s": 2_000_001}, "keepalive_time_s must be a positive number of seconds up to 2,000,000"),
    ({"timeout_s": float("nan")}, "timeout_s must be a positive number"),
    ({"timeout_s": True}, "not a bool"),
    ({"backoff_max_s": float("inf")}, "backoff_max_s must be a positive number"),
    ({"retries": True}, "retries must be an integer >= 0 \\(not a bool\\), got True"),
    ({"max_batch_size": True}, "max_batch_size must be between 1"),
])
def test_config_refuses_infinite_numbers_and_bools(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ClientConfigError, match=fragment):
        ClientConfig(url="h:1", **kwargs)


# --- 6: TLS mistakes named, permanent ones not retried ------------------------------------------------------------

@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pems")
    ca, other = trustme.CA(), trustme.CA()
    server, client, rogue = ca.issue_cert("127.0.0.1", "localhost"), ca.issue_cert("c.example"), other.issue_cert("r")
    now, day = datetime.datetime.now(datetime.UTC), datetime.timedelta(days=1)
    # signed by the right CA, out of their dates: expired yesterday, valid from tomorrow
    expired = ca.issue_cert("127.0.0.1", not_before=now - 30 * day, not_after=now - day)
    future = ca.issue_cert("127.0.0.1", not_before=now + day, not_after=now + 30 * day)
    paths = {name: folder / name for name in ("ca.pem", "client.pem", "client.key", "rogue.key", "text.pem")}
    ca.cert_pem.write_to_path(paths["ca.pem"])
    client.cert_chain_pems[0].write_to_path(paths["client.pem"])
    client.private_key_pem.write_to_path(paths["client.key"])
    rogue.private_key_pem.write_to_path(paths["rogue.key"])
    paths["text.pem"].write_text("not a certificate\n")
    return {**paths, "server": server, "expired": expired, "future": future, "ca": ca}


def test_tls_files_are_checked_when_the_config_is_made(pems: dict[str, Any]) -> None:
    with pytest.raises(ClientConfigError, match=f"root_certificates file {pems['text.pem']} holds no PEM certificate"):
        ClientConfig(url="h:1", ssl=True, root_certificates=pems["text.pem"])
    with pytest.raises(ClientConfigError, match=f"private_key file {pems['rogue.key']} is not the key of the certificate"):
        ClientConfig(url="h:1", ssl=True, private_key=pems["rogue.key"], certificate_chain=pems["client.pem"])
    with pytest.raises(ClientConfigError, match=f"certificate_chain file {pems['client.key']} holds no PEM certificate"):
        ClientConfig(url="h:1", ssl=True, private_key=pems["client.key"], certificate_chain=pems["client.key"])
    with pytest.raises(ClientConfigError, match=f"private_key file {pems['ca.pem']} is not an unencrypted PEM"):
        ClientConfig(url="h:1", ssl=True, private_key=pems["ca.pem"], certificate_chain=pems["client.pem"])
    good = ClientConfig(url="h:1", ssl=True, root_certificates=pems["ca.pem"], private_key=pems["client.key"],
                        certificate_chain=pems["client.pem"])
    assert good.private_key == pems["client.key"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def grpc_ports(pems: dict[str, Any]) -> Iterator[dict[str, int]]:
    """A plaintext gRPC server, TLS ones (no services: any call is UNIMPLEMENTED) with a valid, an expired and a
    not yet valid certificate of the CA ca.pem, and an HTTP/1 server."""
    ports = {"plain": _free_port(), "tls": _free_port(), "expired": _free_port(), "future": _free_port(),
             "http1": _free_port()}
    plain = grpc.server(futures.ThreadPoolExecutor(2))
    plain.add_insecure_port(f"127.0.0.1:{ports['plain']}")
    tls_servers = []
    for name, leaf in (("tls", pems["server"]), ("expired", pems["expired"]), ("future", pems["future"])):
        tls = grpc.server(futures.ThreadPoolExecutor(2))
        tls.add_secure_port(f"127.0.0.1:{ports[name]}", grpc.ssl_server_credentials(
            [(leaf.private_key_pem.bytes(), leaf.cert_chain_pems[0].bytes())]))
        tls_servers.append(tls)
    http1 = http.server.ThreadingHTTPServer(("127.0.0.1", ports["http1"]), http.server.BaseHTTPRequestHandler)
    http1.RequestHandlerClass.log_message = lambda *args: None  # type: ignore[method-assign]
    threading.Thread(target=http1.serve_forever, daemon=True).start()
    for server in (plain, *tls_servers):
        server.start()
    yield ports
    for server in (plain, *tls_servers):
        server.stop(0)
    http1.shutdown()


@pytest.mark.parametrize("port, kwargs, fragment", [
    ("plain", {"ssl": True}, "the server does not serve TLS on this port: drop --ssl"),
    ("tls", {"ssl": True, "root_certificates": "other"}, "is not signed by the CA given"),
    ("http1", {}, "this looks like an HTTP/1 port \\(DermAssist's health port\\?\\), not gRPC"),
])
def test_connection_mistakes_are_named_and_not_retried(grpc_ports: dict[str, int], pems: dict[str, Any],
                                                       tmp_path: Path, port: str, kwargs: dict[str, Any],
                                                       fragment: str, caplog: pytest.LogCaptureFixture) -> None:
    if kwargs.get("root_certificates") == "other":
        trustme.CA().cert_pem.write_to_path(tmp_path / "other.pem")
        kwargs = {**kwargs, "root_certificates": tmp_path / "other.pem"}
    with caplog.at_level(logging.DEBUG, logger="dermassist_client.retry"), \
            DermAssistClient(f"127.0.0.1:{grpc_ports[port]}", timeout=10, retries=3, backoff_initial_s=1.0, **kwargs) as c:
        with pytest.raises(ConnectionSetupError, match=fragment) as info:
            c.health()
    assert isinstance(info.value, ServerUnavailableError)  # callers that caught unavailability still do
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]  # one attempt: retries=3 were allowed


# what the CA-is-wrong advice said for a certificate the right CA signed, which sent integrators swapping CA files
_NOT_THE_CA = "not signed by the CA given"
_EXPIRED = ("a certificate of the server's chain has expired, most often the server's own TLS certificate: its "
            "operator must renew it (changing the CA here does not help)")
_NOT_YET_VALID = "a certificate of the server's chain is not valid yet: check this machine's clock"


@pytest.mark.parametrize("port, fragment", [("expired", _EXPIRED), ("future", _NOT_YET_VALID)], ids=["expired", "future"])
def test_a_server_certificate_out_of_its_dates_is_named_and_the_ca_is_not_blamed(
        grpc_ports: dict[str, int], pems: dict[str, Any], port: str, fragment: str) -> None:
    with DermAssistClient(f"127.0.0.1:{grpc_ports[port]}", timeout=10, retries=3, backoff_initial_s=1.0, ssl=True,
                          root_certificates=pems["ca.pem"]) as c:
        with pytest.raises(ConnectionSetupError) as info:
            c.health()
    message = str(info.value)
    assert fragment in message and _NOT_THE_CA not in message, message
    assert "CERTIFICATE_VERIFY_FAILED" in message  # gRPC's own words are kept, in brackets


# gRPC's texts (grpcio 1.x, BoringSSL) as the audit and this machine saw them, and Python's ssl (protocol http)
_GRPC_TLS = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:9362: Tls handshake failed "
             "(TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:"
             "CERTIFICATE_VERIFY_FAILED: {}: OK")
_PYTHON_TLS = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {} (_ssl.c:1006)"


@pytest.mark.parametrize("form", [_GRPC_TLS, _PYTHON_TLS], ids=["grpc", "python-ssl"])
@pytest.mark.parametrize("reason, advice", [
    ("certificate has expired", _EXPIRED),
    ("certificate is not yet valid", _NOT_YET_VALID),
    ("unable to get local issuer certificate", "the server's TLS certificate is " + _NOT_THE_CA),  # the CA is wrong
    ("self signed certificate in certificate chain", "the server's TLS certificate is " + _NOT_THE_CA),
], ids=["expired", "not-yet-valid", "other-ca", "self-signed"])
def test_each_certificate_verify_failure_gets_its_own_advice(form: str, reason: str, advice: str) -> None:
    text = form.format(reason)
    error = (InferenceServerException(text, status="StatusCode.UNAVAILABLE") if form is _GRPC_TLS
             else OSError(text))
    translated = translate(error, "health check", "localhost:9362")
    message = str(translated)
    assert isinstance(translated, ConnectionSetupError)
    assert message.startswith(f"health check: cannot connect to localhost:9362: {advice}") and message.endswith(
        f" ({text})"), message
    assert message.count("CERTIFICATE_VERIFY_FAILED") == 1  # one piece of advice, then gRPC's or ssl's words


def test_a_client_certificate_out_of_its_dates_is_named_when_a_mutual_tls_server_refuses_it(
        pems: dict[str, Any], tmp_path: Path) -> None:
    """The server refuses an expired client certificate with no word the client can read ("Socket closed"): the client
    looks at its own certificate's dates and says so, instead of the generic CA advice."""
    ca = pems["ca"]
    now, day = datetime.datetime.now(datetime.UTC), datetime.timedelta(days=1)
    stale = ca.issue_cert("c.example", not_before=now - 30 * day, not_after=now - day)
    stale.cert_chain_pems[0].write_to_path(tmp_path / "stale.pem")
    stale.private_key_pem.write_to_path(tmp_path / "stale.key")
    port = _free_port()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_secure_port(f"127.0.0.1:{port}", grpc.ssl_server_credentials(
        [(pems["server"].private_key_pem.bytes(), pems["server"].cert_chain_pems[0].bytes())],
        root_certificates=ca.cert_pem.bytes(), require_client_auth=True))
    server.start()
    try:
        with DermAssistClient(f"127.0.0.1:{port}", timeout=10, retries=0, ssl=True, root_certificates=pems["ca.pem"],
                              private_key=tmp_path / "stale.key", certificate_chain=tmp_path / "stale.pem") as c:
            with pytest.raises(ServerUnavailableError) as info:
                c.health()
    finally:
        server.stop(0)
    message = str(info.value)
    assert f"the client certificate {tmp_path / 'stale.pem'} expired on " in message, message
    assert "check the CA and that the server trusts the client certificate" not in message


def test_certificate_dates_are_read_from_the_pem_file(pems: dict[str, Any], tmp_path: Path) -> None:
    ca = pems["ca"]
    start = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    leaf = ca.issue_cert("c.example", not_before=start, not_after=start + datetime.timedelta(days=10))
    leaf.cert_chain_pems[0].write_to_path(tmp_path / "leaf.pem")
    at = start.timestamp()
    assert certificate_dates_problem(tmp_path / "leaf.pem", now=at - 1) == "is not valid until Jan  2 03:04:05 2030 GMT"
    assert certificate_dates_problem(tmp_path / "leaf.pem", now=at + 86400) == ""
    assert certificate_dates_problem(tmp_path / "leaf.pem", now=at + 10 * 86400 + 1) == "expired on Jan 12 03:04:05 2030 GMT"
    assert certificate_dates_problem(pems["text.pem"]) == ""  # unreadable: the TLS library says what is wrong
    assert certificate_dates_problem(tmp_path / "missing.pem") == ""


def test_a_permanent_connection_failure_is_raised_at_the_first_attempt() -> None:
    calls: list[float] = []

    def fail(timeout_s: float) -> None:
        calls.append(timeout_s)
        raise ConnectionSetupError("the server does not serve TLS on this port")

    with pytest.raises(ConnectionSetupError):
        call_with_retries(ClientConfig(url="h:1", retries=3, backoff_initial_s=0.01), fail)
    assert len(calls) == 1


# --- 7: a closed client says so ------------------------------------------------------------------------------------

def test_a_closed_client_says_it_was_closed() -> None:
    client = DermAssistClient("127.0.0.1:1", retries=0)
    client.close()
    with pytest.raises(ClientConfigError, match="this client was closed"):
        client.analyze(_png())

    async def closed_async() -> None:
        async with AsyncDermAssistClient("127.0.0.1:1", retries=0) as aclient:
            pass
        await aclient.health()

    with pytest.raises(ClientConfigError, match="this client was closed"):
        asyncio.run(closed_async())


# --- 8: a refusal names the caller's index, not the row of the resend ----------------------------------------------

def test_a_refusal_in_a_batch_names_the_callers_index_and_no_resend_row() -> None:
    client = DermAssistClient("127.0.0.1:1", retries=0, max_batch_size=4)
    client._transport = _SlowTransport()
    with pytest.raises(PartialBatchError) as info:
        client.analyze_batch([_png(), _png(), b"bad"])
    message = str(info.value)
    assert "image 2 (<3 bytes>): the server rejected the image: too small" in message
    assert "row 0" not in message
    assert info.value.results[2].reason == "too small"


# --- 5: no class named as a diagnosis when none is given ----------------------------------------------------------

def test_an_image_without_a_diagnosis_names_no_class_as_one() -> None:
    summary = build_result(_outputs(1, assessable=False), 0, (60, 40), "dermassist", "1").to_dict()
    assert summary["diagnosis_given"] is False and summary["label"] is None and summary["label_name"] is None
    assert summary["top_class"] == "MEL" and summary["top_class_name"] == "Melanoma"
    line = summary_line("black.png", summary)
    # not assessable: no class and no figure to read, not even as 'highest class ... (not a diagnosis)'
    assert "; no diagnosis given; lesion 50.0% of image" in line and "(Melanoma)" not in line
    assert "MEL" not in line and "p=" not in line and "highest class" not in line
    given = build_result(_outputs(1), 0, (60, 40), "dermassist", "1").to_dict()
    assert given["label"] == "MEL" and "; MEL (Melanoma) p=0.650;" in summary_line("a.png", given)


# --- 1 and 4: the command line ------------------------------------------------------------------------------------

class _CliClient:
    """Stands in for DermAssistClient: 'bad' paths are refused, 'down' ones find no server; counts its calls."""

    calls: list[str] = []
    is_ready = True  # what ready() says

    def __init__(self, url: str, protocol: str, **options: Any) -> None:
        type(self).calls = []

    def ready(self) -> bool:
        self.calls.append("ready?")
        return self.is_ready

    def __enter__(self) -> _CliClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def analyze(self, path: str) -> Any:
        self.calls.append(path)
        if "down" in path:
            raise ServerUnavailableError(f"analyzing {path}: cannot connect to h:1; is the server running?")
        if "bad" in path:
            raise InvalidImageError(f"{path} is not an image")
        if "hung" in path:
            raise DeadlineExceededError(f"analyzing {path}: no answer from h:1 within the deadline; raise timeout")
        if path.endswith("trips.dcm"):  # a fault no check foresaw (a header a decoder trips over)
            raise AttributeError("'FileDataset' object has no attribute 'Rows'")
        return build_result(_outputs(1, assessable="cup" not in path), 0, (60, 40), "dermassist", "1")


@pytest.fixture
def cli_client(monkeypatch: pytest.MonkeyPatch) -> type[_CliClient]:
    import dermassist_client.client

    monkeypatch.setattr(dermassist_client.client, "DermAssistClient", _CliClient)
    return _CliClient


@pytest.mark.parametrize(("order", "ready", "code", "called"), [
    (["hung.png", "a.png", "b.png"], False, 3, ["hung.png", "ready?"]),  # hung from the start: stop, once
    (["hung.png", "a.png", "b.png"], True, 1, ["hung.png", "ready?", "a.png", "b.png"]),  # slow, but it says ready
    (["a.png", "hung.png", "b.png"], False, 1, ["a.png", "hung.png", "b.png"]),  # it answered: one picture's failure
])
def test_a_server_that_answers_nothing_within_the_deadline_stops_the_run_unless_it_says_it_is_ready(
        cli_client: type[_CliClient], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        order: list[str], ready: bool, code: int, called: list[str]) -> None:
    """A server that took calls and never answered cost every picture its whole deadline (100 pictures, 50 minutes)
    and ended with exit 1, as if each picture had failed on its own (failure audit 6)."""
    monkeypatch.setattr(cli_client, "is_ready", ready)
    assert main(["analyze", *order, "--json"]) == code
    out = capsys.readouterr()
    assert cli_client.calls == called
    if code == 3:
        assert ("stopped: the server answered nothing within the deadline and did not say it was ready, so 2 more "
                "file(s) were not tried") in out.err
        records = [json.loads(line) for line in out.out.splitlines()]
        assert [r["error"]["kind"] for r in records] == ["DeadlineExceededError", "NotTried", "NotTried"]


def test_a_run_that_writes_no_bundle_removes_the_earlier_one(cli_client: type[_CliClient], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    picture = tmp_path / "good.png"
    Image.new("RGB", (60, 40), (150, 100, 90)).save(picture)
    bundle = tmp_path / "out.json"
    assert main(["analyze", str(picture), "--fhir-out", str(bundle), "--patient-id", "PATIENT-A"]) == 0
    assert "PATIENT-A" in bundle.read_text()
    capsys.readouterr()
    assert main(["analyze", "bad.png", "--fhir-out", str(bundle), "--patient-id", "PATIENT-B"]) == EXIT_FAILED
    assert not bundle.exists()
    err = capsys.readouterr().err
    assert f"no FHIR bundle was written (no image was answered); the earlier file {bundle} was removed" in err
    run = InteropRun(cli_client("h:1", "grpc"), fhir_out=bundle)
    assert run.finish() is None and run.removed_stale is None  # nothing there: nothing to remove


def test_fhir_out_never_replaces_or_removes_a_file_that_is_not_an_earlier_bundle(
        cli_client: type[_CliClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--fhir-out lesion.jpg lesion.jpg` overwrote the picture with JSON, and with the server down removed it (fuzz
    audit 3): refused up front (exit 2, nothing analysed), as is any file that is no FHIR Bundle."""
    picture = tmp_path / "lesion.png"
    Image.new("RGB", (60, 40), (150, 100, 90)).save(picture)
    before = picture.read_bytes()
    report = tmp_path / "report.txt"
    report.write_text("the ward's notes\n")
    link = tmp_path / "same.png"
    link.symlink_to(picture)
    for target, words in ((picture, "is one of the files to analyse"), (link, "is one of the files to analyse"),
                          (report, "exists and is not a FHIR Bundle")):
        assert main(["analyze", str(picture), "--fhir-out", str(target)]) == 2
        assert words in capsys.readouterr().err and cli_client.calls == []  # nothing analysed
    assert picture.read_bytes() == before and report.read_text() == "the ward's notes\n"
    import os

    pipe = tmp_path / "bundle_pipe.json"
    os.mkfifo(pipe)  # no writer: opening it to look would block (review 12.1)
    assert main(["analyze", str(picture), "--fhir-out", str(pipe)]) == 2
    assert "bundle_pipe.json is a named pipe (FIFO), not a regular file" in capsys.readouterr().err and cli_client.calls == []
    bundle = tmp_path / "bundle.json"
    bundle.write_text('{"resourceType": "Bundle", "type": "transaction", "entry": []}')
    assert main(["analyze", str(picture), "--fhir-out", str(bundle), "--patient-id", "P"]) == 0  # an earlier Bundle
    assert '"resourceType": "Bundle"' in bundle.read_text() and '"P"' in bundle.read_text()


def test_an_unforeseen_fault_costs_its_file_not_the_batch_or_its_bundle(cli_client: type[_CliClient], tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A DICOM file without Rows ended the batch with a traceback: the files after it and the FHIR Bundle were lost."""
    bundle, first, last = tmp_path / "out.json", tmp_path / "a.png", tmp_path / "a2.png"
    for picture in (first, last):
        Image.new("RGB", (60, 40), (150, 100, 90)).save(picture)
    argv = ["analyze", str(first), "trips.dcm", str(last), "--json", "--fhir-out", str(bundle), "--patient-id", "P-1"]
    assert main(argv) == EXIT_FAILED
    out = capsys.readouterr()
    records = [json.loads(text) for text in out.out.splitlines()]
    assert [r["image"] for r in records] == [str(first), "trips.dcm", str(last)] and cli_client.calls[-1] == str(last)
    assert records[1]["error"]["kind"] == "AttributeError" and "a DermAssist fault: report it" in out.err
    reports = [e for e in json.loads(bundle.read_text())["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
    assert "Traceback" not in out.err and len(reports) == 2
    assert (f"FHIR bundle written to {bundle}: 2 of 3 image(s); the 1 other(s) got no result (above) and are not in "
            "it: analyse them again into another file") in out.err  # a partial Bundle says so (failure audit 4)
    assert main(["analyze", str(first), "--fhir-out", str(bundle), "--patient-id", "P-1"]) == 0
    assert capsys.readouterr().err.strip().endswith(f"FHIR bundle written to {bundle}: 1 of 1 image(s)")


def test_a_picture_not_assessable_shows_no_score_in_the_text_line_and_every_field_in_json(
        cli_client: type[_CliClient], capsys: pytest.CaptureFixture[str]) -> None:
    """A coffee cup: the text line says NOT ASSESSABLE - REFER without the refer score (75%) or a class figure, as the
    demo banner; --json is the raw contract and keeps the score and the probabilities."""
    assert main(["analyze", "cup.png"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("cup.png: NOT ASSESSABLE - REFER (the picture could not be assessed); no diagnosis given;")
    for withheld in ("refer score", "75.0%", "p=", "MEL", "highest class"):
        assert withheld not in line
    assert main(["analyze", "cup.png", "--json"]) == 0
    (record,) = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert record["assessable"] is False and record["refer"] is True and record["refer_score"] == 0.75
    assert record["top_class"] == "MEL" and record["probabilities"]["MEL"] == pytest.approx(0.65)


def test_an_unreachable_server_stops_the_run_with_its_own_exit_code(cli_client: type[_CliClient],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["analyze", "a.png", "down1.png", "a2.png", "bad.png", "--json"]
    assert main(argv) == EXIT_UNREACHABLE
    assert cli_client.calls == ["a.png", "down1.png"]  # stopped at the first failure to reach the server
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["image"] for r in records] == ["a.png", "down1.png", "a2.png", "bad.png"]  # no input lost
    assert [r.get("error", {}).get("kind") for r in records] == [None, "ServerUnavailableError", "NotTried", "NotTried"]
    assert "2 more file(s) were not tried" in captured.err and captured.err.count("FAILED") == 1


def test_http_to_a_grpc_port_stops_the_run_as_a_wrong_port_with_exit_3(grpc_ports: dict[str, int], tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The real client (no stand-in): --protocol http against a gRPC port is a wrong port like any other, so the run
    stops at the first image and the rest are listed as not tried (it used to try every file and exit 1)."""
    pictures = []
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_bytes(_png())
        pictures.append(str(tmp_path / name))
    argv = ["analyze", *pictures, "--json", "--url", f"127.0.0.1:{grpc_ports['plain']}", "--protocol", "http"]
    assert main(argv) == EXIT_UNREACHABLE
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["error"]["kind"] for r in records] == ["ConnectionSetupError", "NotTried", "NotTried"]
    assert "use protocol grpc" in records[0]["error"]["message"]


def test_images_refused_one_by_one_exit_1_with_an_error_record_each(cli_client: type[_CliClient],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "bad1.png", "a.png", "bad2.png", "a2.png", "--json"]) == EXIT_FAILED
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["image"] for r in records] == ["bad1.png", "a.png", "bad2.png", "a2.png"]
    assert records[0]["error"] == {"kind": "InvalidImageError", "message": "bad1.png is not an image"}
    assert "error" not in records[1] and records[1]["label"] == "MEL"


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["analyze", "--help"])
    text = capsys.readouterr().out
    for code, words in ((0, "every image was answered"), (1, "some images were refused or failed"), (2, "usage error"),
                        (3, "the server could not be reached")):
        assert f"\n  {code}    {words}" in text


def test_model_metadata_carries_the_headers_given_sync_and_async() -> None:
    """An internal step's metadata needs the admin key behind the guard: the caller passes it as request metadata."""
    from tritonclient.grpc import service_pb2

    def metadata(request: service_pb2.ModelMetadataRequest, context: grpc.ServicerContext) -> Any:
        key = dict(context.invocation_metadata()).get("triton-grpc-protocol-admin-key", "none")
        return service_pb2.ModelMetadataResponse(name=request.name, versions=["1"], platform=f"key={key}")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelMetadata": grpc.unary_unary_rpc_method_handler(
            metadata, request_deserializer=service_pb2.ModelMetadataRequest.FromString,
            response_serializer=service_pb2.ModelMetadataResponse.SerializeToString)}),))
    url = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    headers = {"triton-grpc-protocol-admin-key": "s3cret"}
    try:
        with DermAssistClient(url, model_name="lesion_classifier", retries=0) as client:
            assert client.model_metadata()["platform"] == "key=none"
            assert client.model_metadata(headers=headers)["platform"] == "key=s3cret"

        async def asynchronous() -> str:
            async with AsyncDermAssistClient(url, model_name="lesion_classifier", retries=0) as aclient:
                return str((await aclient.model_metadata(headers=headers))["platform"])

        assert asyncio.run(asynchronous()) == "key=s3cret"
    finally:
        server.stop(None)
