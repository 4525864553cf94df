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
