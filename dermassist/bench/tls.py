"""A throwaway CA and a loopback server certificate, made at run time for the bench's TLS row.

Made with ``cryptography``, a runtime dependency of the server package (the guard reads certificates with it);
``trustme``, which the tests use, is a dev extra only. The keys never leave a temporary folder the caller removes.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

HOSTS = ("127.0.0.1", "localhost")  # what the guard binds and the client dials (the certificate must name it)
LIFETIME = timedelta(hours=2)  # long enough for one bench; the guard refuses a certificate outside its dates
BACKDATE = timedelta(minutes=10)  # valid from a little before now: a client's clock may lag this machine's
TLS_KEY_TEXT = "ECDSA P-256 keys, SHA-256 signatures"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA the client trusts, the server certificate (leaf then CA) and the server's private key."""

    ca: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dermassist bench (throwaway)"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alternative_names(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    """subjectAltName entries: an IPAddress for an address, a DNSName otherwise (gRPC checks the one it dials)."""
    from cryptography import x509

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_throwaway_tls(folder: Path, hosts: Sequence[str] = HOSTS, now: datetime | None = None) -> TlsFiles:
    """Write a new CA and a server certificate for ``hosts`` (valid from a little before ``now`` for
    :data:`LIFETIME`) and its key into ``folder``; the key file is readable by this user only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    now = now or datetime.now(UTC)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("dermassist bench CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - BACKDATE).not_valid_after(now + LIFETIME)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_name)
            .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_alternative_names(hosts), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca.write_bytes(ca.public_bytes(pem))
    files.cert.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    files.key.touch(mode=0o600)
    files.key.chmod(0o600)  # touch's mode passes through the umask
    files.key.write_bytes(server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return files
