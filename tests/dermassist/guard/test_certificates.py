"""The front's TLS files checked for what gRPC would serve without a word: an expired or not yet valid certificate,
a key of another certificate, and a certificate about to end."""
from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

from dermassist.base.errors import ConfigError
from dermassist.base.server import free_ports
from dermassist.base.server_config import ServerConfig
from dermassist.guard.certificates import expiry_warnings, key_mismatch, validity_problem
from dermassist.guard.config import GuardConfig
from dermassist.guard.guard import Guard
from tests.support.guard import make_certificates

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _leaf(folder: Path, not_before: datetime, not_after: datetime) -> tuple[Path, Path]:
    """A server certificate valid from ``not_before`` to ``not_after``, and its key."""
    import trustme

    folder.mkdir(parents=True, exist_ok=True)
    leaf = trustme.CA().issue_cert("127.0.0.1", not_before=not_before, not_after=not_after)
    cert, key = folder / "server.pem", folder / "server.key"
    leaf.cert_chain_pems[0].write_to_path(cert)
    leaf.private_key_pem.write_to_path(key)
    return cert, key


def test_an_expired_certificate_is_a_config_error_naming_the_file_the_date_and_the_flag(tmp_path: Path) -> None:
    cert, key = _leaf(tmp_path, datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    assert validity_problem(cert, NOW) == "expired on 2026-01-01 00:00:00 UTC"
    with pytest.raises(ConfigError, match=rf"tls_cert file {cert} expired on 2026-01-01 00:00:00 UTC; every client "
                                          r"would refuse the server's handshake: "
                                          r"pass a valid certificate to --tls-cert / DERMASSIST_TLS_CERT"):
        GuardConfig(tls_cert=cert, tls_key=key)


def test_a_certificate_not_yet_valid_points_at_the_clock(tmp_path: Path) -> None:
    cert, _ = _leaf(tmp_path, datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
    assert validity_problem(cert, NOW) == ("is not valid before 2027-01-01 00:00:00 UTC, 26 day(s) from now (it is "
                                           "2026-12-05 12:00:00 UTC here: check this machine's clock)")
    assert validity_problem(cert, datetime(2027, 6, 1, tzinfo=UTC)) is None


def test_a_certificate_issued_a_moment_ahead_of_this_clock_is_valid(tmp_path: Path) -> None:
    """A CA whose clock runs a little ahead issues a certificate this machine sees as minutes in the future."""
    cert, _ = _leaf(tmp_path, NOW + timedelta(minutes=4), NOW + timedelta(days=90))
    assert validity_problem(cert, NOW) is None
    later, _ = _leaf(tmp_path / "later", NOW + timedelta(minutes=40), NOW + timedelta(days=90))
    assert validity_problem(later, NOW) == ("is not valid before 2026-12-05 12:40:00 UTC, 40 minute(s) from now (it is "
                                            "2026-12-05 12:00:00 UTC here: check this machine's clock)")


def test_an_expired_client_ca_is_refused_too(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "ok")
    ca, _ = _leaf(tmp_path / "old", datetime(2020, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC))
    with pytest.raises(ConfigError, match=rf"tls_client_ca file {ca} expired on 2021-01-01 .*; the server would refuse "
                                          "every client certificate it signed"):
        GuardConfig(tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=ca)


def test_a_client_ca_bundle_is_refused_only_when_none_of_its_cas_is_valid(tmp_path: Path) -> None:
    """During a CA rotation the bundle holds the old CA and the new; OpenSSL trusts each, so one valid CA serves."""
    certs = make_certificates(tmp_path / "ok")
    old, _ = _leaf(tmp_path / "old", datetime(2020, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC))
    older, _ = _leaf(tmp_path / "older", datetime(2019, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC))
    rotating, expired = tmp_path / "rotating.pem", tmp_path / "expired.pem"
    rotating.write_text(old.read_text() + certs.ca.read_text())
    expired.write_text(old.read_text() + older.read_text())
    assert validity_problem(rotating, NOW, bundle=True) is None
    assert GuardConfig(tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=rotating).mutual_tls
    assert expiry_warnings(rotating, NOW, bundle=True) == [
        f"certificate 1 of 2 in {rotating} expired on 2021-01-01 00:00:00 UTC; the others are valid: remove it from "
        "the bundle"]
    assert validity_problem(expired, NOW, bundle=True) == (
        "holds 2 certificates and none is valid now (the first expired on 2021-01-01 00:00:00 UTC)")
    assert validity_problem(rotating, NOW) == "expired on 2021-01-01 00:00:00 UTC"  # a server chain: its first


def test_a_key_of_another_certificate_is_a_config_error(tmp_path: Path) -> None:
    """gRPC takes such a pair at start and fails every handshake after."""
    first, second = make_certificates(tmp_path / "a"), make_certificates(tmp_path / "b")
    assert key_mismatch(first.server_cert, first.server_key) is None
    assert key_mismatch(first.server_cert, second.server_key) is not None
    with pytest.raises(ConfigError, match=rf"the private key in {second.server_key} is not the key of the certificate in "
                                          rf"{first.server_cert} .*pass the certificate's own key to --tls-key"):
        GuardConfig(tls_cert=first.server_cert, tls_key=second.server_key)


def test_a_certificate_ending_within_30_days_is_warned_about_and_one_ending_later_is_not(tmp_path: Path) -> None:
    cert, _ = _leaf(tmp_path, NOW - timedelta(days=300), NOW + timedelta(days=10, hours=2))
    assert expiry_warnings(cert, NOW) == [f"the certificate in {cert} expires on 2026-12-15 14:00:00 UTC, in 10 day(s): "
                                          "renew it before then, or every client's handshake will fail"]
    assert expiry_warnings(cert, NOW - timedelta(days=21)) == []
    assert "in 9 hour(s):" in expiry_warnings(cert, NOW + timedelta(days=10, hours=-7))[0]


def test_files_cryptography_cannot_parse_are_left_to_grpc(tmp_path: Path) -> None:
    """An OpenSSL "TRUSTED CERTIFICATE" block (gRPC takes it as a client CA) and an encrypted key are not judged."""
    certs = make_certificates(tmp_path)
    trusted = tmp_path / "trusted.pem"
    trusted.write_text(certs.ca.read_text().replace("BEGIN CERTIFICATE", "BEGIN TRUSTED CERTIFICATE")
                       .replace("END CERTIFICATE", "END TRUSTED CERTIFICATE"))
    assert validity_problem(trusted, NOW) is None and expiry_warnings(trusted, NOW) == []
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n")
    assert key_mismatch(certs.server_cert, encrypted) is None


def test_the_front_logs_the_warning_when_it_starts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    now = datetime.now(UTC)
    cert, key = _leaf(tmp_path, now - timedelta(days=30), now + timedelta(days=5))
    server = SimpleNamespace(config=ServerConfig(repository=tmp_path, admin_key="k"), pid=os.getpid())
    http, grpc_port = free_ports(2)
    guard = Guard(ServerConfig(repository=tmp_path, http_port=http, grpc_port=grpc_port),
                  GuardConfig(audit_log=str(tmp_path / "audit.jsonl"), tls_cert=cert, tls_key=key),
                  server)  # type: ignore[arg-type]

    async def main() -> None:
        guard.channel = grpc.aio.insecure_channel("127.0.0.1:1")
        front = await guard._start_front()
        await front.stop(None)
        await guard.channel.close()
        guard.front.close()

    with caplog.at_level(logging.WARNING, logger="dermassist.guard.guard"):
        asyncio.run(main())
    guard.audit.close()
    assert any(f"the certificate in {cert} expires on" in r.getMessage() and "renew it" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize(("left", "step"), [(timedelta(days=31), 0), (timedelta(days=30), 1), (timedelta(days=8), 1),
                                            (timedelta(days=7), 2), (timedelta(days=1), 3), (timedelta(seconds=1), 3),
                                            (timedelta(0), 4), (timedelta(days=-1), 4)])
def test_the_steps_a_certificates_end_is_told_at(left: timedelta, step: int) -> None:
    from dermassist.guard.certificates import expiry_step

    assert expiry_step(left) == step


def test_a_served_certificate_running_out_is_told_at_each_step_once_and_measured(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The expiry was checked only at start: a server running past its certificate's end said nothing."""
    from dermassist.guard.certificates import ExpiryWatch

    cert, _ = _leaf(tmp_path, NOW - timedelta(days=80), NOW + timedelta(days=10))
    watch = ExpiryWatch(cert, NOW)  # 10 days left: start-up told it (30-day step)
    assert watch.seconds_left(NOW) == 10 * 86400
    assert watch.check(NOW + timedelta(days=1)) is None  # 9 days left: the same step
    week = watch.check(NOW + timedelta(days=3, seconds=1))
    assert week is not None and f"the server certificate in {cert} expires on 2026-12-15 12:00:00 UTC, in 6 day(s)" in week
    assert watch.check(NOW + timedelta(days=3, seconds=2)) is None  # once
    guard = SimpleNamespace(tls=SimpleNamespace(expiry=watch))
    with caplog.at_level(logging.WARNING, logger="dermassist.guard.guard"):
        Guard._tell_expiry(guard, NOW + timedelta(days=10, seconds=1))  # type: ignore[arg-type]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", f"the server certificate in {cert} expired on 2026-12-15 12:00:00 UTC: every new TLS client's handshake "
                  "now fails (connections opened before still work); renew it in place (serve takes up the renewed "
                  "files within seconds, no restart)")]
    assert Guard._expiry_samples(SimpleNamespace(tls=None)) == []  # type: ignore[arg-type]
    (sample,) = Guard._expiry_samples(SimpleNamespace(tls=SimpleNamespace(expiry=watch)))  # type: ignore[arg-type]
    left_now = watch.seconds_left(datetime.now(UTC))  # the metric is read at scrape time, on the real clock
    assert sample.name == "dermassist_tls_certificate_expiry_seconds" and left_now is not None
    assert abs(sample.value - left_now) < 60
