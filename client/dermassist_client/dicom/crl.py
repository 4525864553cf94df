"""The dates of certificate revocation lists (RFC 5280, 5.1), read from their PEM without a third-party package: the
standard library's ``ssl`` checks a sender's certificate against a list but tells nothing of the list itself."""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timezone

_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----(.+?)-----END X509 CRL-----", re.DOTALL)
_SEQUENCE, _INTEGER, _UTC_TIME, _GENERALIZED_TIME = 0x30, 0x02, 0x17, 0x18


class CrlFormatError(ValueError):
    """A revocation list whose DER cannot be read."""


@dataclass(frozen=True)
class RevocationList:
    """One CA's list: its issuer (the DER of its name, to match lists of one CA), when it was issued and when the next
    is due (None when it names no date)."""

    issuer: bytes
    this_update: datetime
    next_update: datetime | None


def _element(data: bytes, at: int) -> tuple[int, int, int]:
    """The DER element at ``at``: its tag, where its contents start and where it ends."""
    if at + 2 > len(data):
        raise CrlFormatError(f"an element at byte {at} runs past the end")
    tag, first = data[at], data[at + 1]
    if first < 0x80:
        start, length = at + 2, first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or at + 2 + count > len(data):
            raise CrlFormatError(f"the length of the element at byte {at} cannot be read")
        start, length = at + 2 + count, int.from_bytes(data[at + 2:at + 2 + count], "big")
    if start + length > len(data):
        raise CrlFormatError(f"the element at byte {at} runs past the end")
    return tag, start, start + length


def _time(tag: int, text: bytes) -> datetime:
    """A UTCTime (two-digit year: 50-99 is 19xx) or GeneralizedTime, both in UTC ('Z')."""
    value = text.decode("ascii", errors="replace")
    try:
        if tag == _UTC_TIME:
            moment = datetime.strptime(value, "%y%m%d%H%M%SZ")
            moment = moment.replace(year=moment.year - 100) if moment.year >= 2050 else moment
        else:
            moment = datetime.strptime(value, "%Y%m%d%H%M%SZ")
    except ValueError as e:
        raise CrlFormatError(f"the time {value!r} cannot be read") from e
    return moment.replace(tzinfo=timezone.utc)


def parse_crl(der: bytes) -> RevocationList:
    """The issuer and dates of one list's DER."""
    tag, start, _ = _element(der, 0)
    if tag != _SEQUENCE:
        raise CrlFormatError("it is no DER sequence")
    tag, at, tbs_end = _element(der, start)  # TBSCertList
    if tag != _SEQUENCE:
        raise CrlFormatError("its list of revoked certificates is no DER sequence")
    tag, _, end = _element(der, at)
    if tag == _INTEGER:  # version, present in a v2 list
        at = end
        tag, _, end = _element(der, at)
    at = end  # the signature algorithm
    tag, _, end = _element(der, at)
    issuer, at = der[at:end], end
    tag, body, end = _element(der, at)
    if tag not in (_UTC_TIME, _GENERALIZED_TIME):
        raise CrlFormatError("it gives no date of issue")
    this_update, at = _time(tag, der[body:end]), end
    next_update = None
    if at < tbs_end:
        tag, body, end = _element(der, at)
        if tag in (_UTC_TIME, _GENERALIZED_TIME):
            next_update = _time(tag, der[body:end])
    return RevocationList(issuer, this_update, next_update)


def revocation_lists(pem: bytes) -> list[RevocationList]:
    """Every list of a PEM file, in its order."""
    lists = []
    for number, block in enumerate(_PEM_CRL.findall(pem), start=1):
        try:
            der = base64.b64decode(b"".join(block.split()), validate=True)
        except (binascii.Error, ValueError) as e:
            raise CrlFormatError(f"list {number} is no base64 ({e})") from e
        try:
            lists.append(parse_crl(der))
        except CrlFormatError as e:
            raise CrlFormatError(f"list {number}: {e}") from e
    return lists
