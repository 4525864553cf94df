"""Diagnosis words a label file may hold, matched to the contract's classes, and the message for those that match none.

Every word comes from ``preprocess.contract.CLASSES``: a class's code (``MEL``), its HAM10000 dx code (``mel``) and
its name (``Melanoma``), compared without regard to case or repeated spaces.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence

from preprocess.contract import CLASSES, LesionClass

#: How many line numbers a message shows per value before "and N more".
SHOWN_LINES = 5
_WORD = re.compile(r"[a-z]{3,}")


def normal_word(value: str) -> str:
    """``value`` as the vocabularies hold it: lower case, spaces trimmed and runs of white space made one space."""
    return " ".join(value.split()).lower()


def class_words(c: LesionClass) -> tuple[str, ...]:
    """The words that name class ``c``: its code, its HAM10000 dx code (when it has one) and its name, normalised."""
    return tuple(normal_word(w) for w in (c.code, c.ham_dx, c.name) if w)


def _vocabulary() -> dict[str, int]:
    """Every class word -> class index; a word naming two classes (none in the contract today) is left out."""
    seen: dict[str, set[int]] = {}
    for c in CLASSES:
        for word in class_words(c):
            seen.setdefault(word, set()).add(c.index)
    return {word: next(iter(idx)) for word, idx in seen.items() if len(idx) == 1}


#: Class code, HAM10000 dx code or class name (normalised) -> contract class index.
WORD_TO_INDEX = _vocabulary()


def likely_classes(value: str) -> tuple[int, ...]:
    """The classes ``value`` most likely means, best first: the one a class word names exactly (any case), else those
    whose words it nearly spells (a typo: ``melanom``), else those whose name shares the most words with it
    (``seborrheic keratosis``: the two keratoses); () when none."""
    word = normal_word(value)
    if word in WORD_TO_INDEX:
        return (WORD_TO_INDEX[word],)
    close = difflib.get_close_matches(word, list(WORD_TO_INDEX), n=3, cutoff=0.8)
    if close:
        return tuple(dict.fromkeys(WORD_TO_INDEX[w] for w in close))
    words = set(_WORD.findall(word))
    shared = {c.index: len(words & set(_WORD.findall(normal_word(c.name)))) for c in CLASSES}
    best = max(shared.values())
    return tuple(i for i, n in shared.items() if n == best) if best else ()


def lines_phrase(lines: Sequence[int]) -> str:
    """``3 rows: lines 3, 5, 9`` (the first SHOWN_LINES line numbers, then how many more)."""
    shown = ", ".join(str(n) for n in lines[:SHOWN_LINES])
    more = f" and {len(lines) - SHOWN_LINES} more" if len(lines) > SHOWN_LINES else ""
    return f"{len(lines)} row{'s' if len(lines) != 1 else ''}: line{'s' if len(lines) != 1 else ''} {shown}{more}"


class UnknownValues:
    """The values of a label column that name no class, grouped without regard to case or spaces (``scc`` and ``SCC``
    are one value), each shown as first written, with the CSV lines it is on."""

    def __init__(self) -> None:
        self._lines: dict[str, list[int]] = {}
        self._written: dict[str, str] = {}

    def add(self, value: str, line: int) -> None:
        """Record ``value`` found on CSV ``line``."""
        key = normal_word(value)
        self._written.setdefault(key, value.strip())
        self._lines.setdefault(key, []).append(line)

    def __bool__(self) -> bool:
        return bool(self._lines)

    @property
    def rows(self) -> int:
        """How many rows hold an unknown value."""
        return sum(len(lines) for lines in self._lines.values())

    def found(self) -> dict[str, list[int]]:
        """Each value as first written -> its lines."""
        return {self._written[key]: lines for key, lines in self._lines.items()}


def unknown_values_phrase(found: Mapping[str, Sequence[int]], hint: Callable[[str], str]) -> str:
    """Every unknown value of a label file with its rows and ``hint(value)``, most frequent first:
    ``'melanoma' (3 rows: lines 3, 5, 9; likely mel)``; an empty value is shown as ``(empty)``."""
    ordered = sorted(found.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
    return ", ".join(f"{repr(v) if v.strip() else '(empty)'} ({lines_phrase(lines)}; {hint(v)})" for v, lines in ordered)
