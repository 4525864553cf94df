"""The front's TLS files followed while the guard runs: renewed files are served to new connections, no restart.

cert-manager, a site's PKI or an operator replaces ``tls.crt``, ``tls.key`` (and a client CA bundle during a CA
rotation) in place; Kubernetes updates a mounted secret's files within a minute (not one mounted with ``subPath``).
gRPC reads a certificate once, so the guard hands it through ``grpc.dynamic_ssl_server_credentials``: before each new
handshake gRPC asks ``ServedTls.fetch`` for a newer set. A change of the files is taken up once none of them has
changed for SETTLE_S (a certificate copied before its key is not served with the old key), and only when the bytes read
pass ``renewal_problem``; those same bytes are what gRPC gets. A set that fails is logged as an ERROR, once (again only
when its reason changes), the files served before stay served, and it is looked at again every RETRY_REFUSED_S (a
clock put right, a certificate reaching its start date). Connections opened before a change keep their handshake.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc

from ..base.errors import ConfigError
from .certificates import ExpiryWatch, expiry_warnings, renewal_problem, when

logger = logging.getLogger(__name__)

#: How often the files are looked at (a stat of each), at most: on a new handshake and on the guard's liveness tick.
CHECK_S = 1.0
#: How long changed files must have been left alone before they are read: a copy of several files is over by then.
SETTLE_S = 1.0
#: How often a refused set whose files do not change is judged again (a date that was not yet reached).
RETRY_REFUSED_S = 60.0

Marks = tuple[tuple[int, ...], ...]


def left_alone(marks: Marks, now_ns: int) -> bool:
    """Whether every file of ``marks`` (``file_marks``) last changed (written, or renamed into place) SETTLE_S or more
    before ``now_ns``; a time ahead of this clock (a file server's) does not hold a change back."""
    settle_ns = SETTLE_S * 1e9
    return all(len(mark) < 5 or not 0 <= now_ns - max(mark[3], mark[4]) < settle_ns for mark in marks)


def file_marks(paths: tuple[Path, ...]) -> Marks:
    """What tells a file's version without reading it: device, inode, size, modification and change times of each
    (the change time moves with a rename into place, a chmod or a chown; after symbolic links: Kubernetes swaps a
    secret's files by its ``..data`` link); a file that cannot be looked at gives its error number. A copy of
    dermassist_client.dicom.tls's (the serving image ships no client; a test keeps the two alike)."""
    marks: list[tuple[int, ...]] = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError as e:
            marks.append((-1, e.errno or 0))
        else:
            marks.append((status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns))
    return tuple(marks)


class ServedTls:
    """The TLS files the front serves: read at start, then followed (``check``) and handed to gRPC (``fetch``)."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None, now: datetime) -> None:
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self._paths = (cert, key) + ((client_ca,) if client_ca is not None else ())
        self._lock = threading.Lock()
        self._served = file_marks(self._paths)
        self._bytes = self._read()  # what gRPC serves
        self._configuration = self._configuration_of(self._bytes)
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._refused: tuple[Marks, str, float] | None = None  # a set found unservable: its marks, why, when
        self._next_look = 0.0
        self.expiry = ExpiryWatch(cert, now)

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials for ``add_secure_port`` that ask ``fetch`` before each new handshake."""
        return grpc.dynamic_ssl_server_credentials(self._configuration, self.fetch,
                                                   require_client_authentication=self.client_ca is not None)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The renewed files' configuration when there is one not yet handed over, else None (gRPC keeps what it
        has). gRPC calls it in its own threads."""
        self.check(datetime.now(UTC))
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def check(self, now: datetime) -> None:
        """Look at the files (at most once per CHECK_S) and stage a changed set that has been left alone for SETTLE_S
        and passes ``renewal_problem``; log what was done. Never raises: it runs in gRPC's threads and the guard's
        liveness loop."""
        with self._lock:
            moment = time.monotonic()
            if moment < self._next_look:
                return
            self._next_look = moment + CHECK_S
            current = file_marks(self._paths)
            if current == self._served or not left_alone(current, time.time_ns()):
                return  # unchanged, or perhaps still being written: looked at again next time
            if self._refused is not None and self._refused[0] == current and moment < self._refused[2]:
                return  # told already; judged again after RETRY_REFUSED_S
            files = self._read_checked(now)
            if isinstance(files, str):
                if self._refused is None or self._refused[:2] != (current, files):
                    logger.error("the renewed TLS files are not served: %s; new connections still get the certificate "
                                 "valid until %s; put a valid set in place (it is taken up within seconds)", files,
                                 self._served_until())
                self._refused = (current, files, moment + RETRY_REFUSED_S)
                return
            if files == self._bytes:  # the files served, put back or touched: nothing to hand over
                self._served, self._refused = current, None
                return
            self._served, self._refused, self._pending = current, None, self._configuration_of(files)
            self._bytes = files
            self.expiry = ExpiryWatch(self.cert, now, _chain(files[0]))
            logger.info("serving the renewed TLS files to new connections: the certificate in %s is valid until %s%s "
                        "(connections opened before keep theirs)", self.cert, self._served_until(),
                        f", clients checked against {self.client_ca}" if self.client_ca else "")
            for path, bundle in [(self.cert, False)] + ([(self.client_ca, True)] if self.client_ca else []):
                for warning in expiry_warnings(path, now, bundle):
                    logger.warning("%s", warning)

    def _read_checked(self, now: datetime) -> tuple[bytes, bytes, bytes | None] | str:
        """The files' bytes, read once, when they pass ``renewal_problem``; else why not."""
        try:
            files = self._read()
            problem = renewal_problem(*files, (self.cert, self.key, self.client_ca), now)
        except ConfigError as e:
            return str(e)
        except Exception as e:  # noqa: BLE001 - a library's failure on a strange file is a refusal, not a dead thread
            return f"they could not be checked ({type(e).__name__}: {e})"
        return files if problem is None else problem

    def _served_until(self) -> str:
        return "an unknown date" if self.expiry.not_after is None else when(self.expiry.not_after)

    def _read(self) -> tuple[bytes, bytes, bytes | None]:
        """The certificate's, the key's and the client CA's bytes."""
        try:
            ca = self.client_ca.read_bytes() if self.client_ca is not None else None
            return self.cert.read_bytes(), self.key.read_bytes(), ca
        except OSError as e:
            raise ConfigError(f"TLS file {e.filename} cannot be read ({e.strerror}); pass readable PEM files to "
                              "--tls-cert, --tls-key and --tls-client-ca") from e

    @staticmethod
    def _configuration_of(files: tuple[bytes, bytes, bytes | None]) -> grpc.ServerCertificateConfiguration:
        cert, key, ca = files
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)


def _chain(cert_pem: bytes) -> list:
    from cryptography import x509

    return list(x509.load_pem_x509_certificates(cert_pem))
