"""DICOM TLS (PS3.15 Annex B, the BCP 195 profiles: TLS 1.2 or later) for the node's two legs: the modalities that send
to it (``NodeTls``: its certificate, and the CA whose client certificates it requires) and the PACS it sends to
(``PacsTls``: the CA that signed the PACS's certificate, and the node's own client certificate where the PACS asks for
one). Each setting is checked when it is made; an error names the flag, what its file holds and the fix. The node's
files are followed while it listens (``Renewal``): a renewed certificate, key, client CA or revocation list is used
for new associations without a restart; the PACS leg reads its files again for each forwarding pass."""
from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import certificate_dates_problem
from ..files import path_kind
from .crl import CrlFormatError, RevocationList, revocation_lists
from .errors import DicomError

log = logging.getLogger(__name__)
#: The oldest TLS version either leg speaks (BCP 195; DICOM's non-downgrading profile).
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


def _pem_file(path: Path | str | None, flag: str) -> Path | None:
    """``path`` as a Path when it names a regular file (None stays None); a DicomError naming ``flag`` otherwise."""
    if path is None:
        return None
    path = Path(path)
    kind = path_kind(path)
    if kind is not None or not path.exists():
        raise DicomError(f"{flag} file {path} {'does not exist' if kind is None else f'is {kind}'}; pass the path of a "
                         "PEM file")
    return path


def _load(action: Callable[[], Any], flag: str, path: Path, expected: str) -> None:
    """Run ``action`` (one load into an SSL context); its failure as a DicomError naming ``flag``, ``path``, what the
    file should hold, and the fix."""
    try:
        action()
    except (ssl.SSLError, OSError, ValueError) as e:
        if "KEY_VALUES_MISMATCH" in str(e):
            raise DicomError(f"{flag} file {path} is not the key of the first certificate given with it ({e}); pass "
                             "the key issued with that certificate, and a certificate file that begins with the "
                             "node's own certificate, then its intermediates") from e
        raise DicomError(f"{flag} file {path} cannot be used ({e}); expected {expected}") from e


def _own_certificate(context: ssl.SSLContext, certificate: Path, key: Path, flags: tuple[str, str]) -> None:
    """Load a certificate chain and its key into ``context``, refusing one out of its validity dates. The file is
    checked in a context of its own: loaded as trusted into ``context``, its intermediates and root would have been
    trusted for the peer too, beside the CA the operator named (review 21, H1)."""
    _load(lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(certificate)), flags[0],
          certificate, "the certificate (then its intermediates) as PEM (-----BEGIN CERTIFICATE-----)")
    dates = certificate_dates_problem(certificate)
    if dates:
        raise DicomError(f"{flags[0]} file {certificate}: the certificate {dates}; pass a certificate within its dates")
    _load(lambda: context.load_cert_chain(str(certificate), str(key), password=lambda: b""), flags[1], key,
          "an unencrypted PEM private key (-----BEGIN ... PRIVATE KEY-----; decrypt one that is password-protected "
          "first, e.g. openssl pkey -in KEY -out KEY.pem)")


def _trusted(context: ssl.SSLContext, ca: Path, flag: str) -> None:
    """Trust the CA certificates in ``ca``, an intermediate among them as a trust anchor of its own (a hospital that
    names its issuing CA means that CA, not its root's every other); a first CA out of its dates is refused (every
    peer would have been told its own certificate was)."""
    _load(lambda: context.load_verify_locations(cafile=str(ca)), flag, ca,
          "one or more CA certificates as PEM (-----BEGIN CERTIFICATE-----)")
    dates = certificate_dates_problem(ca)
    if dates:
        raise DicomError(f"{flag} file {ca}: the CA certificate {dates}; pass the CA's renewed certificate")
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN


CRL_MARK = b"-----BEGIN X509 CRL-----"
CRL_NEEDS_CLIENT_CA = ("--tls-crl needs --tls-client-ca: revocation lists are checked for the senders' client "
                       "certificates, which only --tls-client-ca asks for")


def _revocations(context: ssl.SSLContext, crl: Path) -> None:
    """Check each sender's certificate against the revocation lists in ``crl`` (its issuer's must be among them: a
    certificate whose CA has no list there is refused, as OpenSSL does)."""
    try:
        holds_one = CRL_MARK in crl.read_bytes()
    except OSError as e:
        raise DicomError(f"--tls-crl file {crl} cannot be read ({e.strerror or e}); pass a readable PEM file") from e
    if not holds_one:
        raise DicomError(f"--tls-crl file {crl} holds no revocation list; expected the CAs' CRLs as PEM "
                         "(-----BEGIN X509 CRL-----; convert a DER one with openssl crl -inform DER -in CRL -out "
                         "CRL.pem)")
    now = datetime.now(timezone.utc)
    for number, listed in enumerate(crl_lists(crl), start=1):
        if listed.next_update is not None and listed.next_update < now:
            raise DicomError(f"--tls-crl file {crl}: list {number} is past its next update "
                             f"({listed.next_update:%Y-%m-%d %H:%M:%S} UTC), so every sender of its CA would be refused; "
                             "fetch the CA's current list")
    _load(lambda: context.load_verify_locations(cafile=str(crl)), "--tls-crl", crl,
          "certificate revocation lists as PEM (-----BEGIN X509 CRL-----)")
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def crl_lists(crl: Path) -> list[RevocationList]:
    """The revocation lists of the file ``crl`` (their issuers and dates); a DicomError naming the file when one cannot
    be read."""
    try:
        return revocation_lists(crl.read_bytes())
    except OSError as e:
        raise DicomError(f"--tls-crl file {crl} cannot be read ({e.strerror or e}); pass a readable PEM file") from e
    except CrlFormatError as e:
        raise DicomError(f"--tls-crl file {crl}: {e}; expected the CAs' CRLs as PEM (-----BEGIN X509 CRL-----)") from e


def older_lists(new: list[RevocationList], used: list[RevocationList]) -> list[int]:
    """The numbers (from 1) of the lists of ``new`` issued before the list of the same CA in ``used``: a cached or
    rolled-back copy, which may let a revoked sender in again."""
    latest: dict[bytes, datetime] = {}
    for listed in used:
        latest[listed.issuer] = max(listed.this_update, latest.get(listed.issuer, listed.this_update))
    return [number for number, listed in enumerate(new, start=1)
            if listed.issuer in latest and listed.this_update < latest[listed.issuer]]


#: DICOM's TLS profiles the node offers (PS3.15 Annex B): ``bcp195``, TLS 1.2 or later with forward-secret ciphers
#: only (B.9, B.10); ``aes``, the same plus TLS_RSA_WITH_AES_128_CBC_SHA, the one cipher of the older AES profile
#: (B.3), for modalities and PACS that speak no other (no forward secrecy: turn it on for such peers only; that cipher
#: exchanges its key by RSA, so the node's certificate must have an RSA key).
PROFILES = ("bcp195", "aes")
AES_PROFILE_CIPHER = "AES128-SHA"


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise DicomError(f"--tls-profile must be one of {', '.join(PROFILES)}, got {profile!r}")


def _with_profile(context: ssl.SSLContext, profile: str) -> ssl.SSLContext:
    """``context`` at TLS 1.2 or later, with the ciphers of ``profile`` (TLS 1.3's own are always offered)."""
    context.minimum_version = MINIMUM_VERSION
    if profile == "aes":
        offered = [c["name"] for c in context.get_ciphers() if c.get("protocol") != "TLSv1.3"]
        context.set_ciphers(":".join([*offered, AES_PROFILE_CIPHER]))
    return context


class _HandshakeInTheAssociation(ssl.SSLContext):
    """A server context whose sockets shake hands when the association's own thread asks (``DicomNode._on_connection``
    calls ``do_handshake``), not in pynetdicom's accept loop, where one sender that connects and sends nothing would
    stop the node accepting anyone. With a ``renewal``, each socket is wrapped by the context of the files as they
    are now."""

    renewal: Renewal | None = None

    def wrap_socket(self, sock: Any, server_side: bool = False, do_handshake_on_connect: bool = True,
                    *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        context = self if self.renewal is None else self.renewal.current()
        return ssl.SSLContext.wrap_socket(context, sock, server_side, False, *args, **kwargs)


#: How often, at most, the node looks at its TLS files (a stat of each), as senders connect.
CHECK_S = 1.0
#: How long changed files must have been left alone before they are read: a copy of several files is over by then.
SETTLE_S = 1.0
#: How often a refused set whose files do not change is judged again (a date that was not yet reached).
RETRY_REFUSED_S = 60.0

Marks = tuple[tuple[int, ...], ...]


def file_marks(paths: tuple[Path, ...]) -> Marks:
    """What tells each file's version without reading it: device, inode, size, modification and change times (the
    change time moves with a rename into place, a chmod or a chown; after symbolic links: Kubernetes swaps a secret's
    files by a link); a file that cannot be looked at gives its error number. The guard has a copy,
    dermassist.guard.rotation's (the client imports no project package)."""
    marks: list[tuple[int, ...]] = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError as e:
            marks.append((-1, e.errno or 0))
        else:
            marks.append((status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns))
    return tuple(marks)


def left_alone(marks: Marks, now_ns: int) -> bool:
    """Whether every file of ``marks`` last changed (written, or renamed into place) SETTLE_S or more before
    ``now_ns``; a time ahead of this clock (a file server's) does not hold a change back."""
    settle_ns = SETTLE_S * 1e9
    return all(len(mark) < 5 or not 0 <= now_ns - max(mark[3], mark[4]) < settle_ns for mark in marks)


class Renewal:
    """The node's TLS files followed while it listens: a change that has been left alone for SETTLE_S and passes the
    checks made at start (and, for revocation lists, is no older than the lists in use) is used for new associations
    (those open keep theirs); one that fails them is logged as an ERROR, once (again when its reason changes), the files
    used before stay in use, and it is judged again every RETRY_REFUSED_S (a date reached)."""

    def __init__(self, tls: NodeTls, context: ssl.SSLContext) -> None:
        self.tls = tls
        self._context = context
        self._paths = tuple(p for p in (tls.certificate, tls.key, tls.client_ca, tls.crl) if p is not None)
        self._used = file_marks(self._paths)
        self._lists = crl_lists(tls.crl) if tls.crl is not None else []
        self._refused: tuple[Marks, str, float] | None = None  # a set found unusable: its marks, why, when again
        self._next_look = 0.0
        self._lock = threading.Lock()

    def current(self) -> ssl.SSLContext:
        """The context of the files as they are (looked at no more than once per CHECK_S). Never raises: it runs in
        pynetdicom's accept loop."""
        with self._lock:
            moment = time.monotonic()
            if moment < self._next_look:
                return self._context
            self._next_look = moment + CHECK_S
            marks = file_marks(self._paths)
            if marks == self._used or not left_alone(marks, time.time_ns()):
                return self._context
            if self._refused is not None and self._refused[0] == marks and moment < self._refused[2]:
                return self._context
            renewed = self._renewed()
            if isinstance(renewed, str):
                if self._refused is None or self._refused[:2] != (marks, renewed):
                    log.error("the renewed TLS files are not used: %s; new associations still get the files used "
                              "before (put a valid set in place: it is taken up without a restart)", renewed)
                self._refused = (marks, renewed, moment + RETRY_REFUSED_S)
                return self._context
            (self._context, self._lists), self._used, self._refused = renewed, marks, None
            log.info("new associations now use the renewed TLS files: %s", self.tls)
            return self._context

    def _renewed(self) -> tuple[ssl.SSLContext, list[RevocationList]] | str:
        """The context and revocation lists of the files as they are, or why they cannot be used."""
        try:
            context = self.tls.context()
            lists = crl_lists(self.tls.crl) if self.tls.crl is not None else []
        except DicomError as e:
            return str(e)
        except Exception as e:  # noqa: BLE001 - a library's failure on a strange file is a refusal, not a dead loop
            return f"they could not be checked ({type(e).__name__}: {e})"
        older = older_lists(lists, self._lists)
        if older:
            return (f"--tls-crl file {self.tls.crl}: list {older[0]} was issued before the list of its CA in use (a "
                    "cached or rolled-back copy, which may let a revoked sender in again); fetch the CA's current list")
        return context, lists


@dataclass(frozen=True)
class NodeTls:
    """TLS on the port the node listens on: its certificate chain and key (PEM), and ``client_ca``: when given, a
    sender must present a certificate that CA signed (mutual TLS: the only check of who a sender is; AE titles are
    not authentication); ``crl``: the certificate revocation lists of those CAs (PEM), a sender whose certificate
    they revoke is refused."""

    certificate: Path
    key: Path
    client_ca: Path | None = None
    profile: str = PROFILES[0]
    crl: Path | None = None

    def __post_init__(self) -> None:
        _check_profile(self.profile)
        object.__setattr__(self, "certificate", _pem_file(self.certificate, "--tls-cert"))
        object.__setattr__(self, "key", _pem_file(self.key, "--tls-key"))
        object.__setattr__(self, "client_ca", _pem_file(self.client_ca, "--tls-client-ca"))
        object.__setattr__(self, "crl", _pem_file(self.crl, "--tls-crl"))
        if self.crl is not None and self.client_ca is None:
            raise DicomError(CRL_NEEDS_CLIENT_CA)
        self.context()

    def context(self) -> ssl.SSLContext:
        """A server context for pynetdicom (each handshake made in the association's own thread, by
        ``DicomNode._on_connection``)."""
        context = _with_profile(_HandshakeInTheAssociation(ssl.PROTOCOL_TLS_SERVER), self.profile)
        _own_certificate(context, self.certificate, self.key, ("--tls-cert", "--tls-key"))
        if self.client_ca is not None:
            _trusted(context, self.client_ca, "--tls-client-ca")
            context.verify_mode = ssl.CERT_REQUIRED
        if self.crl is not None:
            _revocations(context, self.crl)
        return context

    def followed_context(self) -> ssl.SSLContext:
        """The context the node listens with: it follows the files while the node runs (``Renewal``)."""
        context = self.context()
        context.renewal = Renewal(self, context)  # type: ignore[attr-defined]  # a _HandshakeInTheAssociation
        return context

    def __str__(self) -> str:
        who = (f"senders must present a certificate signed by {self.client_ca}" if self.client_ca
               else "any sender (no client certificate asked for)")
        if self.crl is not None:
            who += f", not revoked by {self.crl}"
        return f"TLS ({self.profile} profile), {who}; certificate {self.certificate}, followed for renewals"


@dataclass(frozen=True)
class PacsTls:
    """TLS to the PACS: ``ca``, the CA certificates that signed the PACS's (None: this system's trusted CAs);
    ``certificate`` and ``key``, the node's own client certificate for a PACS that asks for one; ``server_name``, the
    name the PACS's certificate must hold (None: the PACS host as given)."""

    ca: Path | None = None
    certificate: Path | None = None
    key: Path | None = None
    server_name: str | None = None
    profile: str = PROFILES[0]

    def __post_init__(self) -> None:
        _check_profile(self.profile)
        object.__setattr__(self, "ca", _pem_file(self.ca, "--pacs-ca"))
        object.__setattr__(self, "certificate", _pem_file(self.certificate, "--pacs-cert"))
        object.__setattr__(self, "key", _pem_file(self.key, "--pacs-key"))
        if (self.certificate is None) != (self.key is None):
            raise DicomError(f"--pacs-cert and --pacs-key go together (the node's client certificate and its key); got "
                             f"--pacs-cert {self.certificate}, --pacs-key {self.key}")
        if self.server_name is not None and not (isinstance(self.server_name, str) and self.server_name.strip()):
            raise DicomError(f"--pacs-server-name must be the host name in the PACS's certificate, got "
                             f"{self.server_name!r}")
        self.context()

    def context(self) -> ssl.SSLContext:
        """A client context that checks the PACS's certificate and its name, and presents the node's where given."""
        context = _with_profile(ssl.create_default_context(ssl.Purpose.SERVER_AUTH) if self.ca is None else
                                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), self.profile)
        if self.ca is not None:
            _trusted(context, self.ca, "--pacs-ca")
        if self.certificate is not None and self.key is not None:
            _own_certificate(context, self.certificate, self.key, ("--pacs-cert", "--pacs-key"))
        return context


#: A connection closed before it sent a byte, told at INFO: what a port check or a load balancer's probe does.
CLOSED_BEFORE_HELLO = "a port check or a load balancer's probe (nothing to do)"


def connection_closed(error: BaseException) -> bool:
    """Whether a failed handshake is the peer closing or resetting its connection, without a TLS alert."""
    return isinstance(error, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, BrokenPipeError))


def handshake_refusal(error: BaseException, timeout_s: float, profile: str = PROFILES[0], after_hello: bool = True) -> str:
    """Why a sender's TLS handshake with the node (of TLS ``profile``) failed, and what to change, for its log;
    ``after_hello``: whether the sender had sent a byte (its hello) before it failed."""
    if connection_closed(error) and not after_hello:
        return f"its connection was reset before its TLS hello ({type(error).__name__}): {CLOSED_BEFORE_HELLO}"
    if connection_closed(error):
        return (f"it closed the connection after its TLS hello, without saying why ({type(error).__name__}): it most "
                "likely does not accept the node's certificate (not signed by a CA it trusts, or not naming the host "
                "it called) or shares no cipher with --tls-profile; check the sender's TLS log and its trusted CAs")
    if isinstance(error, TimeoutError):
        return (f"its TLS handshake did not finish within {timeout_s:g} s (--idle-timeout): it sent nothing, or too "
                "slowly")
    reason = str(getattr(error, "reason", "") or "")
    if isinstance(error, ssl.SSLCertVerificationError) or reason == "CERTIFICATE_VERIFY_FAILED":
        message = str(getattr(error, "verify_message", "") or error)
        if "revoked" in message:
            return f"its certificate is revoked ({message}; --tls-crl): a sender that should be let in needs a " \
                   "certificate issued anew"
        if "crl" in message.lower():
            return f"the revocation lists cannot vouch for its certificate ({message}): --tls-crl must hold the " \
                   "current CRL of each CA in --tls-client-ca (write the new list over the file: the node takes it up " \
                   "without a restart)"
        if "expired" in message or "not yet valid" in message:
            return f"a certificate of its chain is out of its dates ({message}): renew the sender's certificate, or " \
                   "the CA's in --tls-client-ca if that is the one (or check the clocks)"
        if "too weak" in message or "too small" in message:
            return f"its certificate's key or signature is too weak ({message}): issue it a certificate with an RSA " \
                   "key of 2048 bits or more, or an EC key, signed with SHA-256 or better"
        return f"its certificate was refused ({message}): give it a certificate signed by the CA of --tls-client-ca " \
               "(an intermediate CA there is trusted on its own)"
    if reason in ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED"):
        return "it presented no certificate, and --tls-client-ca requires one: configure the sender's client " \
               "certificate, signed by that CA"
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL"):
        return f"it did not speak TLS ({reason}): configure it for DICOM TLS, or send it to a port without TLS"
    if reason in ("UNSUPPORTED_PROTOCOL", "VERSION_TOO_LOW", "TLSV1_ALERT_PROTOCOL_VERSION"):
        return f"it speaks only a TLS older than 1.2 ({reason}), which the node refuses: update the sender"
    if reason in ("NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "SSLV3_ALERT_HANDSHAKE_FAILURE"):
        if profile == "aes":
            return f"it offers no cipher the node has, the AES profile's included ({reason}): the node's certificate " \
                   "must have an RSA key for that one; else check the sender's TLS settings"
        return f"it offers no cipher of the node's profile ({reason}): a sender of DICOM's older AES profile needs " \
               "--tls-profile aes, and a node certificate with an RSA key"
    if reason == "SSLV3_ALERT_CERTIFICATE_EXPIRED":
        return ("it refused the node's certificate as expired: renew --tls-cert (the node takes up the renewed file "
                "without a restart)")
    if reason in ("TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
                  "TLSV1_ALERT_DECRYPT_ERROR"):
        return f"it does not trust the node's certificate ({reason}): give the sender the CA that signed --tls-cert " \
               "(and check the name it expects is in that certificate)"
    return f"{type(error).__name__}: {error}"


def pacs_refusal(error: BaseException, server_name: str) -> str:
    """Why the node's TLS connection to the PACS failed, and what to change, for a PacsUnavailableError."""
    reason = str(getattr(error, "reason", "") or "")
    message = str(getattr(error, "verify_message", "") or "")
    if isinstance(error, ssl.SSLCertVerificationError):
        if "hostname" in message.lower() or "ip address mismatch" in message.lower():
            return f"the PACS's certificate does not name {server_name!r} ({message}): pass --pacs-server-name with " \
                   "the name it holds, or address the PACS by that name"
        if "expired" in message or "not yet valid" in message:
            return f"the PACS's certificate is out of its dates ({message}): renew it on the PACS (or check the clocks)"
        return f"the PACS's certificate is not trusted ({message}): pass the CA that signed it with --pacs-ca"
    if reason in ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE"):
        return f"the PACS port does not speak TLS ({reason}): check the port (DICOM TLS is often 2762), or leave out " \
               "--pacs-tls for a PACS without it"
    if reason in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "VERSION_TOO_LOW"):
        return f"the PACS speaks only a TLS older than 1.2 ({reason}), which the node refuses: update the PACS"
    if reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED":
        return f"the PACS asks for a client certificate ({reason}): pass the node's with --pacs-cert and --pacs-key"
    if reason == "SSLV3_ALERT_HANDSHAKE_FAILURE":
        return f"the PACS ended the handshake ({reason}): it asks for a client certificate (pass the node's with " \
               "--pacs-cert and --pacs-key), or it shares no cipher with the node (a PACS of DICOM's older AES " \
               "profile: --tls-profile aes)"
    if reason == "SSLV3_ALERT_CERTIFICATE_EXPIRED":
        return f"the PACS refused the node's client certificate as expired ({reason}): renew --pacs-cert"
    if reason in ("TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
                  "TLSV1_ALERT_ACCESS_DENIED"):
        return f"the PACS refused the node's client certificate ({reason}): have the PACS trust the CA that signed " \
               "--pacs-cert"
    return f"TLS with the PACS failed ({type(error).__name__}: {error})"


class RecordingSocket(ssl.SSLSocket):
    """A client TLS socket that keeps its first TLS failure on its context (``context.failure``): pynetdicom logs a
    failed connection and drops the error, and under TLS 1.3 a refused client certificate only shows at the first
    read."""

    def connect(self, address: Any) -> None:
        """Connect and shake hands; a TLS failure is recorded, then raised."""
        try:
            super().connect(address)
        except OSError as e:
            self._record(e)
            raise

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        """Read; a TLS failure (a refusal the PACS sends after the handshake) is recorded, then raised."""
        try:
            return super().recv(buflen, flags)
        except OSError as e:
            self._record(e)
            raise

    def _record(self, error: OSError) -> None:
        if isinstance(error, ssl.SSLError) and getattr(self.context, "failure", None) is None:
            self.context.failure = error  # type: ignore[attr-defined]  # an attribute of this call's own context


def recording_context(tls: PacsTls) -> ssl.SSLContext:
    """``tls``'s client context, made for one association: its sockets record their first TLS failure on it."""
    context = tls.context()
    context.sslsocket_class = RecordingSocket
    context.failure = None  # type: ignore[attr-defined]
    return context
