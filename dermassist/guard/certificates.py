"""What the front's TLS files say about themselves: validity dates and whether the key belongs to the certificate.

gRPC serves an expired certificate, or a key of another certificate, without a word; every client then fails its
handshake with UNAVAILABLE. These are told when the settings are read, before the models load.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

#: A certificate that ends sooner than this is warned about at start.
EXPIRY_WARNING = timedelta(days=30)


def _first_certificate(path: Path):
    """The first certificate of a PEM file (the leaf of a chain, or the CA), or None when it cannot be parsed."""
    from cryptography import x509

    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (ValueError, OSError):  # an OpenSSL "TRUSTED CERTIFICATE", an unreadable file: gRPC is the judge
        return None
    return certificates[0] if certificates else None


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def validity_problem(path: Path, now: datetime) -> str | None:
    """Why the certificate in ``path`` is not valid at ``now`` (timezone-aware): expired or not yet valid; None when
    it is, or when it cannot be parsed."""
    certificate = _first_certificate(path)
    if certificate is None:
        return None
    if now > certificate.not_valid_after_utc:
        return f"expired on {_when(certificate.not_valid_after_utc)}"
    if now < certificate.not_valid_before_utc:
        return (f"is not valid before {_when(certificate.not_valid_before_utc)} (it is {_when(now)} here: check this "
                "machine's clock)")
    return None


def expiry_warning(path: Path, now: datetime) -> str | None:
    """A sentence when the certificate in ``path`` ends within EXPIRY_WARNING of ``now``; None otherwise."""
    certificate = _first_certificate(path)
    if certificate is None or certificate.not_valid_after_utc - now >= EXPIRY_WARNING:
        return None
    left = certificate.not_valid_after_utc - now
    return (f"the certificate in {path} expires on {_when(certificate.not_valid_after_utc)}, in {left.days} day(s): "
            "renew it before then, or every client's handshake will fail")


def key_mismatch(cert: Path, key: Path) -> str | None:
    """Why the private key in ``key`` is not the certificate's own (another certificate's key); None when it is, or
    when either file cannot be parsed (an encrypted key, a format gRPC may still read)."""
    from cryptography.hazmat.primitives import serialization

    certificate = _first_certificate(cert)
    if certificate is None:
        return None
    try:
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (ValueError, TypeError, OSError):
        return None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(*raw) == certificate.public_key().public_bytes(*raw):
        return None
    return f"the private key in {key} is not the key of the certificate in {cert} (the first certificate of the file)"
