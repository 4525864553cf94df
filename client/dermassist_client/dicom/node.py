"""``DicomNode``: a C-STORE SCP that analyses every photograph it receives and sends its SEG and SR on.

For each received instance: check it (a failure status and a clear ErrorComment for anything that is
not a decodable single-frame colour photograph), analyse it with the ensemble, build the SEG and SR,
write them (and the source) into ``spool/pending/<item>/`` and answer Success: the results are safe on
disk. A forwarder thread C-STOREs each item to the PACS, oldest first, and removes each object once stored. An
item the PACS does not take stays in the spool and is tried again every ``retry_s`` seconds, at once
when a new item arrives, and at start-up: nothing is lost while the PACS is down, and a slow or
unreachable PACS never holds up the sender. Each pass that could not deliver logs an ERROR; the pass that delivers
what earlier ones held (or what an earlier run left) logs one INFO: how many, held since when, to which PACS. One
item the PACS refuses never holds up the others: each is tried on every pass, and one refused
``MAX_LASTING_REFUSALS`` passes in a row for a cause that retrying cannot fix (no presentation context even
uncompressed, a failure status) is moved with a ``REASON.txt`` to ``spool/failed/`` and logged as an ERROR. Nothing
is deleted before the PACS has it. Every failure is answered and logged; the node keeps serving.

While an instance arrives, each PDU's header is checked before its body is read (``ArrivalGuard``): an instance that
would bring more than ``AssociationLimits.max_dataset_bytes``, or that a sender starts before the node answered its
previous request (the node negotiates no asynchronous operations window: one request outstanding at a time), gets its
association aborted with nothing more read: one association holds at most one instance, of at most that limit. No
sender (peer IP address) may hold more than ``AssociationLimits.sender_cap`` of the associations at once.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # made at import from pynetdicom's UID tables
from pynetdicom.transport import ThreadedAssociationServer

from ..config import is_loopback
from ..errors import DeadlineExceededError, DermAssistClientError, InvalidImageError, ServerUnavailableError
from ..private import FOLDER_MODE, open_private, private_folder, write_private
from .analysis import DicomAnalysis, build_analysis
from .arrival import ArrivalGuard
from .config import NodeConfig
from .errors import DicomError, DicomInputError
from .frames import FRAME_SLACK_BYTES, MAX_COMPRESSION_GROWTH
from .limits import ENVIRONMENT, FLAGS, AssociationLimits
from .pacs import Delivery, PacsUnavailableError, store_files
from .source import MAX_PIXELS, describe, image_from_dataset, is_uid, one_line, shown
from .tls import CLOSED_BEFORE_HELLO, connection_closed, handshake_refusal

if TYPE_CHECKING:
    from ..client import DermAssistClient

log = logging.getLogger(__name__)

SUCCESS = 0x0000
#: Failure statuses (PS3.4 C-STORE: A7xx refused, out of resources; Cxxx cannot understand).
OUT_OF_RESOURCES = 0xA700          # the ensemble is unavailable or too slow: the sender may retry
IMAGE_REJECTED = 0xC010            # the ensemble refused the pixels
ANALYSIS_FAILED = 0xC011           # any other error answering the image
MAX_ERROR_COMMENT = 64             # Error Comment is LO
PARTIAL = ".partial"               # a spool item still being written
HALF_WRITTEN_AFTER_S = 300.0        # a .partial item untouched this long was left by a node that stopped
STOP_WAIT_S = 10.0                 # how long stop() waits for the item the forwarder is sending
MAX_LASTING_REFUSALS = 3           # passes an item is refused for a lasting cause before it goes to spool/failed/
REASON_FILE = "REASON.txt"         # written into an item moved to spool/failed/: why, and how to send it again
#: The most bytes one received data set may have: the largest compressed frame image_from_dataset takes (twice a
#: 50-megapixel RGB frame, plus slack) and 16 MiB of other elements. A larger one is refused before it is parsed.
MAX_DATASET_BYTES = MAX_COMPRESSION_GROWTH * MAX_PIXELS * 3 + FRAME_SLACK_BYTES + (16 << 20)
#: Transfer syntaxes the node accepts: all but Deflated, whose data set pydicom inflates whole and unbounded before
#: any check (a few KB can inflate to gigabytes); a sender offering it also offers an uncompressed one.
ACCEPTED_TRANSFER_SYNTAXES = [ts for ts in ALL_TRANSFER_SYNTAXES if ts != DeflatedExplicitVRLittleEndian]
#: A-ASSOCIATE-RJ result, source, reason: rejected transient, by the service provider (presentation), local limit
#: exceeded: what pynetdicom answers over max_associations, and the node over the per-sender cap
LOCAL_LIMIT_EXCEEDED = (0x02, 0x03, 0x02)
#: Why writing to the spool can fail while the instance itself is fine, and passes once the node's operator (or the
#: forwarder, emptying the spool into the PACS) frees the resource: answered OUT_OF_RESOURCES, so that the sender sends
#: the instance again later by itself (senders retry A7xx, not Cxxx), with an ERROR naming the fix. errno -> what the
#: Error Comment says, what to do. Any other spool error (a permission, an I/O error) keeps ANALYSIS_FAILED.
SPOOL_OUT_OF_RESOURCES = {
    errno.ENOSPC: ("spool full", "free space on the file system of the spool {spool}, or move the spool (--spool) to a "
                                 "larger one; a PACS that is down fills it with the items waiting for it"),
    errno.EDQUOT: ("spool over its disk quota", "raise the disk quota of the user running the node on the file system "
                                                "of the spool {spool}, or free space there"),
    errno.EROFS: ("spool read-only", "the file system of the spool {spool} became read-only (after a disk error: see "
                                     "the kernel log); repair it and mount it read-write again"),
    errno.EMFILE: ("too many open files", "the node's process has too many files open: raise its open-file limit "
                                          "(ulimit -n, systemd LimitNOFILE=)"),
    errno.ENFILE: ("too many open files", "the system's open-file table is full: raise fs.file-max, or stop the "
                                          "process holding the files"),
}


@dataclass(frozen=True)
class StoreOutcome:
    """What the node answered for one instance: the C-STORE status and, on failure, the reason.

    ``comment`` goes into the response's Error Comment (at most 64 characters); ``message`` is logged.
    """

    status: int
    comment: str = ""
    message: str = ""
    level: int = logging.WARNING  # how a refusal is logged: ERROR when the node itself must be seen to

    @property
    def ok(self) -> bool:
        """Whether the instance was accepted."""
        return self.status == SUCCESS


class SpoolWriteError(DicomError):
    """An item could not be written into the spool; ``errno`` is the operating system's error number (None if none)."""

    def __init__(self, message: str, error_number: int | None) -> None:
        super().__init__(message)
        self.errno = error_number


class DicomNode:
    """The DermAssist DICOM node. ``client`` is a connected ``DermAssistClient``; ``limits``: its association
    settings (idle timeout, associations at once, called AE title; the defaults when None)."""

    def __init__(self, client: DermAssistClient, config: NodeConfig, limits: AssociationLimits | None = None) -> None:
        self.config = config
        self.limits = AssociationLimits() if limits is None else limits
        self._client = client
        self._analysis_lock = threading.Lock()
        self._forward_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping: threading.Event | None = None
        self._forwarder: threading.Thread | None = None
        self.counts: Counter[str] = Counter()
        self._server: ThreadedAssociationServer | None = None
        self._pending = config.spool / "pending"
        self._failed = config.spool / "failed"
        self._refusals: Counter[str] = Counter()  # item name -> passes in a row refused for a lasting cause
        self._held: set[str] = set()  # items a pass did not deliver, or found at start-up: their delivery is logged
        self._awaiting_lock = threading.Lock()
        self._awaiting: dict[str | None, set[Any]] = {}  # peer address -> its connections without a request yet
        try:  # the spool holds patients' instances and results: owner-only folders
            private_folder(config.spool)
            private_folder(self._pending)
            # what an earlier run left: its delivery, once the PACS takes it, is logged like that of a held item
            self._held = {item.name for item in self.pending()}
            self._remove_half_written()
        except OSError as e:
            raise DicomError(f"cannot create the spool folder {self._pending}: {e.strerror or e}; expected a folder this "
                             "process can make and write (owner-only): pass another --spool") from e
        self._arrival_limit = self.limits.max_dataset_bytes
        self._ae = AE(ae_title=config.ae_title)
        self._ae.maximum_associations = self.limits.max_associations
        # an association that sends nothing for idle_timeout_s is aborted (pynetdicom's 60 s let 8 idle ones lock
        # every sender out); a request or a message that does not come within it likewise
        self._ae.network_timeout = self._ae.acse_timeout = self._ae.dimse_timeout = self.limits.idle_timeout_s
        # a modality sending to another destination's title is rejected (A-ASSOCIATE-RJ, reason 7)
        self._ae.require_called_aet = not self.limits.any_called_aet
        if config.calling_aets:  # pynetdicom rejects any other calling AE title (A-ASSOCIATE-RJ, reason 3)
            self._ae.require_calling_aet = list(config.calling_aets)
        for context in AllStoragePresentationContexts:
            self._ae.add_supported_context(context.abstract_syntax, ACCEPTED_TRANSFER_SYNTAXES)  # type: ignore[arg-type]  # all set
        self._ae.add_supported_context(Verification)

    def _remove_half_written(self) -> None:
        """Remove the items an earlier run was writing when it stopped (``.partial``, untouched for
        ``HALF_WRITTEN_AFTER_S``: one younger may be another node's on this spool, being written now): their senders
        were never answered Success, so they send the instances again; kept, they held a patient's instance for good,
        unsaid."""
        now = time.time()
        for item in sorted(self._pending.glob(f"*{PARTIAL}")):
            try:
                if now - item.stat().st_mtime < HALF_WRITTEN_AFTER_S:
                    continue
            except OSError:
                continue
            shutil.rmtree(item, ignore_errors=True)
            log.warning("removed %s, an item half-written when the node last stopped: its sender was not answered "
                        "Success and sends the instance again", item)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the node listens on (the real port when configured with 0)."""
        if self._server is None:
            raise DicomError("the DICOM node is not started; call start() first")
        host, port = self._server.server_address[:2]
        return host, port

    def start(self) -> DicomNode:
        """Listen in background threads; a forwarder thread sends what an earlier run left in the spool."""
        try:
            self._server = self._ae.start_server(
                (self.config.host, self.config.port), block=False,
                ssl_context=None if self.config.tls is None else self.config.tls.followed_context(),
                evt_handlers=[(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo),
                              (evt.EVT_CONN_OPEN, self._on_connection), (evt.EVT_REQUESTED, self._on_requested)],
            )
        except OSError as e:
            if isinstance(e, socket.gaierror):  # the host, not the port
                raise DicomError(f"cannot listen on {self.config.host}:{self.config.port}: the host does not resolve "
                                 f"({e.strerror or e}); expected a name or address of this machine: pass another "
                                 "--host") from e
            raise DicomError(
                f"cannot listen on {self.config.host}:{self.config.port}: {e.strerror or e}; expected a free port on an "
                "address of this machine: stop what holds it or pass another --port (or --host)"
            ) from e
        log.info("DICOM node %s listening on %s:%d (%s; %s called AE title; an association idle for %g s is aborted; "
                 "at most %d at once, %d from one sender; an instance over %s bytes, or sent before the last was answered, "
                 "is aborted while it arrives; each instance is answered within %g s)",
                 self.config.ae_title, *self.address, self.config.tls or "plain DICOM, no TLS",
                 "any" if self.limits.any_called_aet else "only its own",
                 self.limits.idle_timeout_s, self.limits.max_associations, self.limits.sender_cap,
                 f"{self._arrival_limit:,}", self.limits.answer_within_s)
        for warning in plaintext_dicom(self.config):
            log.warning("%s", warning)
        if self.config.pacs is not None:
            self._stopping = threading.Event()
            self._forwarder = threading.Thread(target=self._forward_loop, args=(self._stopping,),
                                               name=f"{self.config.ae_title}-forwarder", daemon=True)
            self._forwarder.start()
        return self

    def stop(self) -> None:
        """Stop listening (associations in progress are ended) and the forwarder after its current item (an item
        still unsent after STOP_WAIT_S stays in the spool: stored items are only removed once the PACS has them)."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._forwarder is not None and self._stopping is not None:
            self._stopping.set()
            self._wake.set()
            self._forwarder.join(timeout=STOP_WAIT_S)
            if self._forwarder.is_alive():
                log.warning("the PACS %s is still busy with a spool item; unless it takes the item before this process "
                            "exits, the item stays in %s and is sent again at the next start", self.config.pacs,
                            self._pending)
            self._forwarder = None

    def _forward_loop(self, stopping: threading.Event) -> None:
        """Send the spool now, then whenever a new item arrives or ``retry_s`` has passed, until stopped."""
        while not stopping.is_set():
            self._wake.clear()
            try:
                self.flush(until=stopping)
            except Exception:  # the forwarder outlives any one failure; the items stay in the spool
                self.counts["forward_failed"] += 1
                log.exception("forwarding the spool %s failed; tried again in %g s", self._pending, self.config.retry_s)
            self._wake.wait(self.config.retry_s)

    def __enter__(self) -> DicomNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pending(self) -> list[Path]:
        """Spool items not yet stored in the PACS, oldest first."""
        return sorted(p for p in self._pending.iterdir() if p.is_dir() and not p.name.endswith(PARTIAL))

    def failed(self) -> list[Path]:
        """Spool items moved aside because the PACS kept refusing them for a lasting cause, oldest first."""
        if not self._failed.is_dir():
            return []
        return sorted(p for p in self._failed.iterdir() if p.is_dir())

    def _on_connection(self, event: evt.Event) -> None:
        """A sender connected (no PDU read yet): every PDU it sends is checked by an ``ArrivalGuard`` and must arrive
        whole within ``limits.idle_timeout_s`` of its first byte (pynetdicom's idle timer only runs between PDUs: a
        sender that stopped, or trickled, in the middle of one had held its thread and slot for good); under TLS the
        handshake is made here, in the association's own thread, within that time too. One address may have at most
        ``limits.sender_cap`` connections that have sent no association request yet (the per-sender cap applies from
        the request on: slow connections from one address had filled every slot before it)."""
        assoc = event.assoc
        guard = ArrivalGuard(assoc, self._arrival_limit, self.counts, self.limits.idle_timeout_s).attach()
        connection: Any = getattr(assoc.dul.socket, "socket", None)
        if connection is None:  # closed before this handler ran: pynetdicom ends the association
            return
        connection.settimeout(self.limits.idle_timeout_s)
        address = _peer_address(assoc)
        with self._awaiting_lock:  # counted here: a connection in its handshake has no association thread yet
            self._awaiting = {where: live for where, held in self._awaiting.items()
                              if (live := {other for other in held if _awaits_request(other)})}
            awaiting = self._awaiting.setdefault(address, set())
            admitted = len(awaiting) < self.limits.sender_cap
            if admitted:
                awaiting.add(assoc)
        if not admitted:
            self.counts["refused_awaiting_cap"] += 1
            guard.refuse(f"{address} already has {self.limits.sender_cap} connection(s) that sent no association request, the "
                         f"most one sender may have ({FLAGS['max_associations_per_sender']}, "
                         f"{ENVIRONMENT['max_associations_per_sender']})")
            return
        if isinstance(connection, ssl.SSLSocket) and self.config.tls is not None:  # a TLS socket: config.tls is set
            hello_sent = False
            try:
                # a look at the first byte, left unread, without TLS: a port check closes before sending any, a sender
                # that hangs up after its hello (it refused the node's certificate without an alert) after it
                hello_sent = bool(socket.socket.recv(connection, 1, socket.MSG_PEEK))
                if hello_sent:
                    connection.do_handshake()
            except (OSError, ValueError) as e:  # ssl.SSLError and TimeoutError are OSErrors
                self.counts["tls_refused"] += 1
                why = handshake_refusal(e, self.limits.idle_timeout_s, self.config.tls.profile, hello_sent)
                probe = connection_closed(e) and not hello_sent
                guard.refuse(f"its TLS handshake failed: {why}", level=logging.INFO if probe else logging.WARNING)
                return
            if not hello_sent:
                self.counts["tls_refused"] += 1
                guard.refuse(f"it closed the connection before its TLS hello: {CLOSED_BEFORE_HELLO}", level=logging.INFO)

    def _on_requested(self, event: evt.Event) -> None:
        """Reject an association request from a peer address that already holds ``limits.sender_cap`` associations
        (A-ASSOCIATE-RJ transient, "local limit exceeded", as over max_associations): one sender cannot take every
        slot. Counted from pynetdicom's live association threads, so a slot is free again once its thread ends."""
        assoc = event.assoc
        address = _peer_address(assoc)
        held = sum(1 for other in self._ae.active_associations
                   if other is not assoc and other.is_acceptor and _peer_address(other) == address)
        if held < self.limits.sender_cap:
            return
        self.counts["rejected_sender_cap"] += 1
        calling = shown(getattr(assoc.requestor.primitive, "calling_ae_title", "") or "?")
        log.warning("rejected an association from %s at %s (local limit exceeded): that address already holds %d "
                    "association(s), and one sender may hold at most %d of the %d in all (%s, %s); it may retry once "
                    "one of them ends; raise the setting if several modalities send from that address", calling,
                    address, held, self.limits.sender_cap, self.limits.max_associations,
                    FLAGS["max_associations_per_sender"], ENVIRONMENT["max_associations_per_sender"])
        assoc.acse.send_reject(*LOCAL_LIMIT_EXCEEDED)
        assoc.kill()  # as pynetdicom does after its own rejection: returns once the A-ASSOCIATE-RJ is sent and the
        # connection closed (pynetdicom then skips negotiating an association its EVT_REQUESTED handler rejected)

    def _on_store(self, event: evt.Event) -> Dataset:
        arrived = time.monotonic()
        calling = shown(event.assoc.requestor.ae_title)
        try:
            received = _received_bytes(event)
            if received > MAX_DATASET_BYTES:
                return self._refuse_unread(calling, StoreOutcome(
                    DicomInputError.status, "data set too large",
                    f"its data set has {received:,} bytes, more than the {MAX_DATASET_BYTES:,} a photograph "
                    "DermAssist analyses may have; refused before it was read: send a smaller rendition"))
            try:
                ds = event.dataset
                ds.file_meta = event.file_meta
            except Exception as e:  # noqa: BLE001 - a data set pydicom cannot decode, whatever the cause
                return self._refuse_unread(calling, StoreOutcome(DicomInputError.status, DicomInputError.comment,
                                                                 f"cannot decode the data set from {calling}: {e}"))
            return _answer(self.process(ds, name=f"{describe(ds)} from {calling}", arrived=arrived))
        finally:
            _not_idle(event.assoc)

    def _refuse_unread(self, calling: str, outcome: StoreOutcome) -> Dataset:
        """Count, log and answer an instance refused before its data set could be read."""
        self.counts["received"] += 1
        self.counts["failed"] += 1
        log.warning("refused an instance from %s: %s", calling, one_line(outcome.message))
        return _answer(outcome)

    def _on_echo(self, event: evt.Event) -> int:
        _not_idle(event.assoc)
        return SUCCESS

    def process(self, ds: Dataset, name: str, arrived: float | None = None) -> StoreOutcome:
        """Check, analyse, spool and forward one instance; the outcome the sender is answered with, within
        ``limits.answer_within_s`` of ``arrived`` (its ``time.monotonic()``; now when None)."""
        self.counts["received"] += 1
        deadline = (time.monotonic() if arrived is None else arrived) + self.limits.answer_within_s
        try:
            outcome = self._analyse_and_spool(ds, name, deadline)
        except Exception as e:  # an unforeseen fault gets a status and a comment, and the node serves on
            log.exception("analysing %s failed unexpectedly", one_line(name))
            outcome = StoreOutcome(ANALYSIS_FAILED, "analysis failed: unexpected error",
                                   f"analysing {name} failed unexpectedly ({type(e).__name__}: {e}); its traceback is "
                                   "in the node's log: report it with the instance")
        self.counts["stored" if outcome.ok else "failed"] += 1
        if outcome.ok:
            self._wake.set()
        else:
            said = outcome.message if outcome.message.startswith(name) else f"{name}: {outcome.message}"
            log.log(outcome.level, "refused %s", one_line(said))  # a decoder's error may quote the sender's bytes
        return outcome

    def _analyse_and_spool(self, ds: Dataset, name: str, deadline: float) -> StoreOutcome:
        try:
            image = image_from_dataset(ds, name)
        except DicomInputError as e:
            return StoreOutcome(e.status, e.comment, str(e))
        if not self._analysis_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return self._too_late("the node was still analysing earlier instances")
        try:
            left = deadline - time.monotonic()
            if left <= 0:
                return self._too_late("decoding it and waiting for earlier instances took all of that time")
            result = self._client.analyze(image.for_service(), timeout_s=min(left, self._client.config.timeout_s))
        except InvalidImageError as e:
            return StoreOutcome(IMAGE_REJECTED, "the ensemble rejected the image", f"the ensemble rejected {name}: {e}")
        except DeadlineExceededError:
            return self._too_late("the ensemble did not answer in time")  # e says "raise timeout": not the setting
        except ServerUnavailableError as e:
            return StoreOutcome(OUT_OF_RESOURCES, "analysis service unavailable: retry later",
                                f"the ensemble is unavailable, retry later: {e}")
        except DermAssistClientError as e:
            return StoreOutcome(ANALYSIS_FAILED, "analysis failed", f"analysing {name} failed: {e}")
        finally:
            self._analysis_lock.release()
        try:
            analysis = build_analysis(image, result, self.config.identity)
            self._spool(analysis)
        except SpoolWriteError as e:
            return self._unspooled(e)
        except DicomError as e:
            return StoreOutcome(ANALYSIS_FAILED, "results could not be written", str(e))
        answer = (f"{result.label.code} p={result.probabilities[result.label.code]:.3f}" if result.label
                  else "no diagnosis (not assessable)" if result.assessable is False else "no diagnosis (no lesion found)")
        # the request id, which the service's audit line holds too; the answer itself (a diagnosis, keyed by an
        # identifier the PACS resolves to a patient) only at DEBUG (privacy audit, L5)
        log.info("analysed %s (request %s)", one_line(name), result.request_id or "unnamed")
        log.debug("answer for %s: %s, refer %s", one_line(name), answer, result.refer)
        return StoreOutcome(SUCCESS)

    def _too_late(self, why: str) -> StoreOutcome:
        """The answer to an instance not analysed within ``limits.answer_within_s``: 0xA700, so the sender sends it
        again later rather than giving up on a response that would come after its own timeout."""
        return StoreOutcome(OUT_OF_RESOURCES, "no answer in time: retry later",
                            f"not answered within {self.limits.answer_within_s:g} s of its arrival ({FLAGS['answer_within_s']}, "
                            f"{ENVIRONMENT['answer_within_s']}): {why}; answered 0xA700 so the sender sends it again "
                            "later. If the ensemble is slow rather than down, raise the setting, below the senders' "
                            "DIMSE timeout")

    def _spool(self, analysis: DicomAnalysis) -> Path:
        """Write the item (source first, then SEG and SR) into a fresh pending folder, atomically."""
        uid = str(analysis.image.dataset.SOPInstanceUID)
        if not is_uid(uid):  # read_dicom refuses these; a file name must never be steered out of the spool
            raise DicomError(f"{analysis.image.name}: SOP Instance UID {uid[:80]!r} is not a DICOM UID; not spooled")
        item = self._pending / f"{time.time_ns():020d}-{uid}"
        staging = item.with_name(item.name + PARTIAL)
        try:
            staging.mkdir(mode=FOLDER_MODE)
            if self.config.forward_source:
                with open_private(staging / f"0_SOURCE_{uid}.dcm") as f:
                    analysis.image.dataset.save_as(f, enforce_file_format=True)
            for index, path in enumerate(analysis.write(staging), start=1):
                path.rename(staging / f"{index}_{path.name}")
            for path in sorted(staging.iterdir()):  # on disk before the sender hears Success: a power loss keeps them
                fsync_path(path)
            fsync_path(staging)
            staging.rename(item)
        except (OSError, DicomError) as e:  # DicomError: analysis.write's, from an OSError
            shutil.rmtree(staging, ignore_errors=True)  # what was written: no half item left taking space
            cause = _os_error(e)
            raise SpoolWriteError(f"{analysis.image.name}: its results cannot be written to the spool {item}: "
                                  f"{cause or e}", None if cause is None else cause.errno) from e
        try:  # the rename itself; the item is in place and will be forwarded, so the sender hears Success whatever
            fsync_path(self._pending)
        except OSError as e:
            log.warning("the spool folder %s could not be flushed to disk after %s was put in it (%s): the item may "
                        "not survive a power loss; check the spool's disk", self._pending, item.name, e.strerror or e)
        return item

    def _unspooled(self, error: SpoolWriteError) -> StoreOutcome:
        """The answer to an instance whose results could not be written to the spool: OUT_OF_RESOURCES (the sender
        retries), logged as an ERROR, when the node's disk or files are at fault; else ANALYSIS_FAILED as before."""
        known = SPOOL_OUT_OF_RESOURCES.get(error.errno) if error.errno is not None else None
        if known is None:
            return StoreOutcome(ANALYSIS_FAILED, "results could not be written", str(error))
        short, fix = known
        waiting = ""
        if error.errno in (errno.ENOSPC, errno.EDQUOT):  # what takes the space, and whether anything frees it
            try:
                held = len(self.pending())
            except OSError:
                held = None
            if held is not None and self.config.pacs is not None:
                waiting = f" ({held} item(s) wait in {self._pending} for the PACS {self.config.pacs})"
            elif held is not None:
                waiting = f" ({held} item(s) in {self._pending}: without a PACS to send them to, nothing removes them)"
        return StoreOutcome(
            OUT_OF_RESOURCES, f"results cannot be stored: {short}, retry later",
            f"{error}; answered 0x{OUT_OF_RESOURCES:04X} (out of resources), so that the sender sends it again later "
            f"(nothing of it was kept): {fix.format(spool=self.config.spool)}{waiting}", level=logging.ERROR)

    def flush(self, until: threading.Event | None = None) -> int:
        """Send every pending spool item to the PACS, oldest first, until ``until`` is set; items sent.

        An item the PACS refuses stays for the next pass (its stored objects removed) and does not hold up the
        later ones; refused ``MAX_LASTING_REFUSALS`` passes in a row for a lasting cause, it goes to spool/failed/.
        Only a PACS that cannot be reached at all ends the pass: every item would wait out the same timeout."""
        pacs = self.config.pacs
        if pacs is None:
            return 0
        sent = 0
        delivered: list[str] = []  # names of items sent in this pass that an earlier pass (or run) had left
        with self._forward_lock:
            listed = self.pending()
            try:
                for item in listed:
                    if until is not None and until.is_set():
                        break
                    files = sorted(item.glob("*.dcm"))
                    if not files:
                        self._move_aside(item, f"it holds no .dcm file for PACS {pacs}")
                        continue
                    try:
                        delivery = store_files(pacs, self.config.ae_title, files)
                    except PacsUnavailableError as e:
                        self.counts["forward_failed"] += 1
                        log.error("%s; %d item(s) kept in %s and tried again in %g s", e, len(self.pending()),
                                  self._pending, self.config.retry_s)
                        break
                    except Exception:  # an unforeseen fault with one item must not hold up the others
                        self.counts["forward_failed"] += 1
                        log.exception("sending spool item %s to the PACS %s failed; kept in %s and tried again in %g s",
                                      item.name, pacs, self._pending, self.config.retry_s)
                        continue
                    if delivery.ok:
                        shutil.rmtree(item, ignore_errors=True)
                        self._refusals.pop(item.name, None)
                        self.counts["forwarded"] += 1
                        sent += 1
                        if item.name in self._held:
                            delivered.append(item.name)
                    else:
                        self.counts["forward_failed"] += 1
                        self._refused(item, delivery)
            finally:  # what this pass listed and did not deliver (nor set aside) is held for the next one
                self._held = {item.name for item in listed if item.is_dir()}
            if delivered:
                self._log_delivered(delivered)
        return sent

    def _log_delivered(self, delivered: list[str]) -> None:
        """One INFO line for the items an earlier pass could not deliver (or found in the spool at start-up) that the
        PACS has now taken: the ERROR lines of the failed passes are over for them."""
        spooled = [t for t in map(_spooled_at, delivered) if t is not None]  # the oldest one's time says since when
        since = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(min(spooled))) if spooled else "an earlier pass"
        still = (f"; {len(self._held)} item(s) still wait in {self._pending} and are tried again in "
                 f"{self.config.retry_s:g} s" if self._held else "")
        log.info("forwarded %d spool item(s) held since %s to the PACS %s (kept by a pass that could not deliver them, "
                 "or found in the spool at start-up)%s", len(delivered), since, self.config.pacs, still)

    def _refused(self, item: Path, delivery: Delivery) -> None:
        """An item the PACS did not fully store: drop what it stored, keep the rest, set it aside if it lasts."""
        for path in delivery.stored:  # the PACS has them: a later pass sends only what it still lacks
            path.unlink(missing_ok=True)
        reasons = "; ".join(f"{r.path.name}: {r.reason}" for r in delivery.refused)
        if not delivery.lasting:
            self._refusals.pop(item.name, None)
            log.error("spool item %s was not fully stored in the PACS %s (%s); kept in %s and tried again in %g s",
                      item.name, self.config.pacs, reasons, self._pending, self.config.retry_s)
            return
        self._refusals[item.name] += 1
        if self._refusals[item.name] < MAX_LASTING_REFUSALS:
            log.error("the PACS %s refused spool item %s (%d of %d passes before it is moved to %s): %s; kept in %s "
                      "and tried again in %g s", self.config.pacs, item.name, self._refusals[item.name],
                      MAX_LASTING_REFUSALS, self._failed, reasons, self._pending, self.config.retry_s)
            return
        self._move_aside(item, reasons)

    def _move_aside(self, item: Path, reason: str) -> None:
        """Move an item the PACS keeps refusing into spool/failed/ with a REASON.txt, and log an ERROR."""
        target = self._failed / item.name
        help_text = (f"it holds what the PACS does not have, nothing was deleted: fix the cause (the PACS's accepted "
                     f"SOP classes and transfer syntaxes, or the object), then move {target} back into {self._pending} "
                     "to send it again")
        try:
            private_folder(self._failed)
            write_private(item / REASON_FILE, (
                f"PACS: {self.config.pacs}\nrefused after {max(self._refusals[item.name], 1)} pass(es), "
                f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\nreason: {reason}\n"
                f"objects the PACS stored were removed from this folder; {help_text}\n").encode())
            item.rename(target)
        except OSError as e:
            log.error("the PACS %s keeps refusing spool item %s (%s), and it cannot be moved to %s (%s); it stays in "
                      "%s and is tried again in %g s", self.config.pacs, item.name, reason, target, e.strerror or e,
                      self._pending, self.config.retry_s)
            return
        self._refusals.pop(item.name, None)
        self.counts["moved_to_failed"] += 1
        log.error("the PACS %s refused spool item %s for a cause that retrying cannot fix: %s; moved to %s, %s",
                  self.config.pacs, item.name, reason, target, help_text)


def plaintext_dicom(config: NodeConfig) -> list[str]:
    """What to tell an operator whose node speaks plain DICOM beyond this machine: on a leg without TLS, instances (the
    patient's name, ID, birth date and picture) arrive, or go to the PACS, unencrypted (privacy audit, M6)."""
    told = []
    if config.tls is None and not is_loopback(config.host):
        told.append(f"the DICOM node listens on {config.host} in PLAINTEXT: instances (patient name, ID, birth date, "
                    "picture) arrive unencrypted; keep it on the imaging network's own segment, or on 127.0.0.1 behind "
                    "a DICOM TLS proxy, or give it a certificate (--tls-cert, --tls-key; docs/hospital-integration.md, "
                    "'Transport')")
    if config.pacs is not None and config.pacs.tls is None and not is_loopback(config.pacs.host, connecting=True):
        told.append(f"the DICOM node sends instances, SEG and SR to the PACS {config.pacs.host} in PLAINTEXT; keep that "
                    "path on a private segment, or send with DICOM TLS (--pacs-tls; docs/hospital-integration.md, "
                    "'Transport')")
    return told


def fsync_path(path: Path) -> None:
    """Flush the file or folder at ``path`` to its disk (a folder: the names in it, e.g. a rename). A file system that
    cannot flush a folder (EINVAL: some network and FUSE ones) keeps what it can: that is not an error."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as e:
        if e.errno != errno.EINVAL or not path.is_dir():
            raise
    finally:
        os.close(descriptor)


def _spooled_at(name: str) -> float | None:
    """When a spool item was written (seconds since the epoch), from its name ``<time in ns, 20 digits>-<UID>``."""
    stamp = name.split("-", 1)[0]
    return int(stamp) / 1e9 if len(stamp) == 20 and stamp.isdigit() else None


def _os_error(error: BaseException) -> OSError | None:
    """The operating system's error behind ``error``: the first OSError with an errno among it and its causes (pydicom
    re-raises an OSError met while writing an element as a new OSError without errno, naming the element)."""
    seen: BaseException | None = error
    for _ in range(8):  # a chain is short; a cycle must not loop
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _peer_address(assoc: Any) -> str | None:
    """The peer IP address of an acceptor association (None before pynetdicom has set it)."""
    info = assoc.requestor.address_info
    return None if info is None else str(info.address)


def _awaits_request(assoc: Any) -> bool:
    """Whether an acceptor association is a connection whose association request has not come: in its handshake
    (its thread not started yet) or waiting for the request, not ended."""
    return assoc.requestor.primitive is None and (assoc.ident is None or assoc.is_alive())


def _not_idle(assoc: Any) -> None:
    """Restart ``assoc``'s idle timer: the time the node spent answering (waiting for the ensemble behind other
    senders) is not the sender's idleness, and must not abort the association right after the answer.

    pynetdicom 3.0 (pinned) restarts it only on a received PDU; its association loop checks it after each handler."""
    timer = getattr(getattr(assoc, "dul", None), "_idle_timer", None)
    if timer is not None:
        timer.restart()


def _received_bytes(event: evt.Event) -> int:
    """Bytes of the C-STORE's data set as received (pynetdicom holds it in memory), before pydicom parses it."""
    data: Any = getattr(getattr(event, "request", None), "DataSet", None)
    return int(data.getbuffer().nbytes) if hasattr(data, "getbuffer") else 0


def _answer(outcome: StoreOutcome) -> Dataset:
    answer = Dataset()
    answer.Status = outcome.status
    if not outcome.ok:
        answer.ErrorComment = outcome.comment[:MAX_ERROR_COMMENT]
    return answer
