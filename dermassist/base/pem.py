"""What a PEM file must hold to be a certificate or a private key, checked once for the guard and the load test."""
from __future__ import annotations

import re
from pathlib import Path

PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
# OpenSSL also writes "TRUSTED CERTIFICATE" (-trustout) and "X509 CERTIFICATE" blocks, which gRPC reads as well.
_PEM_CERTIFICATE = re.compile(r"-----BEGIN (?:TRUSTED |X509 )?CERTIFICATE-----")
_PEM_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
# PKCS#8 "ENCRYPTED PRIVATE KEY" blocks, and traditional OpenSSL keys with a passphrase ("Proc-Type: 4,ENCRYPTED")
_ENCRYPTED_KEY = re.compile(r"-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: *4, *ENCRYPTED", re.MULTILINE)
_PEM_READ_LIMIT = 1024 * 1024  # a certificate chain or key is a few KiB; a larger file is not one
PEM_KINDS = ("certificate", "private key")


def pem_problem(path: Path, kind: str) -> str | None:
    """Why ``path`` is not a PEM ``kind`` ("certificate" or "private key"); None when it is one."""
    if kind not in PEM_KINDS:
        raise ValueError(f"PEM kind must be one of {PEM_KINDS}, got {kind!r}")
    try:
        with open(path, "rb") as file:
            data = file.read(_PEM_READ_LIMIT)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    return pem_bytes_problem(data, kind)


def pem_bytes_problem(data: bytes, kind: str) -> str | None:
    """Why the bytes ``data`` are not a PEM ``kind`` ("certificate" or "private key"); None when they are one."""
    text = data[:_PEM_READ_LIMIT].decode("ascii", errors="replace")
    if kind == "certificate" and _PEM_CERTIFICATE.search(text) is None:
        return f"is not a PEM certificate: it holds no {PEM_CERTIFICATE!r} line"
    if kind == "private key" and _PEM_PRIVATE_KEY.search(text) is None:
        return "is not a PEM private key: it holds no '-----BEGIN ... PRIVATE KEY-----' line"
    if kind == "private key" and _ENCRYPTED_KEY.search(text) is not None:
        return ("is an encrypted private key, which gRPC cannot read (it takes no passphrase); write it out "
                "unencrypted, e.g. `openssl pkey -in KEY -out tls.key`, readable by the service's user only")
    return None
