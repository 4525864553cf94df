"""What the front's TLS files say about themselves: validity dates and whether the key belongs to the certificate.

gRPC serves an expired certificate, or a key of another certificate, without a word; every client then fails its
handshake with UNAVAILABLE. These are told when the settings are read, before the models load. The server
certificate is the first of its file (the leaf, as gRPC reads it); a client CA file is a bundle in which any one
valid CA is enough (OpenSSL trusts each), so it is refused only when none is valid.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..base.pem import pem_bytes_problem

if TYPE_CHECKING:
    from cryptography import x509

#: A certificate that ends sooner than this is warned about at start.
EXPIRY_WARNING = timedelta(days=30)
#: How far this machine's clock may lag the issuer's before a certificate issued just now counts as not yet valid.
CLOCK_SKEW = timedelta(minutes=5)


def _certificates(path: Path) -> list:
    """The certificates of a PEM file in their order ([] when it cannot be parsed: an OpenSSL "TRUSTED CERTIFICATE",
    an unreadable file; gRPC is then the judge)."""
    from cryptography import x509

    try:
        return list(x509.load_pem_x509_certificates(path.read_bytes()))
    except (ValueError, OSError):
        return []


def when(moment: datetime) -> str:
    """A moment as the messages say it: date and time to the second, UTC."""
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _date_problem(certificate: x509.Certificate, now: datetime) -> str | None:
    """Why one certificate is not valid at ``now``: expired, or not valid before a moment more than CLOCK_SKEW ahead."""
    if now > certificate.not_valid_after_utc:
        return f"expired on {when(certificate.not_valid_after_utc)}"
    if now + CLOCK_SKEW < certificate.not_valid_before_utc:
        ahead = certificate.not_valid_before_utc - now
        return (f"is not valid before {when(certificate.not_valid_before_utc)}, {_span(ahead)} from now (it is "
                f"{when(now)} here: check this machine's clock)")
    return None


def _span(length: timedelta) -> str:
    """A length of time as the messages say it: days, else hours, else minutes."""
    if length >= timedelta(days=1):
        return f"{length.days} day(s)"
    if length >= timedelta(hours=1):
        return f"{length // timedelta(hours=1)} hour(s)"
    return f"{max(1, length // timedelta(minutes=1))} minute(s)"


def validity_problem(path: Path, now: datetime, bundle: bool = False) -> str | None:
    """Why the certificate in ``path`` is not valid at ``now`` (timezone-aware); with ``bundle`` (a client CA file)
    only when none of its certificates is. None when it is valid, or when it cannot be parsed."""
    certificates = _certificates(path)
    if not certificates:
        return None
    problems = [_date_problem(c, now) for c in (certificates if bundle else certificates[:1])]
    if not all(problems):
        return None
    if len(problems) == 1:
        return problems[0]
    return f"holds {len(problems)} certificates and none is valid now (the first {problems[0]})"


def expiry_warnings(path: Path, now: datetime, bundle: bool = False) -> list[str]:
    """A sentence for the certificate in ``path`` (each of a client CA bundle) that has ended or ends within
    EXPIRY_WARNING of ``now``, while the file as a whole is still valid."""
    certificates = _certificates(path)
    chosen = certificates if bundle else certificates[:1]
    warnings = []
    for number, certificate in enumerate(chosen, start=1):
        which = f"certificate {number} of {len(chosen)} in {path}" if len(chosen) > 1 else f"the certificate in {path}"
        left = certificate.not_valid_after_utc - now
        if left < timedelta(0):
            warnings.append(f"{which} expired on {when(certificate.not_valid_after_utc)}; the others are valid: "
                            "remove it from the bundle")
        elif left < EXPIRY_WARNING:
            warnings.append(f"{which} expires on {when(certificate.not_valid_after_utc)}, in {_span(left)}: renew it "
                            "before then, or every client's handshake will fail")
    return warnings


def key_mismatch(cert: Path, key: Path) -> str | None:
    """Why the private key in ``key`` is not the certificate's own (another certificate's key); None when it is, or
    when either file cannot be parsed (an encrypted key, a format gRPC may still read)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    certificates = _certificates(cert)
    if not certificates:
        return None
    try:
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (ValueError, TypeError, OSError, UnsupportedAlgorithm):
        return None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(*raw) == certificates[0].public_key().public_bytes(*raw):
        return None
    return f"the private key in {key} is not the key of the certificate in {cert} (the first certificate of the file)"


#: How much life a served certificate has left when the running guard tells it again (start-up told it once).
EXPIRY_STEPS = (EXPIRY_WARNING, timedelta(days=7), timedelta(days=1), timedelta(0))


def expiry_step(left: timedelta) -> int:
    """How many of EXPIRY_STEPS a certificate with ``left`` to live has reached: 0 with more than 30 days left, 4 once
    it has expired."""
    return sum(left <= step for step in EXPIRY_STEPS)


class ExpiryWatch:
    """The served certificate's end while the guard runs: a certificate that runs out (not renewed in place) ends
    every new client's handshake without a word. ``check`` gives the sentence to log, once each
    time it reaches a step of EXPIRY_STEPS; ``seconds_left`` feeds the metric an alert can watch."""

    def __init__(self, path: Path, now: datetime, certificates: list | None = None) -> None:
        certificates = _certificates(path) if certificates is None else certificates
        self.path = path
        self.not_after: datetime | None = certificates[0].not_valid_after_utc if certificates else None
        self._told = expiry_step(self.not_after - now) if self.not_after is not None else len(EXPIRY_STEPS)

    def seconds_left(self, now: datetime) -> float | None:
        """Seconds until the certificate ends (negative once it has), or None when it could not be read."""
        return None if self.not_after is None else (self.not_after - now).total_seconds()

    def check(self, now: datetime) -> str | None:
        """The sentence for a step reached since the last check (None when none was)."""
        if self.not_after is None:
            return None
        left = self.not_after - now
        step = expiry_step(left)
        if step <= self._told:
            return None
        self._told = step
        if left <= timedelta(0):
            return (f"the server certificate in {self.path} expired on {when(self.not_after)}: every new TLS client's "
                    "handshake now fails (connections opened before still work); renew it in place (serve takes up "
                    "the renewed files within seconds, no restart)")
        return (f"the server certificate in {self.path} expires on {when(self.not_after)}, in {_span(left)}: renew it "
                "in place before then (serve takes up the renewed files within seconds, no restart), or every new "
                "client's handshake will fail")


#: Elliptic curves gRPC's TLS library (BoringSSL) serves a certificate key on.
SERVED_CURVES = ("secp256r1", "secp384r1", "secp521r1")
MIN_RSA_BITS = 2048


def _served_key_problem(private: object) -> str | None:
    """Why gRPC's TLS library would not serve a certificate with this private key (its type or size), or None."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(private, rsa.RSAPrivateKey):
        return None if private.key_size >= MIN_RSA_BITS else f"an RSA key of {private.key_size} bits, under {MIN_RSA_BITS}"
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return None if private.curve.name in SERVED_CURVES else f"an EC key on {private.curve.name}"
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return None
    return f"a key of type {type(private).__name__}"


def renewal_problem(cert_pem: bytes, key_pem: bytes, ca_pem: bytes | None, files: tuple[Path, Path, Path | None],
                    now: datetime) -> str | None:
    """Why a renewed set of the front's TLS files (their bytes; ``files``: their paths, for the words) cannot be served
    at ``now``, or None. Stricter than the start-up checks, where gRPC judges what cryptography cannot read and says so
    loudly: on a renewal it would take an unusable set silently, or keep the old one without a word. Every certificate
    must be read, the chain run in order, the key be the leaf's own, unencrypted and of a type gRPC serves, the leaf
    within its dates, and one CA of the client CA bundle too."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert, key, client_ca = files
    for path, data, kind in [(cert, cert_pem, "certificate"), (key, key_pem, "private key")] + (
            [(client_ca, ca_pem, "certificate")] if ca_pem is not None else []):
        problem = pem_bytes_problem(data, kind)
        if problem is not None:
            return f"{path} {problem}"
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as e:
        return f"{cert} holds a block that is no readable certificate ({e}); write the whole chain again"
    for number, (issued, issuer) in enumerate(zip(chain, chain[1:]), start=1):
        if issued.issuer != issuer.subject:
            return (f"certificate {number + 1} of {cert} did not issue certificate {number}; put the chain in order: the "
                    "server's certificate first, then each issuer")
    problem = _date_problem(chain[0], now)
    if problem is not None:
        return f"the certificate in {cert} {problem}"
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        return f"{key} is no unencrypted private key that can be read ({e}); write the certificate's key, unencrypted"
    problem = _served_key_problem(private)
    if problem is not None:
        return (f"{key} holds {problem}, which gRPC's TLS library does not serve; issue the certificate with an RSA "
                f"key of {MIN_RSA_BITS} bits or more, an ECDSA key on P-256, P-384 or P-521, or an Ed25519 key")
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(*raw) != chain[0].public_key().public_bytes(*raw):
        return f"the private key in {key} is not the key of the certificate in {cert} (the first certificate of the file)"
    if ca_pem is not None:
        try:
            cas = x509.load_pem_x509_certificates(ca_pem)
        except ValueError as e:
            return f"{client_ca} holds a block that is no readable certificate ({e}); write the CA bundle again"
        problems = [_date_problem(ca, now) for ca in cas]
        if all(problems):
            return (f"the certificate bundle in {client_ca} holds no CA valid now (the first {problems[0]}); put the CAs' "
                    "valid certificates there")
    return None
