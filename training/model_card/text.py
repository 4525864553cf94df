"""How the model card writes figures, counts and lists in its prose and tables, and wraps its paragraphs."""
from __future__ import annotations

import textwrap

# Widths the card's derived paragraphs wrap at (those of the shipped card's prose).
BULLET_WIDTH, ATTRIBUTION_WIDTH = 111, 110
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def fixed(value: object, digits: int = 3) -> str:
    """A figure with ``digits`` decimals (a float), as it is (anything else), or ``n/a`` (None)."""
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def percent(value: float | None) -> str:
    """A share as a percentage with one decimal (``n/a`` for None)."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def interval_text(interval: list[float] | None) -> str:
    """A 95% interval as the tables append it to a figure: `` (0.40-0.60)``; "" where there is none."""
    return "" if interval is None else f" ({interval[0]:.2f}-{interval[1]:.2f})"


def short_number(value: float) -> str:
    """A tuned value as the card's prose gives it: one decimal where that is exact (1.0), else as few as it needs."""
    return f"{value:.1f}" if value == round(value, 1) else f"{value:g}"


def percentile(quantile: float) -> str:
    """A quantile as an ordinal percentile: 0.98 -> "98th", 0.975 -> "97.5th", 0.91 -> "91st"."""
    share = round(100 * quantile, 6)
    if share != int(share) or int(share) % 100 in (11, 12, 13):
        return f"{share:g}th"
    return f"{int(share)}{({1: 'st', 2: 'nd', 3: 'rd'}).get(int(share) % 10, 'th')}"


def ordinal(n: int) -> str:
    """A whole number as an ordinal: 1 -> "1st", 12 -> "12th", 23 -> "23rd"."""
    return f"{n}{'th' if n % 100 in (11, 12, 13) else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def join_words(items: list[str], word: str = "and") -> str:
    """Items as prose lists them: "a", "a and b", "a, b and c" (``word`` in place of "and")."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def wrap(text: str, width: int = BULLET_WIDTH, indent: str = "", initial: str = "") -> list[str]:
    """A paragraph's lines at ``width``, breaking at spaces only (never inside a word or at a hyphen)."""
    return textwrap.wrap(text, width, initial_indent=initial, subsequent_indent=indent, break_on_hyphens=False,
                         break_long_words=False)


def count_range(counts: list[int]) -> str:
    """The span of some counts: "17-22", or "17" where they are all the same."""
    return f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"


def about(count: int) -> str:
    """A count as the card's prose gives it: to the nearest ten from 100 on (``about 880`` for 879)."""
    rounded = round(count, -1) if count >= 100 else count
    return str(count) if rounded == count else f"about {rounded}"


def number_word(count: int) -> str:
    """A count in words below ten ("no", "one", ... "nine"), in digits from ten on."""
    return NUMBER_WORDS[count] if count < len(NUMBER_WORDS) else str(count)
