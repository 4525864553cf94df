"""The character set a SEG or SR declares: its source's, or UTF-8 where its text needs characters that one lacks.

The SEG and SR copy their source's Specific Character Set with its patient and study text, and add text of their own
(``OutputIdentity``: institution, manufacturer). pydicom writes every text value in the declared set: a character it
lacks became "?" (a name written wrong), and text read from a source that declared no set although it held Latin-1
bytes was written back as undeclared Latin-1, which dciodvfy reports as an error.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)

UTF8 = "ISO_IR 192"
TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})  # CS, AE and the rest are ASCII in any set
_ASCII = ("ascii",)


def python_encodings(declared: str | Iterable[str] | None) -> tuple[str, ...]:
    """The Python codecs of a Specific Character Set value (absent or empty: the default repertoire, ASCII)."""
    values = [declared] if isinstance(declared, str) else list(declared or [])
    terms = [str(v).strip() for v in values]
    if not any(terms):
        return _ASCII
    encodings = convert_encodings(terms)
    return tuple(dict.fromkeys("ascii" if e in ("iso8859", "iso_ir_6") else e for e in encodings))


def fits(text: str, encodings: Iterable[str]) -> bool:
    """Whether every character of ``text`` is in one of ``encodings`` (ISO 2022 switches between them)."""
    codecs = tuple(encodings)
    for character in set(text):
        for codec in codecs:
            try:
                character.encode(codec)
                break
            except (UnicodeEncodeError, LookupError):
                continue
        else:
            return False
    return True


def text_values(ds: Dataset) -> Iterable[tuple[str, str]]:
    """Every text value of ``ds`` and its sequences (person names whole, each value of a multi-valued element), with
    the name of its element (:func:`element_name`)."""
    for element in ds.iterall():
        if element.VR not in TEXT_VRS or element.value in (None, ""):
            continue
        values = element.value if element.VM > 1 else [element.value]
        for value in values:
            yield element_name(element), str(value)


def element_name(element: DataElement) -> str:
    """How a message names an element without quoting its value (which may be a patient's name):
    ``PatientName (0010,0010)``."""
    tag = f"({element.tag.group:04X},{element.tag.element:04X})"
    return f"{element.keyword} {tag}" if element.keyword else f"the private element {tag}"


def declare_what_the_text_needs(ds: Dataset, what: str) -> bool:
    """Make ``ds`` declare UTF-8 when a text value of it is not in its declared set (logged once, naming ``what``);
    whether it did. The values are characters in memory, so pydicom then writes each of them in UTF-8."""
    declared = ds.get("SpecificCharacterSet")
    encodings = python_encodings(declared)
    outside = next((name for name, text in text_values(ds) if not fits(text, encodings)), None)
    if outside is None:
        return False
    logger.info("%s: its text holds characters its character set (%s) lacks, e.g. in %s: it declares UTF-8 (%s)",
                what, declared or "the default repertoire", outside, UTF8)
    ds.SpecificCharacterSet = UTF8
    return True


def undeclared_text(ds: Dataset) -> str | None:
    """The name (never the value: it may be a patient's name) of an element holding text outside ASCII in a data set
    that declares no character set (read as Latin-1 by pydicom), or None."""
    if str(ds.get("SpecificCharacterSet") or "").strip():
        return None
    return next((name for name, text in text_values(ds) if not fits(text, _ASCII)), None)
