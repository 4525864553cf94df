"""Settings of the DICOM node: its own AE, the PACS it forwards to, and its spool folder; validated once."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import DicomError
from .identity import OutputIdentity
from .tls import NodeTls, PacsTls

MAX_AE_TITLE = 16
DEFAULT_AE_TITLE = "DERMASSIST"
DEFAULT_PORT = 11112
#: Seconds between attempts to send what waits in the spool while the PACS is down.
DEFAULT_RETRY_S = 30.0


def check_ae_title(value: str, what: str) -> str:
    """An AE title: 1 to 16 printable ASCII characters, no backslash, not only spaces."""
    if not (isinstance(value, str) and 0 < len(value) <= MAX_AE_TITLE and value.strip() and value.isascii()
            and value.isprintable() and "\\" not in value):
        raise DicomError(f"{what} must be 1 to {MAX_AE_TITLE} printable ASCII characters without '\\', got {value!r}")
    return value


def check_port(value: int, what: str, allow_zero: bool = False) -> int:
    """A TCP port (0 only where the system may choose one)."""
    low = 0 if allow_zero else 1
    if not (isinstance(value, int) and low <= value <= 65535):
        raise DicomError(f"{what} must be a port number {low}..65535, got {value!r}")
    return value


def parse_host_port(text: str, what: str) -> tuple[str, int]:
    """'HOST:PORT' into (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DicomError(f"{what} must be HOST:PORT (e.g. pacs.example.org:104), got {text!r}")
    return host, check_port(int(port), what)


@dataclass(frozen=True)
class PacsConfig:
    """Where the node C-STOREs its results: host, port, called AE title, the network timeout, and ``tls`` (None: plain
    DICOM)."""

    host: str
    port: int
    ae_title: str
    timeout_s: float = 30.0
    tls: PacsTls | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise DicomError("PACS host must not be empty")
        check_port(self.port, "PACS port")
        check_ae_title(self.ae_title, "PACS AE title")
        if not self.timeout_s > 0:
            raise DicomError(f"PACS timeout must be positive seconds, got {self.timeout_s!r}")

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}" + (" (TLS)" if self.tls is not None else "")


@dataclass(frozen=True)
class NodeConfig:
    """The DICOM node: the address and AE title it listens on, the PACS, the spool, the output identity.

    ``forward_source``: also C-STORE the received image to the PACS (so the PACS holds the image its
    SEG and SR reference; turn it off when the PACS itself is the sender). ``retry_s``: seconds between
    attempts to send what waits in the spool while the PACS is down. ``calling_aets``: the calling AE titles
    whose associations are accepted (empty: any; DICOM authenticates no one, so this only keeps out senders
    that were not configured). ``tls``: DICOM TLS on the port it listens on (None: plain DICOM).
    """

    spool: Path
    ae_title: str = DEFAULT_AE_TITLE
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    pacs: PacsConfig | None = None
    forward_source: bool = True
    retry_s: float = DEFAULT_RETRY_S
    identity: OutputIdentity = field(default_factory=OutputIdentity)
    calling_aets: tuple[str, ...] = ()
    tls: NodeTls | None = None

    def __post_init__(self) -> None:
        check_ae_title(self.ae_title, "node AE title")
        object.__setattr__(self, "calling_aets", tuple(self.calling_aets))
        for title in self.calling_aets:
            check_ae_title(title, "an accepted calling AE title (--allow-aet)")
        check_port(self.port, "node port", allow_zero=True)
        if isinstance(self.retry_s, bool) or not (isinstance(self.retry_s, (int, float)) and 0 < self.retry_s <= 86400):
            raise DicomError("spool retry interval (--pacs-retry) must be more than 0 and at most 86400 seconds, "
                             f"got {self.retry_s!r}")
        object.__setattr__(self, "spool", Path(self.spool))
