"""Renewed TLS files served without a restart: taken up once left alone for a second and passing the start-up checks,
refused (the old ones kept) otherwise, and seen by new clients of the real front."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dermassist.base.server import free_ports
from dermassist.base.server_config import ServerConfig
from dermassist.guard import rotation
from dermassist.guard.config import GuardConfig
from dermassist.guard.guard import Guard
from dermassist.guard.rotation import ServedTls, files_problem

trustme = pytest.importorskip("trustme")


def _issue(ca: trustme.CA, cert: Path, key: Path, days: float = 90, **kwargs: object) -> trustme.LeafCert:
    """A server certificate of ``ca`` valid from a day ago for ``days``, written to ``cert`` and ``key``."""
    now = datetime.now(UTC)
    leaf = ca.issue_cert("127.0.0.1", "localhost", not_before=now - timedelta(days=1),
                         not_after=now + timedelta(days=days), **kwargs)
    leaf.cert_chain_pems[0].write_to_path(cert)
    leaf.private_key_pem.write_to_path(key)
    return leaf


def _not_after(leaf: trustme.LeafCert) -> datetime:
    from cryptography import x509

    return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).not_valid_after_utc


@pytest.fixture(autouse=True)
def _look_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rotation, "CHECK_S", 0.0)
    monkeypatch.setattr(rotation, "SETTLE_S", 0.0)


def _looked_twice(served: ServedTls) -> None:
    served.check(datetime.now(UTC))
    served.check(datetime.now(UTC))


def _age(*paths: Path, seconds: float) -> None:
    """Make ``paths`` look last modified ``seconds`` ago."""
    for path in paths:
        then = time.time() - seconds
        os.utime(path, (then, then))


def test_renewed_files_are_handed_to_grpc_once_when_they_have_been_left_alone_for_a_second(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    _issue(trustme.CA(), cert, key)
    served = ServedTls(cert, key, None, datetime.now(UTC))
    assert served.fetch() is None  # nothing changed
    monkeypatch.setattr(rotation, "SETTLE_S", 1.0)
    renewed = _issue(trustme.CA(), cert, key, days=200)
    _age(key, seconds=5)
    with caplog.at_level(logging.INFO, logger="dermassist.guard.rotation"):
        assert served.fetch() is None  # the certificate was written just now: perhaps not finished
        _age(cert, seconds=1)
        configuration = served.fetch()  # both left alone for a second: taken up
    assert isinstance(configuration, grpc.ServerCertificateConfiguration)
    assert served.fetch() is None  # handed over once
    assert served.expiry.not_after == _not_after(renewed)
    (record,) = caplog.records
    assert record.levelname == "INFO" and record.getMessage().startswith(
        f"serving the renewed TLS files to new connections: the certificate in {cert} is valid until "
        f"{_not_after(renewed):%Y-%m-%d %H:%M:%S} UTC")


def test_a_certificate_put_in_place_before_its_key_is_refused_once_then_taken_up_with_the_key(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    old = _issue(trustme.CA(), cert, key)
    served = ServedTls(cert, key, None, datetime.now(UTC))
    staged = tmp_path / "staged"
    staged.mkdir()
    new = _issue(trustme.CA(), staged / "tls.crt", staged / "tls.key", days=200)
    cert.write_bytes((staged / "tls.crt").read_bytes())
    with caplog.at_level(logging.INFO, logger="dermassist.guard.rotation"):
        for _ in range(4):
            _looked_twice(served)
        assert served.fetch() is None
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [(
            "ERROR", f"the renewed TLS files are not served: the private key in {key} is not the key of the "
                     f"certificate in {cert} (the first certificate of the file); new connections still get the "
                     f"certificate valid until {_not_after(old):%Y-%m-%d %H:%M:%S} UTC; put a valid set in place (it "
                     "is taken up within seconds)")]
        key.write_bytes((staged / "tls.key").read_bytes())
        _looked_twice(served)
    assert served.fetch() is not None and served.expiry.not_after == _not_after(new)
    assert caplog.records[-1].levelname == "INFO"


@pytest.mark.parametrize("fault", ["expired", "not_pem", "missing_key", "encrypted_key", "expired_client_ca"])
def test_a_renewal_that_serve_would_refuse_at_start_is_not_served(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, fault: str) -> None:
    cert, key, client_ca = tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "client-ca.crt"
    ca = trustme.CA()
    _issue(ca, cert, key)
    ca.cert_pem.write_to_path(client_ca)
    served = ServedTls(cert, key, client_ca, datetime.now(UTC))
    now = datetime.now(UTC)
    if fault == "expired":
        ca.issue_cert("127.0.0.1", not_before=now - timedelta(days=90), not_after=now - timedelta(days=1)) \
            .cert_chain_pems[0].write_to_path(cert)
        said = f"the certificate in {cert} expired on"
    elif fault == "not_pem":
        cert.write_bytes(b"\x30\x82\x01\x0a DER bytes")
        said = f"{cert} is not a PEM certificate"
    elif fault == "missing_key":
        key.unlink()
        said = f"{key} cannot be read (No such file or directory)"
    elif fault == "encrypted_key":
        key.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n")
        said = f"{key} is an encrypted private key"
    else:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        old, private = datetime(2020, 1, 1, tzinfo=UTC), ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "old client CA")])
        expired_ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                      .serial_number(1).not_valid_before(old).not_valid_after(old + timedelta(days=30))
                      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                      .sign(private, hashes.SHA256()))
        client_ca.write_bytes(expired_ca.public_bytes(serialization.Encoding.PEM))
        said = f"the certificate bundle in {client_ca} expired on 2020-01-31"
    with caplog.at_level(logging.INFO, logger="dermassist.guard.rotation"):
        for _ in range(3):
            _looked_twice(served)
    assert served.fetch() is None
    (record,) = caplog.records  # told once, whatever the number of looks
    assert record.levelname == "ERROR" and said in record.getMessage(), record.getMessage()
    assert "new connections still get the certificate valid until" in record.getMessage()


def test_a_file_taken_away_is_told_once_and_put_back_needs_nothing_handed_over(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    _issue(trustme.CA(), cert, key)
    served = ServedTls(cert, key, None, datetime.now(UTC))
    aside = tmp_path / "aside.key"
    with caplog.at_level(logging.INFO, logger="dermassist.guard.rotation"):
        os.rename(key, aside)
        _looked_twice(served)
        os.rename(aside, key)
        _looked_twice(served)
    assert served.fetch() is None
    assert [(r.levelname, f"{key} cannot be read" in r.getMessage()) for r in caplog.records] == [("ERROR", True)]


def test_a_renewal_ending_within_30_days_is_served_and_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    _issue(trustme.CA(), cert, key)
    served = ServedTls(cert, key, None, datetime.now(UTC))
    _issue(trustme.CA(), cert, key, days=10)
    with caplog.at_level(logging.INFO, logger="dermassist.guard.rotation"):
        _looked_twice(served)
    assert served.fetch() is not None
    assert [r.levelname for r in caplog.records] == ["INFO", "WARNING"]
    assert f"the certificate in {cert} expires on" in caplog.records[1].getMessage()


def test_the_files_are_looked_at_at_most_once_per_check_interval(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    _issue(trustme.CA(), cert, key)
    served = ServedTls(cert, key, None, datetime.now(UTC))
    monkeypatch.setattr(rotation, "CHECK_S", 3600.0)
    looks = []
    monkeypatch.setattr(rotation, "file_marks", lambda paths: looks.append(paths) or ())
    for _ in range(5):
        served.check(datetime.now(UTC))
    assert len(looks) == 1


def test_files_problem_is_none_for_a_servable_set(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    ca = trustme.CA()
    _issue(ca, cert, key)
    ca.cert_pem.write_to_path(tmp_path / "ca.crt")
    assert files_problem(cert, key, tmp_path / "ca.crt", datetime.now(UTC)) is None


def _serial(pem: bytes) -> int:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem).serial_number


def _served_serial(port: int, ca: trustme.CA, client: trustme.LeafCert) -> int:
    """The serial number of the certificate a new TLS connection to the front gets (trusting ``ca``, presenting
    ``client``)."""
    from cryptography import x509

    context = ssl.create_default_context()
    ca.configure_trust(context)
    client.configure_cert(context)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _live(port: int, ca: trustme.CA, client: trustme.LeafCert) -> grpc.StatusCode:
    """The status of a ServerLive call on a new channel that trusts ``ca`` and presents ``client``."""
    credentials = grpc.ssl_channel_credentials(ca.cert_pem.bytes(), client.private_key_pem.bytes(),
                                               b"".join(blob.bytes() for blob in client.cert_chain_pems))
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        try:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ServerLive(service_pb2.ServerLiveRequest(), timeout=10)
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def test_the_front_serves_a_renewed_certificate_and_client_ca_to_new_clients_without_a_restart(tmp_path: Path) -> None:
    """A CA rotation under mutual TLS: the server's certificate and the client CA replaced in place; a client of the
    new CA is refused before and served after, one of the old CA the other way round; the metric follows."""
    cert, key, client_ca = tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "client-ca.crt"
    old_ca, new_ca = trustme.CA(), trustme.CA()
    old_leaf = _issue(old_ca, cert, key)
    old_ca.cert_pem.write_to_path(client_ca)
    old_client, new_client = (ca.issue_cert("clinic-a.example.org", common_name="clinic-a") for ca in (old_ca, new_ca))
    http, grpc_port = free_ports(2)
    guard = Guard(ServerConfig(repository=tmp_path, http_port=http, grpc_port=grpc_port),
                  GuardConfig(audit_log=str(tmp_path / "audit.jsonl"), tls_cert=cert, tls_key=key,
                              tls_client_ca=client_ca),
                  SimpleNamespace(config=ServerConfig(repository=tmp_path, admin_key="k"),  # type: ignore[arg-type]
                                  pid=os.getpid()))

    def rotate() -> dict[str, object]:
        seen: dict[str, object] = {
            "before": (_served_serial(grpc_port, old_ca, old_client), _live(grpc_port, old_ca, old_client),
                       _live(grpc_port, old_ca, new_client))}
        staged = tmp_path / "staged"
        staged.mkdir()
        seen["renewed"] = _serial(_issue(new_ca, staged / "tls.crt", staged / "tls.key", days=300)
                                  .cert_chain_pems[0].bytes())
        new_ca.cert_pem.write_to_path(staged / "client-ca.crt")
        for name in ("tls.crt", "tls.key", "client-ca.crt"):
            os.replace(staged / name, tmp_path / name)
        deadline = time.monotonic() + 20
        while _live(grpc_port, new_ca, new_client) != grpc.StatusCode.OK:  # each new channel's handshake looks
            assert time.monotonic() < deadline, "the renewed files were not served within 20 s"
            time.sleep(0.2)
        seen["after"] = (_served_serial(grpc_port, new_ca, new_client), _live(grpc_port, new_ca, old_client))
        seen["seconds_left"] = guard._expiry_samples()[0].value
        return seen

    async def main() -> dict[str, object]:
        guard.channel = grpc.aio.insecure_channel("127.0.0.1:1")
        front = await guard._start_front()
        try:
            return await asyncio.to_thread(rotate)
        finally:
            await front.stop(None)
            await guard.channel.close()
            guard.front.close()

    seen = asyncio.run(main())
    guard.audit.close()
    old_serial = _serial(old_leaf.cert_chain_pems[0].bytes())
    assert seen["before"] == (old_serial, grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)
    assert seen["after"] == (seen["renewed"], grpc.StatusCode.UNAVAILABLE)
    assert isinstance(seen["seconds_left"], float) and seen["seconds_left"] > 200 * 86400  # 300 days, not the old 90


def test_the_running_guard_follows_renewed_files_with_no_client_connecting(tmp_path: Path) -> None:
    """The liveness tick looks too: the expiry metric (and an alert on it) follows a renewal before any handshake."""
    import urllib.request

    from .stand_in import StandInServer, background_guard

    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    _issue(trustme.CA(), cert, key, days=20)
    background = background_guard(tmp_path, StandInServer(tmp_path), tls_cert=cert, tls_key=key)

    def seconds_left() -> float:
        with urllib.request.urlopen(f"http://{background.http_address}/metrics", timeout=10) as response:
            text = response.read().decode()
        (line,) = [line for line in text.splitlines() if line.startswith("dermassist_tls_certificate_expiry_seconds ")]
        return float(line.split()[1])

    with background:
        assert background.wait_ready(30)
        assert 19 * 86400 < seconds_left() < 20 * 86400
        _issue(trustme.CA(), cert, key, days=100)
        deadline = time.monotonic() + 20
        while seconds_left() < 99 * 86400:
            assert time.monotonic() < deadline, "the metric did not follow the renewed certificate within 20 s"
            time.sleep(0.2)
