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
from dermassist.guard.certificates import renewal_problem
from dermassist.guard.config import GuardConfig
from dermassist.guard.guard import Guard
from dermassist.guard.rotation import ServedTls, file_marks, left_alone

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


def test_renewed_files_are_handed_to_grpc_once_when_they_have_been_left_alone_for_a_while(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    _issue(trustme.CA(), cert, key)
    served = ServedTls(cert, key, None, datetime.now(UTC))
    assert served.fetch() is None  # nothing changed
    monkeypatch.setattr(rotation, "SETTLE_S", 0.5)
    renewed = _issue(trustme.CA(), cert, key, days=200)
    with caplog.at_level(logging.INFO, logger="dermassist.guard.rotation"):
        assert served.fetch() is None  # written just now: perhaps not finished
        time.sleep(0.6)
        configuration = served.fetch()  # left alone since: taken up
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
        said = f"the certificate bundle in {client_ca} holds no CA valid now (the first expired on 2020-01-31"
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


def _files(folder: Path, ca: trustme.CA | None = None, **kwargs: object) -> tuple[Path, Path, Path]:
    ca = ca or trustme.CA()
    cert, key, bundle = folder / "tls.crt", folder / "tls.key", folder / "ca.crt"
    _issue(ca, cert, key, **kwargs)
    ca.cert_pem.write_to_path(bundle)
    return cert, key, bundle


def _problem(cert: Path, key: Path, bundle: Path | None) -> str | None:
    return renewal_problem(cert.read_bytes(), key.read_bytes(), bundle.read_bytes() if bundle else None,
                           (cert, key, bundle), datetime.now(UTC))


def test_a_servable_set_has_no_renewal_problem(tmp_path: Path) -> None:
    cert, key, bundle = _files(tmp_path)
    assert _problem(cert, key, bundle) is None and _problem(cert, key, None) is None


def test_a_renewal_is_judged_stricter_than_the_start_on_what_cryptography_cannot_read(tmp_path: Path) -> None:
    """At start gRPC judges a file cryptography cannot read, loudly; on a renewal it would take it silently or keep
    the old set without a word, while the metric followed the new one (review 23, H1)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed448

    from dermassist.guard.certificates import key_mismatch, validity_problem

    intermediate = trustme.CA().create_child_ca().create_child_ca()  # a chain of leaf and two intermediates
    cert, key, bundle = _files(tmp_path, intermediate)
    leaf = intermediate.issue_cert("127.0.0.1", not_before=datetime.now(UTC) - timedelta(days=9),
                                   not_after=datetime.now(UTC) - timedelta(days=1))
    corrupt = b"-----BEGIN CERTIFICATE-----\nMIIBroken\n-----END CERTIFICATE-----\n"
    cert.write_bytes(leaf.cert_chain_pems[0].bytes() + corrupt)  # an expired leaf and a block cut short
    leaf.private_key_pem.write_to_path(key)
    assert validity_problem(cert, datetime.now(UTC)) is None  # the start-up check leaves it to gRPC
    assert f"{cert} holds a block that is no readable certificate" in (_problem(cert, key, bundle) or "")
    fresh = intermediate.issue_cert("127.0.0.1")
    chain = [blob.bytes() for blob in fresh.cert_chain_pems]
    assert len(chain) == 3
    fresh.private_key_pem.write_to_path(key)
    cert.write_bytes(chain[0] + chain[1][: len(chain[1]) // 2] + b"\n-----END CERTIFICATE-----\n")  # a cut intermediate
    assert "holds a block that is no readable certificate" in (_problem(cert, key, bundle) or "")
    cert.write_bytes(chain[0] + chain[2] + chain[1])  # out of order
    assert f"certificate 2 of {cert} did not issue certificate 1; put the chain in order" in (_problem(cert, key, bundle) or "")
    cert.write_bytes(b"".join(chain))
    assert _problem(cert, key, bundle) is None
    key.write_bytes(ed448.Ed448PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    assert key_mismatch(cert, key) is not None  # (a mismatch too; the type is said first)
    said = _problem(cert, key, bundle) or ""
    assert f"{key} holds a key of type Ed448PrivateKey, which gRPC's TLS library does not serve" in said, said


def test_a_refusal_is_told_once_judged_again_and_taken_up_when_its_date_comes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A renewal not valid yet (a clock behind, a certificate issued for later) was never looked at again unless its
    files changed (review 23, M1)."""
    cert, key, _ = _files(tmp_path)
    served = ServedTls(cert, key, None, datetime.now(UTC))
    later = datetime.now(UTC) + timedelta(hours=2)
    leaf = trustme.CA().issue_cert("127.0.0.1", not_before=later, not_after=later + timedelta(days=90))
    leaf.cert_chain_pems[0].write_to_path(cert)
    leaf.private_key_pem.write_to_path(key)
    monkeypatch.setattr(rotation, "RETRY_REFUSED_S", 0.0)
    with caplog.at_level(logging.INFO, logger="dermassist.guard.rotation"):
        for _ in range(3):
            served.check(datetime.now(UTC))  # judged each time: the same reason, told once
        served.check(later + timedelta(minutes=1))  # its date has come: taken up, its files untouched
    assert [r.levelname for r in caplog.records] == ["ERROR", "INFO"]
    assert "is not valid before" in caplog.records[0].getMessage()
    assert served.fetch() is not None


def test_the_marks_see_a_rename_into_place_and_a_permission_fix_and_a_future_time_holds_nothing_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file renamed into place keeps its old modification time (its change time moves), a chmod changes neither
    size nor modification time (review 23, M1, L1)."""
    monkeypatch.setattr(rotation, "SETTLE_S", 1.0)
    path = tmp_path / "tls.key"
    path.write_text("key")
    before = file_marks((path,))
    path.chmod(0o600)
    assert file_marks((path,)) != before
    staged = tmp_path / "staged.key"
    staged.write_text("new key")
    old = time.time() - 3600
    os.utime(staged, (old, old))
    os.replace(staged, path)
    assert not left_alone(file_marks((path,)), time.time_ns())  # renamed just now, though written an hour ago
    future = time.time() + 3600
    os.utime(path, (future, future))
    marks = file_marks((path,))
    assert left_alone(((*marks[0][:4], marks[0][3]),), time.time_ns())  # a clock ahead's times: not held back


def test_a_check_that_fails_in_a_library_is_a_refusal_not_a_dead_thread(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """An SM2 key made cryptography raise UnsupportedAlgorithm out of check: the guard's liveness loop ended without a
    word, and gRPC's handshake threads logged tracebacks (review 23, M2)."""
    cert, key, _ = _files(tmp_path)
    served = ServedTls(cert, key, None, datetime.now(UTC))
    _issue(trustme.CA(), cert, key)

    def unsupported(*args: object) -> str | None:
        raise RuntimeError("Curve 1.2.156.10197.1.301 is not supported")

    monkeypatch.setattr(rotation, "renewal_problem", unsupported)
    with caplog.at_level(logging.INFO, logger="dermassist.guard.rotation"):
        assert served.fetch() is None
    (record,) = caplog.records
    assert record.levelname == "ERROR" and "they could not be checked (RuntimeError: Curve" in record.getMessage()


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
