"""The triage verdict a person reads: REFER, ROUTINE or NOT ASSESSABLE, as a text line and as a banner.

Pure functions of the result's triage fields (``refer``, ``refer_score``, ``assessable``, ``note``), so
the command line (which holds ``LesionResult.to_dict()``) and the demo page say the same thing. A picture that is
not assessable gets no score in either (``scores_withheld``); the FHIR and DICOM reports follow the same rule.
"""
from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .classes import CLASSES, REFER_CLASSES
from .result import LesionResult

REFER = "REFER"
ROUTINE = "ROUTINE"
NOT_ASSESSABLE = "NOT ASSESSABLE"
NO_TRIAGE = "NO TRIAGE"
DISCLAIMER = "Research demo, not a medical device."
_REFER_NAMES = [next(c.name for c in CLASSES if c.code == code).lower() for code in REFER_CLASSES]
#: what the refer score is: the model's estimate, calibrated on its validation images only (the model card: over-confident
#: on images from other clinics), so the page and the line do not call it a calibrated probability
SCORE_MEANING = f"the model's estimated probability of {', '.join(_REFER_NAMES[:-1])} or {_REFER_NAMES[-1]}"

#: what a ROUTINE answer leaves open: the model is one opinion, never the reason not to refer
RESIDUAL_RISK = "This does not rule out melanoma: refer on clinical grounds as usual."
_ADVICE = {
    REFER: "A dermatologist should see this lesion.",
    ROUTINE: f"No referral indicated by the model. {RESIDUAL_RISK}",
    NOT_ASSESSABLE: "This image cannot be assessed reliably: retake it before relying on any answer.",
    NO_TRIAGE: "The server sent no triage (it predates it): read the probabilities with care.",
}
#: the advice of a picture that is not assessable but referred anyway: the referral first, then the retake
_REFERRED_ANYWAY = ("Until a clear dermoscopic image is assessed, refer the patient to a dermatologist. This image cannot "
                    "be assessed reliably: retake it before relying on any answer.")
#: what the text line says instead of a score when the picture is not assessable
NOT_ASSESSED = "the picture could not be assessed"
# (border, background) per verdict; dark text on light backgrounds reads in light and dark themes alike.
_COLOURS = {
    REFER: ("#b3261e", "#fdecea"),
    ROUTINE: ("#1e7b34", "#e8f5e9"),
    NOT_ASSESSABLE: ("#b26a00", "#fff4e0"),
    NO_TRIAGE: ("#5f6368", "#f1f3f4"),
}


@dataclass(frozen=True)
class Verdict:
    """What the triage says, ready to print: the verdict, its advice sentence, the score (the server's, even where it
    is not shown: see ``shown_score``), the note, and whether the answer refers the patient (``refer``)."""

    kind: str
    advice: str
    refer_score: float | None
    note: str
    refer: bool | None = None


def verdict_of(refer: bool | None, refer_score: float | None, assessable: bool | None, note: str = "") -> Verdict:
    """The verdict of one answer's triage fields (all None from a server that predates the triage)."""
    if refer is None and assessable is None:
        kind = NO_TRIAGE
    elif assessable is False:
        kind = NOT_ASSESSABLE
    else:
        kind = REFER if refer else ROUTINE
    advice = _REFERRED_ANYWAY if kind == NOT_ASSESSABLE and refer else _ADVICE[kind]
    return Verdict(kind, advice, refer_score, (note or "").strip(), refer)


def verdict_of_result(result: LesionResult) -> Verdict:
    """The verdict of a ``LesionResult``."""
    return verdict_of(result.refer, result.refer_score, result.assessable, result.note)


def verdict_of_dict(summary: Mapping[str, Any]) -> Verdict:
    """The verdict of ``LesionResult.to_dict()`` (what the command line holds)."""
    return verdict_of(summary.get("refer"), summary.get("refer_score"), summary.get("assessable"),
                      summary.get("note") or "")


def scores_withheld(assessable: bool | None) -> bool:
    """Whether an answer's scores (the refer score, the class probabilities) are left out of what a person reads:
    the text line, the banner, the FHIR and DICOM reports. True when the picture is not assessable (``assessable``
    False): the scores of a picture that cannot be assessed are not ones to read. ``--json`` keeps them."""
    return assessable is False


def shown_score(verdict: Verdict) -> float | None:
    """The refer score a person is shown: the verdict's, or None when there is none or it is withheld (NOT
    ASSESSABLE, see ``scores_withheld``)."""
    return None if verdict.kind == NOT_ASSESSABLE else verdict.refer_score


def score_text(refer_score: float | None) -> str:
    """``refer score 62.4%``, or ``no refer score`` when the server sent none."""
    return "no refer score" if refer_score is None else f"refer score {100 * refer_score:.1f}%"


def headline(verdict: Verdict) -> str:
    """The verdict's headline, one wording for the text line and the banner: ``NOT ASSESSABLE - REFER`` for a picture
    that is not assessable and referred anyway (the referral must be seen first, not only in the advice), else the
    verdict's kind (``REFER``, ``ROUTINE``, ``NOT ASSESSABLE``, ``NO TRIAGE``)."""
    if verdict.kind == NOT_ASSESSABLE and verdict.refer:
        return f"{NOT_ASSESSABLE} - {REFER}"
    return verdict.kind


def verdict_line(verdict: Verdict) -> str:
    """One plain-text line: ``REFER (refer score 62.4%)``, then `` - <note>`` when there is one. A picture that is
    not assessable gets no score, as on the banner: ``NOT ASSESSABLE - REFER (the picture could not be assessed)``
    when it is referred anyway, else ``NOT ASSESSABLE (the picture could not be assessed: retake it)``."""
    if verdict.kind == NOT_ASSESSABLE:
        line = (f"{headline(verdict)} ({NOT_ASSESSED})" if verdict.refer
                else f"{NOT_ASSESSABLE} ({NOT_ASSESSED}: retake it)")
    else:
        line = f"{verdict.kind} ({score_text(shown_score(verdict))})"
    return f"{line} - {verdict.note}" if verdict.note else line


TEXT_COLOUR = "#1f1f1f"
# Every element carries the dark text colour itself: a page theme (Gradio's dark mode) styles inner divs and
# <strong> with its own light text colour, which on the light background is unreadable.
_TEXT = f"color: {TEXT_COLOUR};"


def threshold_text(kind: str, refer_score: float, refer_threshold: float | None) -> str:
    """Why a score is REFER or ROUTINE: the operating threshold it was compared with, or how that threshold is set."""
    if refer_threshold is None:
        return ("The referral threshold is set on validation for melanoma sensitivity, so a low score can be "
                "referred; the model card gives it.")
    side = "at or above" if kind == REFER else "below"
    return (f"{100 * refer_score:.1f}% is {side} the referral threshold, {100 * refer_threshold:.1f}%, which is set "
            "on validation for melanoma sensitivity.")


def banner_html(verdict: Verdict, refer_threshold: float | None = None) -> str:
    """The coloured banner at the top of the page's result: verdict, advice, refer score and the threshold it was
    compared with (``refer_threshold``: the served one when known), note, disclaimer. The headline is the text
    line's (``headline``: ``NOT ASSESSABLE - REFER`` when referred anyway). A picture that is not assessable gets no
    score: the score of a picture that cannot be assessed is not one to read. The banner is no live region itself:
    the page's container around it is one (a region inserted with its text is not announced by screen readers)."""
    border, background = _COLOURS[verdict.kind]
    shown = shown_score(verdict)
    compared = (f" {threshold_text(verdict.kind, shown, refer_threshold)}"
                if verdict.kind in (REFER, ROUTINE) and shown is not None else "")
    score = "" if shown is None else (
        f'<div class="verdict-score" style="{_TEXT}">Refer score <strong style="{_TEXT}">'
        f"{100 * shown:.1f}%</strong> ({SCORE_MEANING}).{html.escape(compared)}</div>"
    )
    note = (f'<div class="verdict-note" style="{_TEXT}"><strong style="{_TEXT}">Note:</strong> '
            f"{html.escape(verdict.note)}</div>") if verdict.note else ""
    kind_class = verdict.kind.lower().replace(" ", "-")
    return (
        f'<div class="verdict verdict-{kind_class}" style="border-left: 10px solid {border}; '
        f'background: {background}; {_TEXT} padding: 12px 16px; border-radius: 6px;">'
        f'<h2 class="verdict-kind" style="font-size: 1.8em; font-weight: 800; color: {border}; margin: 0;">'
        f"{html.escape(headline(verdict))}</h2>"
        f'<div class="verdict-advice" style="font-size: 1.1em; {_TEXT}">{html.escape(verdict.advice)}</div>'
        f"{score}{note}"
        f'<div class="verdict-disclaimer" style="margin-top: 6px; {_TEXT}">{DISCLAIMER}</div>'
        f"</div>"
    )
