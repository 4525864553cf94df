"""The front's TLS files followed while the guard runs: renewed files are served to new connections, no restart.

cert-manager, a site's PKI or an operator replaces ``tls.crt``, ``tls.key`` (and a client CA bundle during a CA
rotation) in place; Kubernetes updates a mounted secret's files within a minute. gRPC reads a certificate once, so
the guard hands it through ``grpc.dynamic_ssl_server_credentials``: before each new handshake gRPC asks
``ServedTls.fetch`` for a newer set. A change of the files is taken up once none of them has been modified for
SETTLE_S (a certificate copied before its key is not served with the old key), and only when it passes the checks ``serve``
makes at start (PEM files, dates, the key being the certificate's own); a set that fails them is logged as an
ERROR, once, and the files served before stay served. Connections opened before a change keep their handshake.
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
from ..base.pem import pem_problem
from .certificates import ExpiryWatch, expiry_warnings, key_mismatch, validity_problem, when

logger = logging.getLogger(__name__)

#: How often the files are looked at (a stat of each), at most: on a new handshake and on the guard's liveness tick.
CHECK_S = 1.0
#: How long changed files must have been left alone before they are read: a copy of several files is over by then.
SETTLE_S = 1.0

Marks = tuple[tuple[int, ...], ...]


def left_alone(marks: Marks, now_ns: int) -> bool:
    """Whether every file of ``marks`` (``file_marks``) was last modified SETTLE_S or more before ``now_ns``."""
    return all(len(mark) < 4 or now_ns - mark[3] >= SETTLE_S * 1e9 for mark in marks)


def file_marks(paths: tuple[Path, ...]) -> Marks:
    """What tells a file's version without reading it: device, inode, size and modification time of each (after
    symbolic links: Kubernetes swaps a secret's files by its ``..data`` link); a file that cannot be looked at gives
    its error number. A copy of dermassist_client.dicom.tls's (the serving image ships no client; a test keeps the
    two alike)."""
    marks: list[tuple[int, ...]] = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError as e:
            marks.append((-1, e.errno or 0))
        else:
            marks.append((status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns))
    return tuple(marks)


def files_problem(cert: Path, key: Path, client_ca: Path | None, now: datetime) -> str | None:
    """Why these TLS files cannot be served at ``now`` (the checks ``serve`` makes at start, in their order); None
    when they can."""
    kinds = [(cert, "certificate"), (key, "private key")] + ([(client_ca, "certificate")] if client_ca else [])
    for path, kind in kinds:
        problem = pem_problem(path, kind)
        if problem is not None:
            return f"{path} {problem}"
    for path, bundle in [(cert, False)] + ([(client_ca, True)] if client_ca else []):
        problem = validity_problem(path, now, bundle=bundle)
        if problem is not None:
            return f"the certificate{' bundle' if bundle else ''} in {path} {problem}"
    return key_mismatch(cert, key)


class ServedTls:
    """The TLS files the front serves: read at start, then followed (``check``) and handed to gRPC (``fetch``)."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None, now: datetime) -> None:
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self._paths = (cert, key) + ((client_ca,) if client_ca is not None else ())
        self._lock = threading.Lock()
        self._served = file_marks(self._paths)
        self._configuration = self._read()
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._refused: Marks | None = None  # a set of files found unservable (told once)
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
        and passes the start-up checks; log what was done."""
        with self._lock:
            moment = time.monotonic()
            if moment < self._next_look:
                return
            self._next_look = moment + CHECK_S
            current = file_marks(self._paths)
            if current in (self._served, self._refused) or not left_alone(current, time.time_ns()):
                return  # unchanged, told already, or perhaps still being written: looked at again next time
            problem = files_problem(self.cert, self.key, self.client_ca, now)
            if problem is None:
                try:
                    configuration = self._read()
                except ConfigError as e:
                    problem = str(e)
            if problem is not None:
                self._refused = current
                logger.error("the renewed TLS files are not served: %s; new connections still get the certificate "
                             "valid until %s; put a valid set in place (it is taken up within seconds)", problem,
                             self._served_until())
                return
            self._served, self._refused, self._pending = current, None, configuration
            self.expiry = ExpiryWatch(self.cert, now)
            logger.info("serving the renewed TLS files to new connections: the certificate in %s is valid until %s%s "
                        "(connections opened before keep theirs)", self.cert, self._served_until(),
                        f", clients checked against {self.client_ca}" if self.client_ca else "")
            for path, bundle in [(self.cert, False)] + ([(self.client_ca, True)] if self.client_ca else []):
                for warning in expiry_warnings(path, now, bundle):
                    logger.warning("%s", warning)

    def _served_until(self) -> str:
        return "an unknown date" if self.expiry.not_after is None else when(self.expiry.not_after)

    def _read(self) -> grpc.ServerCertificateConfiguration:
        try:
            ca = self.client_ca.read_bytes() if self.client_ca is not None else None
            pair = (self.key.read_bytes(), self.cert.read_bytes())
        except OSError as e:
            raise ConfigError(f"TLS file {e.filename} cannot be read ({e.strerror}); pass readable PEM files to "
                              "--tls-cert, --tls-key and --tls-client-ca") from e
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=ca)
