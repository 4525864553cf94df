"""Typed, self-validating settings of a DermAssist client connection."""
from __future__ import annotations

import contextlib
import ipaddress
import math
import re
import ssl as ssl_module
import time
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .classes import CLASS_CODES, MAX_BATCH_SIZE, MODEL_NAME
from .errors import ClientConfigError
from .files import path_kind

if TYPE_CHECKING:
    from typing import TypeGuard  # Python 3.10: read by the type checker only (the client runs on 3.9)

PROTOCOLS = ("grpc", "http")
#: The longest time setting: gRPC keeps keepalive times in 32-bit milliseconds (about 24.8 days), and a deadline of
#: 1e10 s overflowed into one that had passed ("no answer within the deadline; raise timeout", at once).
MAX_SECONDS = 2_000_000
MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # the guard's default --max-request-mib: a 50-megapixel TIFF fits
# Where the demo page binds by default (``dermassist-client demo``, ``dermassist demo``, ``launch_demo``). Here, not
# in demo.py, because that imports Gradio (an extra) and the command lines build their parsers without it.
DEMO_HOST = "127.0.0.1"
DEMO_PORT = 7860
# The demo page's retries (``dermassist-client demo --retries``, ``dermassist demo``, ``build_demo``): one, not
# ClientConfig's 3, so a page whose server is down says so soon.
DEMO_RETRIES = 1
_URL = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
_VERSION = re.compile(r"(?:[1-9][0-9]*)?")  # Triton takes a version number > 0, or none: its latest


@dataclass(frozen=True)
class ClientConfig:
    """Where and how to call the ensemble: address, protocol, deadline, retries, TLS, limits.

    ``timeout_s`` is the deadline of one public call (all its retries together). Retries happen
    only when the server is unavailable, after ``backoff_initial_s * 2**attempt`` seconds (capped
    at ``backoff_max_s``).
    """

    url: str
    protocol: str = "grpc"
    timeout_s: float = 30.0
    retries: int = 3
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 2.0
    ssl: bool = False
    root_certificates: Path | None = None
    private_key: Path | None = None
    certificate_chain: Path | None = None
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_batch_size: int = MAX_BATCH_SIZE
    model_name: str = MODEL_NAME
    model_version: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or "://" in self.url or not _URL.match(self.url):
            raise ClientConfigError(f"url must be HOST:PORT without a scheme (e.g. 127.0.0.1:8001), got {self.url!r}",
                                    "url")
        port = int(self.url.rsplit(":", 1)[1])
        if not 1 <= port <= 65535:
            raise ClientConfigError(f"url port must be between 1 and 65535, got {port} in {self.url!r}", "url")
        if self.protocol not in PROTOCOLS:
            raise ClientConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}", "protocol")
        for name in ("timeout_s", "backoff_initial_s", "backoff_max_s", "keepalive_time_s", "keepalive_timeout_s"):
            require_seconds(name, getattr(self, name))
        if not _is_int(self.retries) or self.retries < 0:
            raise ClientConfigError(f"retries must be an integer >= 0 (not a bool), got {self.retries!r}", "retries")
        if not _is_int(self.max_batch_size) or not 1 <= self.max_batch_size <= MAX_BATCH_SIZE:
            raise ClientConfigError(
                f"max_batch_size must be between 1 and the server's {MAX_BATCH_SIZE}, got {self.max_batch_size!r}"
            )
        if not isinstance(self.model_version, str) or not _VERSION.fullmatch(self.model_version):
            raise ClientConfigError(f"model_version must be empty (the server's latest) or a version number above 0 as "
                                    f"a string, e.g. '1', got {self.model_version!r}", "model_version")
        if not _is_int(self.max_message_bytes) or self.max_message_bytes < 1024 * 1024:
            raise ClientConfigError(f"max_message_bytes must be an integer >= 1 MiB, got {self.max_message_bytes!r}")
        self._validate_tls()

    def _validate_tls(self) -> None:
        for name in ("root_certificates", "private_key", "certificate_chain"):
            value = getattr(self, name)
            if value is None:
                continue
            path = Path(value)
            object.__setattr__(self, name, path)
            if not self.ssl:
                raise ClientConfigError(f"{name} was given but ssl is off; pass ssl=True to use TLS", name)
            kind = path_kind(path)
            if kind is not None or not path.exists():
                what = "does not exist" if kind is None else f"is {kind}"
                raise ClientConfigError(f"{name} file {path} {what}; pass the path of a PEM file", name)
        if (self.private_key is None) != (self.certificate_chain is None):
            raise ClientConfigError(
                "private_key and certificate_chain go together (client certificate authentication); "
                f"got private_key={self.private_key}, certificate_chain={self.certificate_chain}"
            )
        if self.root_certificates is not None:
            check_root_certificates(self.root_certificates)
        if self.certificate_chain is not None and self.private_key is not None:
            check_key_pair(self.certificate_chain, self.private_key)


def is_loopback(host: str, connecting: bool = False) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine only: a loopback
    address or ``localhost`` in any case; ``connecting``: also the unspecified address (``0.0.0.0``, ``::``), which a
    client reaches as this machine (a server bound there listens on every interface). Another host name may resolve
    to any interface, so it is not."""
    name = host.strip("[]")
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(name)
        return address.is_loopback or (connecting and address.is_unspecified)
    return name.lower() == "localhost"


def plaintext_warning(config: ClientConfig) -> str | None:
    """What to tell a caller about to send pictures unencrypted beyond this machine (None: TLS, or loopback)."""
    host = config.url.rsplit(":", 1)[0]
    if config.ssl or is_loopback(host, connecting=True):
        return None
    return (f"sending pictures to {config.url} in PLAINTEXT: they and their answers cross the network unencrypted; "
            "pass ssl=True (--ssl) with the server's CA (docs/hospital-integration.md, 'Transport')")


def config_default(name: str) -> Any:
    """The default of ClientConfig field ``name``: the one place each default is written (flags and constructors
    take it from here)."""
    for f in fields(ClientConfig):
        if f.name == name and f.default is not MISSING:
            return f.default
    with_defaults = [f.name for f in fields(ClientConfig) if f.default is not MISSING]
    raise KeyError(f"ClientConfig has no field {name!r} with a default; expected one of {', '.join(with_defaults)}")


def class_codes(codes: Iterable[str], setting: str | None = "not_learnt") -> tuple[str, ...]:
    """``codes`` as class codes of the contract (any case), each once, in the contract's order; a ClientConfigError
    naming an unknown one, the codes expected and the fix. ``setting``: the option they were given as, which the
    message starts with (None: a caller that names it itself, as argparse does)."""
    prefix = "" if setting is None else f"{setting}: "
    given = set()
    for code in [codes] if isinstance(codes, str) else codes:
        canonical = code.strip().upper() if isinstance(code, str) else code
        if canonical not in CLASS_CODES:
            raise ClientConfigError(f"{prefix}{code!r} is not a class code; expected one of {', '.join(CLASS_CODES)}: "
                                    "pass those codes only")
        given.add(canonical)
    return tuple(code for code in CLASS_CODES if code in given)


def require_seconds(name: str, value: object) -> float:
    """``value`` when it is a positive, finite number of seconds up to ``MAX_SECONDS``; ClientConfigError naming
    ``name`` otherwise."""
    if not _is_number(value) or not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise ClientConfigError(f"{name} must be a positive number of seconds up to {MAX_SECONDS:,} (about 23 "
                                f"days; a finite int or float, not a bool, inf or nan), got {value!r}", name)
    return float(value)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_root_certificates(path: Path) -> None:
    """Raise ClientConfigError unless ``path`` holds at least one PEM certificate (the CA that signed the server's)."""
    try:
        ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
    except (ssl_module.SSLError, OSError, ValueError) as e:
        raise ClientConfigError(
            f"root_certificates file {path} holds no PEM certificate ({e}); expected the CA certificate that signed the "
            "server's, as PEM (-----BEGIN CERTIFICATE-----); pass that file"
        ) from e


def check_key_pair(certificate_chain: Path, private_key: Path) -> None:
    """Raise ClientConfigError unless ``certificate_chain`` holds a PEM certificate and ``private_key`` the unencrypted
    PEM key of that certificate (the pair a client presents for mutual TLS)."""
    context = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=str(certificate_chain))
    except (ssl_module.SSLError, OSError, ValueError) as e:
        raise ClientConfigError(
            f"certificate_chain file {certificate_chain} holds no PEM certificate ({e}); expected the client "
            "certificate (then its intermediates) as PEM; pass that file"
        ) from e
    try:
        context.load_cert_chain(str(certificate_chain), str(private_key), password=lambda: b"")
    except (ssl_module.SSLError, OSError, ValueError) as e:
        if "KEY_VALUES_MISMATCH" in str(e):
            raise ClientConfigError(
                f"private_key file {private_key} is not the key of the certificate in certificate_chain file "
                f"{certificate_chain} ({e}); pass the key that was issued with that certificate"
            ) from e
        raise ClientConfigError(
            f"private_key file {private_key} is not an unencrypted PEM private key ({e}); expected "
            "a key in PEM (-----BEGIN ... PRIVATE KEY-----), not password-protected (decrypt it first, e.g. "
            "openssl pkey -in KEY -out KEY.pem)"
        ) from e


def certificate_dates_problem(certificate: Path, now: float | None = None) -> str:
    """How the first certificate in the PEM file ``certificate`` is out of its validity dates at ``now`` (epoch
    seconds; the current time by default): "expired on <date>", "is not valid until <date>", or "" when it is within
    them or cannot be read here (the TLS library then says what is wrong with it)."""
    try:  # the standard library's only reader of a certificate's dates that needs no third-party package
        decoded = ssl_module._ssl._test_decode_cert(str(certificate))  # type: ignore[attr-defined]
        not_before, not_after = decoded["notBefore"], decoded["notAfter"]
        start, end = ssl_module.cert_time_to_seconds(not_before), ssl_module.cert_time_to_seconds(not_after)
    except (AttributeError, KeyError, OSError, ValueError):  # ssl.SSLError is an OSError
        return ""
    now = time.time() if now is None else now
    if now > end:
        return f"expired on {not_after}"
    if now < start:
        return f"is not valid until {not_before}"
    return ""


#: Help of the TLS options, for every command line that takes them (``dermassist-client``, ``dermassist evaluate``).
TLS_HELP = {
    "ssl": "connect over TLS",
    "root_certificates": "CA that signed the server's certificate",
    "private_key": "client key, for mutual TLS (with --certificate-chain)",
    "certificate_chain": "client certificate, for mutual TLS",
}


def connection_options(args: Any) -> dict[str, Any]:
    """Client options from the command line's connection flags (deadline, retries, model version and TLS)."""
    return {"timeout": args.timeout, "retries": args.retries, "model_version": args.model_version, "ssl": args.ssl,
            "root_certificates": args.root_certificates, "private_key": args.private_key,
            "certificate_chain": args.certificate_chain}
