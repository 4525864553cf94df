"""What an association may send before the node reads it (``ArrivalGuard``): each PDU's header is checked before its
body is read, so an instance over the size limit, a second request before the first was answered, or an oversized
control PDU ends the association with an A-ABORT and nothing more read."""
from __future__ import annotations

import contextlib
import io
import logging
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from typing import Any

from pynetdicom import evt
from pynetdicom.pdu import A_ABORT_RQ

from .limits import ENVIRONMENT, FLAGS
from .source import shown

log = logging.getLogger(__name__)

#: The most bytes a PDU other than P-DATA may declare (association request, accept, reject, release, abort): an
#: A-ASSOCIATE-RQ proposing 128 presentation contexts of 20 transfer syntaxes each has about 200 KB. pynetdicom would
#: read whatever a PDU's header declares (up to 4 GiB) before any handler runs.
MAX_CONTROL_PDU_BYTES = 1 << 20
PDU_HEADER_BYTES = 6               # PDU type, reserved, 4-byte length (PS3.8 9.3)
P_DATA_TF = 0x04
READ_PDU_TYPES = range(0x01, 0x08)  # the PDU types pynetdicom reads a body for (another ends the association)
RESPONSE_BIT = 0x8000              # set in the Command Field of every DIMSE response (PS3.7 E.1)
C_CANCEL_RQ = 0x0FFF               # a request that gets no response


#: Set on an association's DUL thread (the one that reads its PDUs) once its guard ended the association mid-PDU.
_ENDED = threading.local()


class _ToldAlready(logging.Filter):
    """Drops pynetdicom's ERROR about a PDU cut short on the thread whose association the guard ended mid-PDU and
    has logged why (a sender that stalled or reset its connection)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (getattr(_ENDED, "told", False) and record.getMessage().startswith("The received PDU is shorter"))


logging.getLogger("pynetdicom.dul").addFilter(_ToldAlready())


class ArrivalGuard:
    """Reads one association's PDUs for pynetdicom, checking each one's header before its body is read.

    pynetdicom reads a whole PDU, whatever length its header declares (up to 4 GiB), and keeps every P-DATA
    fragment of a DIMSE message in memory until the message is complete; only then does the C-STORE handler see
    it. So the guard takes the place of the association socket's ``recv`` (pynetdicom reads a PDU as ``recv(6)``
    for its header, then ``recv(length)`` for its body) and, at each header: a P-DATA-TF that would make the
    message in progress (the bytes pynetdicom holds for it; none between messages, so each new command set starts
    from zero) exceed ``limit``, a P-DATA-TF that starts a new message while a request is still unanswered, or
    another PDU over ``MAX_CONTROL_PDU_BYTES``, gets an A-ABORT, one warning, and nothing more read: the
    association ends (pynetdicom sees its connection close) and no handler runs for what was arriving.

    Why unanswered requests: pynetdicom goes on reading while a handler runs and queues each complete message, data
    set included, until the association thread takes it; a sender that does not wait for each response could pile up
    any number of instances, each under ``limit``. The node negotiates no asynchronous operations window (pynetdicom
    answers a proposed one with 1 invoked, 1 performed; none proposed is the same default, PS3.7 D.3.3.3), so a
    sender must wait for each response before its next request: one that does not is aborted, and an association
    holds at most one instance (arriving, queued or being answered). A request counts as answered once pynetdicom
    sends its response (``EVT_DIMSE_SENT`` fires before the response's PDUs are queued for sending, so a sender that
    waited is never taken for one that did not); a C-CANCEL, which gets none, does not count. A request pynetdicom
    never answers (one missing a required element) leaves the association unable to send another: its sender would
    wait for that response until its own timeout anyway.
    """

    def __init__(self, assoc: Any, limit: int, counts: Counter[str], read_timeout_s: float) -> None:
        self.assoc = assoc
        self._limit = limit
        self._counts = counts
        self._read_timeout_s = read_timeout_s
        self._socket = assoc.dul.socket
        self._pdu_deadline = 0.0  # when the PDU being read must be whole (monotonic seconds)
        self._body_next = False
        self.aborted = False
        #: Requests received whole and not yet answered: Message ID -> bytes received (command and data set). Added
        #: on the DUL thread (which also runs ``recv``), removed on the association thread once answered.
        self.unanswered: dict[int | None, int] = {}

    def attach(self) -> ArrivalGuard:
        """Read the association's PDUs through this guard (before pynetdicom reads any: from EVT_CONN_OPEN)."""
        self._socket.recv = self.recv
        self.assoc.bind(evt.EVT_DIMSE_RECV, self._received)
        self.assoc.bind(evt.EVT_DIMSE_SENT, self._sent)
        return self

    def _received(self, event: evt.Event) -> None:
        """A DIMSE message arrived whole (DUL thread, before pynetdicom queues it): a request awaits its response."""
        command = getattr(event.message, "command_set", None)
        field = getattr(command, "CommandField", None)
        if isinstance(field, int) and not field & RESPONSE_BIT and field != C_CANCEL_RQ:
            self.unanswered[getattr(command, "MessageID", None)] = _message_bytes(event.message)

    def _sent(self, event: evt.Event) -> None:
        """The node sends a DIMSE message (before its PDUs are queued): a response answers its request."""
        command = getattr(event.message, "command_set", None)
        field = getattr(command, "CommandField", None)
        if isinstance(field, int) and field & RESPONSE_BIT:
            self.unanswered.pop(getattr(command, "MessageIDBeingRespondedTo", None), None)

    def recv(self, nr_bytes: int) -> bytearray:
        """What pynetdicom asked for; nothing (the connection closing) once the association was aborted."""
        if self.aborted:
            return bytearray()
        if not self._body_next:  # a PDU starts: it must be whole within the idle timeout of its first byte
            self._pdu_deadline = time.monotonic() + self._read_timeout_s
        try:
            data = self._read_by(nr_bytes, self._pdu_deadline)
        except TimeoutError:
            _ENDED.told = True
            self._abort(f"a PDU of it did not arrive whole within {self._read_timeout_s:g} s of its first byte "
                        f"({FLAGS['idle_timeout_s']}, {ENVIRONMENT['idle_timeout_s']}): it stopped or trickled in the "
                        "middle of one; what it sent of that PDU was dropped: check the sender's network path",
                        "stalled_while_arriving")
            return bytearray()
        except ssl.SSLError as e:  # a record failing its integrity check: tampering, or a broken middlebox
            _ENDED.told = True
            self._counts["tls_broken"] += 1
            self.refuse(f"a TLS record from it failed its check ({e.reason or e}): data altered on the way (an "
                        "attack, or a broken network device between them)")
            return bytearray()
        except OSError as e:  # a connection reset: pynetdicom would log a traceback
            _ENDED.told = True
            self.refuse(f"its connection broke while a PDU arrived ({e.strerror or e})", level=logging.INFO)
            return bytearray()
        if len(data) < nr_bytes:  # the sender closed its connection
            self.ended_before_request()
        if self._body_next:
            self._body_next = False
            if len(data) < nr_bytes:  # in the middle of a PDU: pynetdicom would log an ERROR
                _ENDED.told = True
                log.info("the connection from %s closed in the middle of a PDU (%d of its %d bytes came)",
                         peer_text(self.assoc), len(data), nr_bytes)
            return data
        if len(data) != PDU_HEADER_BYTES or data[0] not in READ_PDU_TYPES:
            return data  # pynetdicom ends the association itself: a closed connection or an unknown PDU type
        pdu_type, _, length = struct.unpack(">BBL", data)
        if pdu_type == P_DATA_TF:
            waiting = dict(self.unanswered)  # a copy: the association thread may remove one meanwhile
            if waiting and getattr(self.assoc.dimse, "message", None) is None:  # a new message starts
                ids = ", ".join("?" if key is None else str(key) for key in waiting)
                self._abort(f"it started another message while its request {ids} was still unanswered (holding "
                            f"{sum(waiting.values()):,} bytes of it): the node negotiates no asynchronous operations, "
                            "so a sender must wait for each response before its next request; this keeps what one "
                            f"association holds to one instance of at most {self._limit:,} bytes "
                            f"({FLAGS['max_dataset_mib']}, {ENVIRONMENT['max_dataset_mib']}): configure the sender "
                            "to wait for each C-STORE response (no asynchronous operations)")
                return bytearray()
            held = _held_bytes(self.assoc)
            if held + length > self._limit:
                self._abort(f"its instance would reach {held + length:,} bytes with the PDU now arriving (holding "
                            f"{held:,}), more than the {self._limit:,} one instance may bring "
                            f"({FLAGS['max_dataset_mib']}, {ENVIRONMENT['max_dataset_mib']}); nothing of it was "
                            "analysed: send a smaller rendition, or raise the setting")
                return bytearray()
        elif length > MAX_CONTROL_PDU_BYTES:
            self._abort(f"its PDU of type 0x{pdu_type:02X} declares {length:,} bytes, more than the "
                        f"{MAX_CONTROL_PDU_BYTES:,} an association request or release may have")
            return bytearray()
        self._body_next = True
        return data

    def _read_by(self, nr_bytes: int, deadline: float) -> bytearray:
        """``nr_bytes`` from the connection (fewer when it closes), each wait bounded by what is left until
        ``deadline`` (pynetdicom's own read waits for each chunk without limit: a sender sending one byte now and then
        held the association for good); TimeoutError once it has passed."""
        connection: Any = self._socket.socket
        data = bytearray()
        while len(data) < nr_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(data)} of {nr_bytes} bytes by the deadline")
            connection.settimeout(left)
            chunk = connection.recv(min(nr_bytes - len(data), 1 << 16))
            if not chunk:
                break
            data += chunk
        connection.settimeout(self._read_timeout_s)  # what a send may wait
        return data

    def _abort(self, why: str, count: str = "aborted_while_arriving") -> None:
        """Send an A-ABORT (DICOM UL service user) straight to the peer and read nothing more from it."""
        self.aborted = True
        self._counts[count] += 1
        log.warning("aborted the association from %s: %s", peer_text(self.assoc), why)
        abort = A_ABORT_RQ()
        abort.source, abort.reason_diagnostic = 0x00, 0x00
        self._socket.send(abort.encode())
        self.ended_before_request()

    def refuse(self, why: str, level: int = logging.WARNING) -> None:
        """End a connection nothing more can be read from or sent to (a failed TLS handshake, a broken one): logged
        at ``level``; pynetdicom then reads its end and closes it."""
        self.aborted = True
        log.log(level, "closed the connection from %s: %s", peer_text(self.assoc), why)
        with contextlib.suppress(OSError):
            self._socket.socket.shutdown(socket.SHUT_RDWR)
        self.ended_before_request()

    def ended_before_request(self) -> None:
        """The connection ended (closed by its sender, refused or aborted by the node) before its association request
        came: wake
        pynetdicom's acceptor, which would wait ``acse_timeout`` for a request that cannot come, holding a slot of
        ``max_associations`` (a port check, or a refused handshake, had held one for the whole idle timeout; review
        21, M3; review 22, 2). It takes the None as a timeout and ends the association at once."""
        if self.assoc.requestor.primitive is None:
            self.assoc.dul.to_user_queue.put(None)


def _held_bytes(assoc: Any) -> int:
    """Bytes pynetdicom holds for the DIMSE message in progress on ``assoc`` (its command set and data set so far);
    0 between messages: pynetdicom drops a message's fragments once it is complete."""
    return _message_bytes(getattr(assoc.dimse, "message", None))


def _message_bytes(message: Any) -> int:
    """Bytes pynetdicom holds for a DIMSE message (its command set and data set as received; 0 for None)."""
    total = 0
    for name in ("encoded_command_set", "data_set"):
        stream = getattr(message, name, None)
        if isinstance(stream, io.BytesIO):
            with stream.getbuffer() as view:
                total += view.nbytes
    return total


def peer_text(assoc: Any) -> str:
    """The sender of ``assoc`` for a log line: calling AE title (once its request was read) and address:port."""
    info = assoc.requestor.address_info
    where = "an unknown address" if info is None else f"{info.address}:{info.port}"
    calling = assoc.requestor.ae_title or getattr(assoc.requestor.primitive, "calling_ae_title", "")
    return f"{shown(calling)} at {where}" if calling else f"a sender at {where} (no association request read yet)"
