"""How the DICOM node treats associations: how long one may sit idle, how many may be open (in all and from one
sender), which called AE title they must name, how many bytes one instance may bring while it arrives. Typed and
validated once; precedence: command line > environment > default."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from .errors import DicomError

#: Seconds an association may send nothing (no PDU; time the node spends analysing does not count) before the node
#: aborts it; also the node's ACSE and DIMSE timeouts. pynetdicom's 60 s let 8 idle associations lock senders out.
DEFAULT_IDLE_TIMEOUT_S = 30.0
MAX_SECONDS = 3600.0  # the longest idle timeout, and the longest time to answer an instance in
#: Seconds within which the node answers each C-STORE, the wait behind earlier instances' analyses and its own
#: analysis together: when they run out the sender is answered Refused: Out of Resources (0xA700) and sends the
#: instance again later. Senders commonly give up on a response after 30 s (pynetdicom's DIMSE timeout, many
#: modalities'); a node that waited the SDK's whole 30 s deadline answered at 30.1 s, just after such a sender left.
DEFAULT_ANSWER_WITHIN_S = 20.0
#: Associations open at once (every sender together); one more is rejected (transient, "local limit exceeded").
DEFAULT_MAX_ASSOCIATIONS = 8
MAX_MAX_ASSOCIATIONS = 256
#: Associations open at once from one sender (one peer IP address), unless max_associations is lower; one more from
#: that address is rejected like one over max_associations, so one sender cannot lock every other modality out.
DEFAULT_MAX_ASSOCIATIONS_PER_SENDER = 4
#: The most MiB one instance (its DIMSE message: command and data set) may bring while it arrives; the default
#: (None) is the largest data set the node accepts at all (``node.MAX_DATASET_BYTES``, derived from the pixel
#: limit). 4096 MiB: what one PDU's length field can declare.
MAX_MAX_DATASET_MIB = 4096
#: The environment variable of each setting (the command line's flag outranks it).
ENVIRONMENT = {"idle_timeout_s": "DERMASSIST_DICOM_IDLE_TIMEOUT_S",
               "answer_within_s": "DERMASSIST_DICOM_ANSWER_WITHIN_S",
               "max_associations": "DERMASSIST_DICOM_MAX_ASSOCIATIONS",
               "max_associations_per_sender": "DERMASSIST_DICOM_MAX_ASSOCIATIONS_PER_SENDER",
               "any_called_aet": "DERMASSIST_DICOM_ANY_CALLED_AET",
               "max_dataset_mib": "DERMASSIST_DICOM_MAX_DATASET_MIB"}
FLAGS = {"idle_timeout_s": "--idle-timeout", "answer_within_s": "--answer-within",
         "max_associations": "--max-associations",
         "max_associations_per_sender": "--max-associations-per-sender", "any_called_aet": "--any-called-aet",
         "max_dataset_mib": "--max-dataset-mib"}
_WHOLE_NUMBERS = frozenset({"max_associations", "max_associations_per_sender", "max_dataset_mib"})
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})


def _is_whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


@dataclass(frozen=True)
class AssociationLimits:
    """The node's association settings.

    ``idle_timeout_s``: an association that sends nothing for this long is aborted (the ACSE and DIMSE timeouts
    too). ``max_associations``: associations open at once. ``any_called_aet``: accept an association whatever
    called AE title it names (default False: one that does not name the node's own AE title is rejected, reason 7
    "called AE title not recognised", so a modality configured for another destination does not send here).
    ``max_associations_per_sender``: associations open at once from one peer IP address (None: the lower of
    ``DEFAULT_MAX_ASSOCIATIONS_PER_SENDER`` and ``max_associations``; see ``sender_cap``). ``max_dataset_mib``: MiB
    one instance may bring while it arrives; the association is aborted at the PDU that would exceed it (None: the
    largest data set the node accepts; see ``max_dataset_bytes``). ``answer_within_s``: each C-STORE is answered
    within this many seconds of its arrival, 0xA700 (retry later) when the ensemble has not answered by then.
    """

    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    max_associations: int = DEFAULT_MAX_ASSOCIATIONS
    any_called_aet: bool = False
    max_associations_per_sender: int | None = None
    max_dataset_mib: int | None = None
    answer_within_s: float = DEFAULT_ANSWER_WITHIN_S

    def __post_init__(self) -> None:
        for name, what, default in (("idle_timeout_s", "the idle timeout", DEFAULT_IDLE_TIMEOUT_S),
                                    ("answer_within_s", "the time to answer an instance in", DEFAULT_ANSWER_WITHIN_S)):
            seconds = getattr(self, name)
            if isinstance(seconds, bool) or not (isinstance(seconds, (int, float)) and 0 < seconds <= MAX_SECONDS):
                raise DicomError(f"{what} ({FLAGS[name]}, {ENVIRONMENT[name]}) must be more than 0 and at most "
                                 f"{MAX_SECONDS:g} seconds, got {seconds!r}; e.g. {default:g}")
        count = self.max_associations
        if not _is_whole(count, 1, MAX_MAX_ASSOCIATIONS):
            raise DicomError(f"the maximum number of associations ({FLAGS['max_associations']}, "
                             f"{ENVIRONMENT['max_associations']}) must be a whole number 1..{MAX_MAX_ASSOCIATIONS}, "
                             f"got {count!r}; e.g. {DEFAULT_MAX_ASSOCIATIONS}")
        if not isinstance(self.any_called_aet, bool):
            raise DicomError(f"{FLAGS['any_called_aet']} ({ENVIRONMENT['any_called_aet']}) must be true or false, "
                             f"got {self.any_called_aet!r}")
        per_sender = self.max_associations_per_sender
        if per_sender is not None and not _is_whole(per_sender, 1, count):
            raise DicomError(f"the maximum number of associations from one sender "
                             f"({FLAGS['max_associations_per_sender']}, {ENVIRONMENT['max_associations_per_sender']}) "
                             f"must be a whole number 1..{count} (at most the maximum number of associations, "
                             f"{FLAGS['max_associations']}), got {per_sender!r}; e.g. "
                             f"{min(DEFAULT_MAX_ASSOCIATIONS_PER_SENDER, count)}, or raise {FLAGS['max_associations']}")
        mib = self.max_dataset_mib
        if mib is not None and not _is_whole(mib, 1, MAX_MAX_DATASET_MIB):
            raise DicomError(f"the most MiB one instance may bring ({FLAGS['max_dataset_mib']}, "
                             f"{ENVIRONMENT['max_dataset_mib']}) must be a whole number 1..{MAX_MAX_DATASET_MIB}, "
                             f"got {mib!r}; e.g. 64, or unset it for the largest data set the node accepts")

    @property
    def sender_cap(self) -> int:
        """Associations open at once from one peer IP address."""
        if self.max_associations_per_sender is not None:
            return self.max_associations_per_sender
        return min(DEFAULT_MAX_ASSOCIATIONS_PER_SENDER, self.max_associations)

    @property
    def max_dataset_bytes(self) -> int:
        """Bytes one instance may bring while it arrives (loads pydicom for the default: the node's own limit)."""
        if self.max_dataset_mib is not None:
            return self.max_dataset_mib << 20
        from .node import MAX_DATASET_BYTES
        return MAX_DATASET_BYTES

    @classmethod
    def resolve(cls, flags: Mapping[str, object] | None = None,
                environ: Mapping[str, str] | None = None) -> AssociationLimits:
        """The settings from ``flags`` (the command line; None: not given), else the environment (this process's by
        default), else the defaults."""
        flags = flags or {}
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            given = flags.get(field.name)
            if given is not None:
                values[field.name] = given
            elif environ.get(ENVIRONMENT[field.name]) is not None:
                values[field.name] = _parse(field.name, environ[ENVIRONMENT[field.name]])
        return cls(**values)  # type: ignore[arg-type]  # each value is checked by __post_init__


def _parse(name: str, text: str) -> object:
    """The value of environment variable ``ENVIRONMENT[name]``, as its setting's type."""
    variable, value = ENVIRONMENT[name], text.strip()
    if name == "any_called_aet":
        if value.lower() not in _TRUE | _FALSE:
            raise DicomError(f"{variable} must be 1 or 0 (true or false), got {text!r}")
        return value.lower() in _TRUE
    try:
        return int(value) if name in _WHOLE_NUMBERS else float(value)
    except ValueError as e:
        kind = "a whole number" if name in _WHOLE_NUMBERS else "a number of seconds"
        raise DicomError(f"{variable} must be {kind}, got {text!r}; unset it for the default") from e
