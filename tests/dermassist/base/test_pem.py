"""``pem_problem``: the one check of a PEM certificate or private key, shared by the guard and the load test."""
from __future__ import annotations

from pathlib import Path

import pytest

from dermassist.base.pem import pem_problem
from tests.support.guard import make_certificates


def test_a_trusted_certificate_block_is_a_certificate(tmp_path: Path) -> None:
    """`openssl x509 -trustout` writes "TRUSTED CERTIFICATE", which gRPC takes as a client CA: not refused."""
    certs = make_certificates(tmp_path)
    body = Path(certs.ca).read_text()
    for label in ("TRUSTED CERTIFICATE", "X509 CERTIFICATE"):
        trusted = tmp_path / f"{label.split()[0].lower()}.pem"
        trusted.write_text(body.replace("BEGIN CERTIFICATE", f"BEGIN {label}").replace("END CERTIFICATE", f"END {label}"))
        assert pem_problem(trusted, "certificate") is None


def test_each_kind_refuses_the_other_and_an_unreadable_file(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    assert pem_problem(Path(certs.server_key), "private key") is None
    assert pem_problem(Path(certs.server_cert), "certificate") is None
    assert pem_problem(Path(certs.server_key), "certificate") == (
        "is not a PEM certificate: it holds no '-----BEGIN CERTIFICATE-----' line")
    assert pem_problem(Path(certs.server_cert), "private key") == (
        "is not a PEM private key: it holds no '-----BEGIN ... PRIVATE KEY-----' line")
    assert pem_problem(tmp_path / "absent.pem", "certificate") == "cannot be read (No such file or directory)"
    assert pem_problem(tmp_path, "certificate") == "cannot be read (Is a directory)"
    with pytest.raises(ValueError, match="PEM kind must be one of"):
        pem_problem(Path(certs.ca), "public key")


def test_an_encrypted_private_key_is_refused_naming_the_way_out(tmp_path: Path) -> None:
    """A passphrase key passed the checks, the models loaded, and the front then failed blaming a free port."""
    from cryptography.hazmat.primitives import serialization

    certs = make_certificates(tmp_path)
    key = serialization.load_pem_private_key(Path(certs.server_key).read_bytes(), password=None)
    encryption = serialization.BestAvailableEncryption(b"passphrase")
    pkcs8 = tmp_path / "pkcs8.key"
    pkcs8.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    traditional = tmp_path / "traditional.key"
    traditional.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.TraditionalOpenSSL, encryption))
    assert "Proc-Type: 4,ENCRYPTED" in traditional.read_text()
    for path in (pkcs8, traditional):
        problem = pem_problem(path, "private key")
        assert problem is not None and problem.startswith("is an encrypted private key, which gRPC cannot read")
        assert "openssl pkey -in KEY -out tls.key" in problem


def test_serve_refuses_an_encrypted_tls_key_at_its_settings(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from dermassist.base.errors import ConfigError
    from dermassist.guard.config import GuardConfig

    certs = make_certificates(tmp_path)
    key = serialization.load_pem_private_key(Path(certs.server_key).read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"passphrase")))
    with pytest.raises(ConfigError, match=r"tls_key file .*encrypted.key is an encrypted private key.*--tls-key"):
        GuardConfig(tls_cert=Path(certs.server_cert), tls_key=encrypted)
