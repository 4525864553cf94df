"""The Gradio demo page: upload an image (or pick a bundled real example) and see what the ensemble says.

Gradio is imported only here (``pip install './client[demo]'`` from the checkout).
"""
from __future__ import annotations

import html
import json
import logging
import re
import threading
import time
import traceback
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import gradio as gr
import numpy as np
from PIL import Image

from .classes import CLASSES, LesionClass
from .client import DermAssistClient
from .config import DEMO_HOST, DEMO_PORT, DEMO_RETRIES, class_codes, config_default
from .errors import (
    ClientConfigError,
    DeadlineExceededError,
    DermAssistClientError,
    InvalidImageError,
    RequestTooLargeError,
    ResultError,
    ServerUnavailableError,
)
from .overlay import VIRIDIS, cam_hotspot, draw_cam, draw_overlay_file
from .page_address import page_address_problem
from .result import LesionResult
from .samples import attribution_markdown, samples
from .signals import wait_for_signal  # noqa: F401 - re-exported: callers import it from here
from .uploads import private_upload_folder
from .verdict import DISCLAIMER, banner_html, verdict_of_result

logger = logging.getLogger(__name__)

TITLE = "DermAssist demo"
INTRO = (
    "Upload a dermoscopic image (JPEG, PNG, BMP or TIFF) or pick one of the real examples, then press "
    f"**Analyze**. For privacy the page deletes an upload after an hour. {DISCLAIMER}"
)
MODEL_CARD = "training/release/MODEL_CARD.md"
"""The model card, in the DermAssist repository: intended use, figures and known limits of the release."""
MODEL_CARD_NAME = "dermassist-real-2026.12"
"""The release the model card describes (its title, and ``name`` in training/release/release.json; a test checks
both). The page names the card beside the release and build the answer names (a server that names none: the card
only)."""
INTENDED_USE_TEMPLATE = f"""## Intended use and limits
- **For research and demonstration only, not for diagnosis.** It does not replace clinical examination or
  histopathology: a lesion you suspect is handled as usual, whatever the answer.
- For one dermoscopic picture of one skin lesion; not for clinical or phone photographs, mucosal or nail lesions,
  or ulcerated, bleeding, biopsied or treated lesions.
- Trained on public dermoscopy (HAM10000 images of ISIC 2018 Task 3, ISIC 2017 and PH2), mostly of light skin: how
  it does on darker skin is not known.{{not_learnt}}
- The training data's terms are non-commercial (CC BY-NC 4.0, CC BY-NC-SA 4.0; PH2: research use only), and the
  model weights inherit them.
- Figures and known limits: the model card `{MODEL_CARD}` ({MODEL_CARD_NAME})."""
"""The page's intended use and limits, with ``{not_learnt}`` where ``intended_use`` names the classes the served
classifier never learnt (nothing there when it is told of none)."""
NO_FILE = "Upload an image or pick an example first."
GONE = ("The page no longer holds **{name}** (it deletes uploads after an hour, for privacy). Upload the picture "
        "again, then press **Analyze**.")
STOPPING = "**Could not analyze:** the demo page is stopping. Try again in a minute, or ask whoever runs it."
UNEXPECTED = ("**Could not analyze:** an unexpected error on the demo page (it is in the page's log). Try again; if it "
              "goes on, tell the team that runs DermAssist.")
#: Analyses the page runs at once, every user together: the server batches them (the client is shared by Gradio's
#: worker threads, which it allows).
ANALYSES_AT_ONCE = 4
#: What a stopping page gives Gradio to send the answers of the analyses it waited for.
DELIVERY_S = 1.0
NEW_FILE = "**{name}** is loaded: press **Analyze**."
ANALYSING = "Analysing **{name}** ..."
UNREACHABLE = ("The analysis service cannot be reached right now. Try again in a minute; if it goes on, tell the team "
               "that runs DermAssist.")
TOO_SLOW = ("The analysis service is busy or not responding. Try again shortly; if it goes on, tell the team that "
            "runs DermAssist.")
TOO_SLOW_LARGE = ("The analysis service took too long to answer. {name} is a large picture ({size}), which takes "
                  "longer: try again, or analyse a smaller copy.")
LARGE_PICTURE_PIXELS = 20_000_000
OVERLAY_MAX_SIDE = 2048
"""The mask and box are drawn on a copy of the picture at most this many pixels a side: a page shows no more, and a
48-megapixel picture took 9 s and 3.4 GB to draw and send at full size while every other analysis waited."""
NOT_DRAWN = ("The mask and box could not be drawn on {name} (this page could not read the picture as the service "
             "did); the answer above stands.")
LARGE_FILE_BYTES = 20_000_000
"""A picture this large (pixels, or bytes when its header cannot be read) is named as a reason for a slow answer."""
NOT_RELIABLE = "**Image not assessable: no class and no percentage are given** (see the note above)."
MARKED = ("The red, outlined area and its box are what the segmenter marked ({share} of the image), shown only to "
          "help retake the picture.")
NO_DIAGNOSIS = "No class is named: the whole picture was classified, which is not a diagnosis."
ALT_OVERLAY = "The uploaded image with the lesion the model found tinted red and outlined, in its box"
ALT_MARKED = "The uploaded image with the area the segmenter marked tinted red and outlined, in its box"
ALT_NO_LESION = "The uploaded image as analysed: no lesion was found, so nothing is drawn on it"
ALT_CROP = "The square crop around the lesion that the classifier analysed"
ALT_CAM = "The crop with a heat map of where the model looked: yellow raised the top class most"
NO_LESION = ("**No lesion found.** The segmenter found no lesion, so the whole image was classified "
             "(no mask, no box).")
CAM_LEGEND = ("Class activation map of the top class over the crop: the tint runs from untinted (did not raise that "
              "class's probability) through purple, blue and green to bright yellow (raised it most); the brighter, "
              "the more. The map is coarse (a 7x7 grid drawn smooth): it marks regions, not borders, and can light "
              "normal skin beside the lesion.")
_GRADIENT = ", ".join(f"rgb{colour}" for colour in VIRIDIS)
CAM_LEGEND_HTML = (
    f'<p class="cam-legend-text">{html.escape(CAM_LEGEND)}</p><div class="cam-scale" aria-hidden="true" '
    f'style="display: flex; align-items: center; gap: 8px; font-size: 0.85em;"><span>low</span><div style="flex: 1; '
    f'height: 12px; background: linear-gradient(to right, {_GRADIENT});"></div><span>high</span></div>'
)
"""The CAM's legend with its colour scale (low to high, decorative: the text says the same)."""


def cam_legend_html(hotspot: str) -> str:
    """The CAM's legend and where this answer's map is hottest (``overlay.cam_hotspot``), in text: the map alone told
    nothing to a blind user, and as drawn over a dark lesion it hardly reads without colour (accessibility audit,
    M2)."""
    return f'{CAM_LEGEND_HTML}<p class="cam-hotspot">In this answer the map is {html.escape(hotspot)}.</p>'

NOT_LEARNT = "not learnt: no training images"
"""What the probabilities table says instead of the percentage of a class the served classifier has no training
images of. Which classes those are is a fact of the served model version, not of this page: the page is told them
(``not_learnt`` of ``build_demo``), ``dermassist demo`` from the served model's exported calibration.json (for the
shipped release, SCC), ``dermassist-client demo`` from its ``--not-learnt`` option. Told none, it claims none."""
PROBABILITIES_CAPTION = "The model's estimated probability of each class"
PROBABILITIES_CAVEAT_TEMPLATE = (
    "These percentages are the model's estimates, calibrated on its own validation images; it is over-confident on "
    f"images from other clinics{{not_learnt}}. See the model card, {MODEL_CARD_NAME} ({MODEL_CARD})."
)
"""The caveat under the probabilities, with ``{not_learnt}`` where ``probabilities_caveat`` names the classes never
learnt and what not to read for them."""
BAR_COLOUR = "#1d4ed8"
ANALYZE_BACKGROUND = "#c2410c"
"""The Analyze button at rest: white text on it is 5.2:1 (WCAG AA asks 4.5:1; the default theme's orange is 3.6:1)."""
ANALYZE_BACKGROUND_ACTIVE = "#9a3412"
"""Hovered, focused or pressed: darker still (7.3:1), so no state of the button falls under AA."""
ANALYZE_TEXT = "#ffffff"
FOOTER_TEXT = "#4b5563"
"""Gradio's footer links ('Built with Gradio', 'Settings') on the light page: 7.6:1 (Gradio's own grey is 1.9:1)."""
FOOTER_TEXT_DARK = "#d1d5db"
"""The same in Gradio's dark mode, on its near-black page."""
REFUSED_UPLOAD_ID = "upload-refused"  # an HTML block under the status line no handler writes: TOO_LARGE_UPLOAD's
REFUSED_REGION = f"#{REFUSED_UPLOAD_ID} .html-container"  # its inner container, the live region the script fills
PICTURE_DOWNLOADS = {
    "overlay": ("Download the mask and box (PNG)", "dermassist-mask-and-box.png"),
    "crop": ("Download the crop the classifier saw (PNG)", "dermassist-crop.png"),
    "cam": ("Download the class activation map (PNG)", "dermassist-cam.png"),
}
"""Each result picture's one download link: its accessible name and the file name it saves. Gradio gave each picture
three Tab stops (a link with no name, a 'Download' button nested in it, a button around the picture that does
nothing), 20x20 px targets, and saved every picture as 'image.png' (accessibility audit, L4 and L5): the page script
leaves the link alone in the Tab order, named, and PAGE_CSS makes it 24 px or more."""
HIDDEN_WHEN_EMPTY = "#crop:not(:has(img)), #cam:not(:has(img)), #cam-legend:not(:has(.cam-legend-text))"
"""The crop and CAM boxes without a picture, and the CAM legend without its text: PAGE_CSS does not display them.
An empty Gradio Image holds an 'Empty value' placeholder (an SVG icon), no ``img``; Chromium, Firefox 121 and
Safari 15.4 on support ``:has``."""
PAGE_CSS = (
    f"#analyze {{ background: {ANALYZE_BACKGROUND} !important; color: {ANALYZE_TEXT} !important; "
    f"border-color: {ANALYZE_BACKGROUND} !important; }}\n"
    f"#analyze:hover, #analyze:focus, #analyze:focus-visible, #analyze:active {{ "
    f"background: {ANALYZE_BACKGROUND_ACTIVE} !important; color: {ANALYZE_TEXT} !important; "
    f"border-color: {ANALYZE_BACKGROUND_ACTIVE} !important; }}\n"
    # the result pictures' label and toolbar above the picture, not floating over its top edge (on a phone they
    # covered the top of the box)
    + "".join(f"#{image} [data-testid=block-label] {{ position: static !important; }}\n"
              f"#{image} .icon-button-wrapper.top-panel {{ position: static !important; "
              "justify-content: flex-end; }\n" for image in ("overlay", "crop", "cam")) +
    # the crop and CAM boxes and the CAM legend only while they hold a picture (a legend): not as empty frames with
    # placeholder icons on the page as first loaded, after a new or cleared upload (emptied in the browser by
    # LOADED_JS, which cannot hide them) or beside an answer without a diagnosis
    f"{HIDDEN_WHEN_EMPTY} {{ display: none !important; }}\n"
    # the refused-upload block while empty: no room on the page (a 36 px band had been left under the status line),
    # but kept in the accessibility tree, so its live region is announced when the script fills it
    f"#{REFUSED_UPLOAD_ID}:not(:has(.upload-refused-text)) {{ position: absolute !important; width: 1px !important; "
    "height: 1px !important; padding: 0 !important; margin: -1px !important; overflow: hidden !important; "
    "clip: rect(0 0 0 0) !important; border: 0 !important; }\n"
    f"footer a, footer button {{ color: {FOOTER_TEXT} !important; }}\n"
    f".dark footer a, .dark footer button {{ color: {FOOTER_TEXT_DARK} !important; }}\n"
    # the upload box's "- or -", Gradio's grey at 1.9:1 on white, in the footer's colours
    f"#upload .or {{ color: {FOOTER_TEXT} !important; }}\n"
    f".dark #upload .or {{ color: {FOOTER_TEXT_DARK} !important; }}\n"
    # a long path or digest in a code span wraps rather than make the block scroll sideways at 320 px with WCAG's text
    # spacing (accessibility audit, L10)
    "#intended-use code, #model code { overflow-wrap: anywhere; }\n"
    # Analyze keeps an outline where a high-contrast theme removes its background (accessibility audit, L8)
    "@media (forced-colors: active) { #analyze { border: 2px solid ButtonText !important; } }\n"
    # each picture's download link a target of 24 px or more (WCAG 2.5.8; accessibility audit, L5)
    + "".join(f"#{image} a.download-link {{ display: inline-flex !important; align-items: center; "
              "justify-content: center; min-width: 24px; min-height: 24px; }\n" for image in PICTURE_DOWNLOADS)
)
"""The page's own CSS (given to ``launch``): the Analyze button's colours in every state (and its outline in a
high-contrast theme), the result pictures' labels and toolbars above them, the crop and CAM boxes and the CAM legend
hidden while empty (``HIDDEN_WHEN_EMPTY``), the footer's links, the upload box's "- or -", and code spans that
wrap."""
STATUS_REGION = "#status [data-testid=markdown]"
BANNER_REGION = "#banner .html-container"
"""The status line's and the banner's inner containers in the page: its live regions, and where focus goes after an
answer."""
TOO_LARGE_UPLOAD = ("{name} is too large for this page (over {limit}). Save a smaller copy (a JPEG of the picture) "
                    "and upload it again.")
"""What the page says, under its status line (``REFUSED_UPLOAD_ID``), of an upload over its limit, which Gradio refuses
before any page code runs: Gradio's own message went with its toast after 10 s, leaving "Error" alone, and never said
what to do (accessibility audit, M1)."""
_TOO_LARGE_TOAST = "exceed the maximum allowed size"  # Gradio's words in that toast, which ends with the file's name
DROP_ZONE_NAME = "Drop File Here or Click to Upload: a dermoscopic image (JPEG, PNG, BMP or TIFF)"
"""The upload drop zone's accessible name: it holds the zone's visible words, so a voice-control user who says "click
Drop File Here" reaches it (Gradio names it "Click to upload or drop files"; accessibility audit, L3)."""
EMPTY_OVERLAY = "Mask and box: no picture analysed yet"
"""The accessible name of the empty picture box, a picture role given with it: Gradio labels the box "Empty value" on
an element without a role, which screen readers ignore (axe: aria-prohibited-attr; accessibility audit, L9)."""


def live_regions_js(limit_bytes: int) -> str:
    """The script the page runs in the browser when it loads, naming the upload limit ``limit_bytes``.

    The status line (errors included) and the banner's containers become polite live regions, so a screen reader
    announces a failure and the verdict. They are the components' inner containers, which stay in place while their
    text changes (a live region inserted with its text is not announced) and hold no progress timer (the outer block's
    ticking 'processing | 1.2s' would be read out again and again). Both can take focus from a script
    (``tabindex=-1``) without being a stop of the Tab key: see ``FOCUS_ANSWER_JS``. An upload Gradio refuses as too
    large leaves ``TOO_LARGE_UPLOAD`` in a block of its own under the status line, which no handler writes
    (``REFUSED_UPLOAD_ID``: written into the status line, whose text Gradio keeps, it had frozen it for the rest of the
    session; a node the script added to the page broke the drop zone's Enter key; review 19, H1), which takes focus
    and is emptied by the next upload. The drop zone, which Gradio makes again after a picture is
    cleared, is named ``DROP_ZONE_NAME``, the empty picture box, made again with each new picture, is a picture
    named ``EMPTY_OVERLAY``, and each result picture keeps one Tab stop, its named download link
    (``PICTURE_DOWNLOADS``; Gradio sets the link's file name again with each picture, so the script watches it).
    """
    told = json.dumps(TOO_LARGE_UPLOAD.replace("{limit}", f"{limit_bytes / 1e6:.0f} MB"))
    return (
        f"() => {{ for (const selector of [{json.dumps(STATUS_REGION)}, {json.dumps(BANNER_REGION)}]) {{ "
        "const region = document.querySelector(selector); "
        "if (region) { region.setAttribute('role', 'status'); region.setAttribute('aria-live', 'polite'); "
        "region.setAttribute('aria-atomic', 'true'); region.setAttribute('tabindex', '-1'); } } "
        "const name = () => { for (const zone of document.querySelectorAll('#upload button.upload-container')) { "
        f"if (zone.getAttribute('aria-label') !== {json.dumps(DROP_ZONE_NAME)}) {{ "
        f"zone.setAttribute('aria-label', {json.dumps(DROP_ZONE_NAME)}); }} }} "
        "for (const empty of document.querySelectorAll('#overlay .empty')) { if (empty.getAttribute('role') !== 'img') { "
        f"empty.setAttribute('role', 'img'); empty.setAttribute('aria-label', {json.dumps(EMPTY_OVERLAY)}); }} }} "
        f"for (const [id, [label, file]] of Object.entries({json.dumps(PICTURE_DOWNLOADS)})) {{ "
        "for (const frame of document.querySelectorAll(`#${id} .image-container > button`)) { "
        "if (frame.getAttribute('tabindex') !== '-1') { frame.setAttribute('tabindex', '-1'); } } "
        "for (const link of document.querySelectorAll(`#${id} a.download-link`)) { "
        "if (link.getAttribute('aria-label') !== label) { link.setAttribute('aria-label', label); } "
        "if (link.getAttribute('download') !== file) { link.setAttribute('download', file); } "
        "for (const inner of link.querySelectorAll('button')) { if (inner.getAttribute('tabindex') !== '-1') { "
        "inner.setAttribute('tabindex', '-1'); inner.setAttribute('aria-hidden', 'true'); } } } } }; "
        "name(); "
        f"const refused = document.querySelector({json.dumps(REFUSED_REGION)}); "
        "if (refused) { refused.setAttribute('role', 'status'); refused.setAttribute('aria-live', 'polite'); "
        "refused.setAttribute('tabindex', '-1'); } "
        "new MutationObserver(() => { name(); for (const toast of document.querySelectorAll('.toast-body')) { "
        "const text = toast.innerText || ''; if (toast.dataset.dermassistTold === text) { continue; } "
        f"if (!text.includes({json.dumps(_TOO_LARGE_TOAST)})) {{ continue; }} toast.dataset.dermassistTold = text; "
        "const quoted = text.match(/\"([\\s\\S]*)\"/); "
        f"const note = document.querySelector({json.dumps(REFUSED_REGION)}); "
        "if (note) { const line = document.createElement('p'); line.className = 'upload-refused-text'; "
        f"line.textContent = {told}.replace('{{name}}', () => quoted ? quoted[1] : 'The picture'); "
        "note.replaceChildren(line); note.focus(); } } })"
        ".observe(document.body, {childList: true, subtree: true, characterData: true, attributes: true, "
        "attributeFilter: ['download', 'tabindex']}); }"
    )


FOCUS_ANSWER_JS = (
    f"(banner) => {{ const region = document.querySelector(banner ? {json.dumps(BANNER_REGION)} : "
    f"{json.dumps(STATUS_REGION)}); if (region) {{ region.setAttribute('tabindex', '-1'); region.focus(); }} }}"
)
"""Given the banner's HTML of the answer shown: focus moves to the banner (its REFER, ROUTINE or NOT ASSESSABLE
headline first), or to the status line where there is no banner (an error, or no picture), so a keyboard or
screen-reader user lands on the answer instead of staying on the Analyze button."""
IMAGE_BUTTONS: list[Any] = ["download"]
"""No 'share' button: on Hugging Face Spaces it would upload the patient's picture to huggingface.co. No fullscreen:
Gradio's view left keyboard focus on the page behind it, out of sight, and did not enlarge the picture (accessibility
audit, M4)."""


class PageOutputs(NamedTuple):
    """What the Analyze button fills in, in the order of the page's output components."""

    banner: str
    overlay: Image.Image | None
    crop: np.ndarray | None
    cam: Image.Image | None
    cam_legend: str  # CAM_LEGEND_HTML beside a CAM, "" with none
    probabilities: str  # the table of class probabilities and its caveat (HTML), "" where no diagnosis is given
    status: str
    model: str
    about: str  # the stored upload these outputs are about ("" for none), held in a hidden field of the page
    alt_texts: tuple[str, str, str] = (ALT_OVERLAY, ALT_CROP, ALT_CAM)  # of overlay, crop and cam: not a page output


def _message(status: str, about: str = "") -> PageOutputs:
    return PageOutputs("", None, None, None, "", "", status, "", about)


class Analyses:
    """The page's analyses running now, so that a stop lets them finish (``drain``) rather than dropping them: a
    SIGTERM had closed the page at once, and eight users lost their answers, one of them answered and audited but
    never shown (concurrency audit 7). Once draining, an analysis that had not begun yet is answered STOPPING."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running = 0
        self._stopping = False

    def run(self, analysis: Callable[[], PageOutputs], path: str | None) -> PageOutputs:
        """``analysis()``, counted while it runs; the STOPPING message once the page is stopping."""
        with self._changed:
            if self._stopping:
                return _message(STOPPING, path or "")
            self._running += 1
        try:
            return analysis()
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def drain(self, timeout_s: float) -> int:
        """Begin no new analysis, wait up to ``timeout_s`` for the running ones to end, and DELIVERY_S more for the
        page to send their answers; how many had not ended."""
        with self._changed:
            self._stopping = True
            waited = self._running
            if waited:
                logger.info("waiting up to %g s for %d analysis(es) on the page to finish", timeout_s, waited)
            self._changed.wait_for(lambda: self._running == 0, timeout_s)
            left = self._running
        if left:
            logger.warning("%d analysis(es) on the page did not finish within %g s and are cut", left, timeout_s)
        if waited:
            time.sleep(DELIVERY_S)
        return left


def page_values(outputs: PageOutputs) -> tuple[Any, ...]:
    """What Gradio gets for the page's outputs: the pictures with their alt texts, then the rest as they are. The crop
    and CAM boxes are hidden when they have no picture (no diagnosis given, or no answer), and shown with one."""
    overlay = gr.Image(value=outputs.overlay, alt_text=outputs.alt_texts[0])
    crop, cam = (gr.Image(value=value, alt_text=alt, visible=picture_visibility(value)) for value, alt in
                 zip((outputs.crop, outputs.cam), outputs.alt_texts[1:]))
    return (outputs.banner, overlay, crop, cam, *outputs[4:9])


def picture_visibility(picture: object) -> bool | Literal["hidden"]:
    """Gradio's ``visible`` of a crop or CAM box showing ``picture``: True with one, ``"hidden"`` with none (not
    displayed, so out of the layout and of what a screen reader reads, but kept in the page to be shown again)."""
    return True if picture is not None else "hidden"


def percent(probability: float) -> str:
    """A probability as a whole percentage: ``93%``; ``<1%`` and ``>99%`` at the ends, never a certain 0% or 100%."""
    if probability < 0.005:
        return "<1%"
    if probability > 0.995:
        return ">99%"
    return f"{round(100 * probability)}%"


def class_name(lesion_class: LesionClass) -> str:
    """``Melanoma (MEL)``."""
    return f"{lesion_class.name} ({lesion_class.code})"


def _lower_name(lesion_class: LesionClass) -> str:
    return lesion_class.name[0].lower() + lesion_class.name[1:]


def _lower_names(not_learnt: Collection[str]) -> list[str]:
    return [_lower_name(c) for c in CLASSES if c.code in not_learnt]


def _joined(names: list[str], word: str) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {word} {names[-1]}"


def intended_use(not_learnt: Collection[str] = ()) -> str:
    """The page's intended use and limits (``INTENDED_USE_TEMPLATE``), saying it never learnt the classes
    ``not_learnt`` names (class codes of the served classifier without training images); no such claim when it names
    none."""
    names = _lower_names(not_learnt)
    claim = f" It never learnt {_joined(names, 'or')} (no training images)." if names else ""
    return INTENDED_USE_TEMPLATE.format(not_learnt=claim)


SUSPECTED_AS = {"SCC": "keratinocyte cancer"}
"""What a clinician suspects when a class never learnt may be there, where it is wider than the class (the model card's
advice): an SCC is called one of the classes learnt, so the top class is not to be read for any keratinocyte
cancer."""


def probabilities_caveat(not_learnt: Collection[str] = ()) -> str:
    """The caveat under the probabilities (``PROBABILITIES_CAVEAT_TEMPLATE``): where ``not_learnt`` names classes,
    that the model never learnt them and that its top class is not to be read where one of them is suspected
    (``SUSPECTED_AS``, as the model card says)."""
    names = _lower_names(not_learnt)
    suspected = list(dict.fromkeys(SUSPECTED_AS.get(c.code, _lower_name(c)) for c in CLASSES if c.code in not_learnt))
    claim = (f", and never learnt {_joined(names, 'or')}: do not read the top class for a suspected "
             f"{_joined(suspected, 'or')}") if names else ""
    return PROBABILITIES_CAVEAT_TEMPLATE.format(not_learnt=claim)


def probabilities_html(result: LesionResult, not_learnt: Collection[str] = ()) -> str:
    """The class probabilities as a table (most probable first; a class ``not_learnt`` names last, with no percentage)
    with the caveat under it; "" where the answer gives no diagnosis (not assessable, or no lesion found): its figures
    are not ones to read. A table, not Gradio's Label, whose rows are buttons that do nothing."""
    if not result.diagnosis_given:
        return ""
    learnt = sorted((c for c in CLASSES if c.code not in not_learnt), key=lambda c: -result.probabilities[c.code])
    rows = []
    for c in learnt:
        share = result.probabilities[c.code]
        width = max(0.0, min(100.0, 100 * share))
        rows.append(
            f'<tr class="probability-row"><th scope="row" style="text-align: left; font-weight: normal;">'
            f'{html.escape(class_name(c))}</th><td class="probability-value" style="text-align: right;">'
            f'{html.escape(percent(share))}</td><td aria-hidden="true" style="width: 50%;"><div style="width: {width:.0f}%; '
            f'height: 0.8em; background: {BAR_COLOUR};"></div></td></tr>')
    for c in (c for c in CLASSES if c.code in not_learnt):
        rows.append(f'<tr class="probability-row not-learnt"><th scope="row" style="text-align: left; font-weight: '
                    f'normal;">{html.escape(class_name(c))}</th><td class="probability-value" colspan="2">'
                    f"{html.escape(NOT_LEARNT)}</td></tr>")
    return (f'<table class="probability-table" style="width: 100%;"><caption style="text-align: left; font-weight: '
            f'bold;">{PROBABILITIES_CAPTION}</caption>{"".join(rows)}</table>'
            f'<p class="probability-caveat" style="font-size: 0.9em;">{html.escape(probabilities_caveat(not_learnt))}'
            "</p>")


def alt_texts(result: LesionResult, hotspot: str | None = None) -> tuple[str, str, str]:
    """The pictures' alt texts, saying what this answer drew: a lesion found, an area marked on a picture that is not
    assessable, or nothing found; the CAM's says where its map is hottest (``hotspot``: ``overlay.cam_hotspot``)."""
    if not result.lesion_found:
        overlay = ALT_NO_LESION
    elif result.assessable is False:
        overlay = f"{ALT_MARKED} ({percent(result.lesion_fraction)} of the image); the picture is not assessable"
    else:
        overlay = f"{ALT_OVERLAY} ({percent(result.lesion_fraction)} of the image)"
    if not result.diagnosis_given:  # no crop and no CAM are shown, and no class is named
        return overlay, ALT_CROP, ALT_CAM
    where = f"; the map is {hotspot}" if hotspot is not None else ""
    return overlay, ALT_CROP, f"{ALT_CAM}, {class_name(result.top_class)}{where}"


#: The characters Markdown gives a meaning (links, emphasis, code, HTML): a file's name is shown with each escaped,
#: so a picture named "[click me](https://...).jpg" is a name, not a live link in the status line.
_MARKDOWN_CHARS = "\\`*_{}[]()<>#!|~"
_MARKDOWN_SPECIAL = re.compile(f"([{re.escape(_MARKDOWN_CHARS)}])")
_MARKDOWN_JS = "/[" + "".join("\\" + c for c in _MARKDOWN_CHARS) + "]/g"  # the same characters, as a JS regex


def shown_name(path: str) -> str:
    """The name of the file at ``path`` as the page's Markdown shows it: every character Markdown reads escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", Path(path).name)


_FILE_NAME_JS = ("const name = file ? (file.orig_name || String(file.path || '').split('/').pop())"
                 f".replace({_MARKDOWN_JS}, '\\\\$&') : ''; "
                 "const key = file ? String(file.path || '') : '';")
LOADED_JS = (
    f"(file) => {{ {_FILE_NAME_JS} "
    f"const refused = document.querySelector({json.dumps(REFUSED_REGION)}); if (refused) {{ refused.replaceChildren(); }} "
    "if (document.activeElement === document.body) { const upload = document.querySelector('#upload'); "
    "if (upload) { upload.setAttribute('tabindex', '-1'); upload.focus(); } } "
    f"return ['', null, null, null, '', '', name ? {json.dumps(NEW_FILE)}.replace('{{name}}', name) : "
    f"{json.dumps(NO_FILE)}, '', key]; }}"
)
"""Handler of a new or cleared upload, run in the browser the moment the picture changes (a server round trip could
arrive after an answer and replace it): every output of the last analysis is emptied, so a result is never shown
beside a picture it is not about, and the page says the picture is loaded. Focus that Gradio dropped to the page's
body as it replaced the drop zone goes back to the upload (accessibility audit, L6). The crop and CAM boxes, emptied, are no
longer displayed (``HIDDEN_WHEN_EMPTY`` in PAGE_CSS): a script's outputs are values, it cannot set a visibility."""
ANALYSING_JS = (f"(file, status) => {{ {_FILE_NAME_JS} "
                f"return name ? {json.dumps(ANALYSING)}.replace('{{name}}', name) : status; }}")
"""Run in the browser the moment Analyze is pressed: the status line (a live region) says the picture is being
analysed, where it had gone on saying "press Analyze" until the answer came (accessibility audit, L7); with no picture
loaded it is left as it is, for the handler's own message."""
KEEP_IF_CURRENT_JS = (
    f"(file, ...shown) => {{ {_FILE_NAME_JS} "
    f"if (shown[shown.length - 1] !== key) {{ return ({LOADED_JS})(file); }} "
    f"({FOCUS_ANSWER_JS})(shown[0]); return shown; }}"
)
"""Run in the browser when an answer arrives: the answer about the picture now loaded stays, and focus moves to it
(``FOCUS_ANSWER_JS``); an answer about another picture (the picture was changed while it was being analysed) is
replaced by the 'loaded' message of the picture shown, and focus stays where the user put it. A picture is
known by where Gradio stored its upload, not by its name: two cameras' IMG_0001.jpg are two pictures, and Gradio
stores some names changed (``mole!.jpg``, ``CON.jpg``), so a name would both match the wrong picture and miss the
right one."""
UPLOAD_RETENTION_S = (600, 3600)
"""Gradio's ``delete_cache``: every 10 minutes the uploads over an hour old are deleted, and all of them when the
page stops; they are kept in a folder of the page's own (``uploads.private_upload_folder``), which a page that crashed
leaves until the next page starts."""


_FIRST_BYTES = re.compile(r" \(\d+ bytes, first bytes [0-9a-f ]*\)")


def plain_error(error: DermAssistClientError, path: str) -> str:
    """What a clinician reads when a picture could not be analysed: the reason in plain words, no request ids,
    tensor names or SDK advice (those go to the log)."""
    name = shown_name(path)
    if isinstance(error, ServerUnavailableError):
        return UNREACHABLE
    if isinstance(error, DeadlineExceededError):
        large = large_picture(path)
        return TOO_SLOW if large is None else TOO_SLOW_LARGE.format(name=name, size=large)
    if isinstance(error, RequestTooLargeError):
        size = _file_megabytes(path)
        return (f"{name}{f' ({size})' if size else ''} is too large to send to the service. Save a smaller copy (a "
                "JPEG of the picture) and try again.")
    if isinstance(error, InvalidImageError):
        if isinstance(error.__cause__, FileNotFoundError):  # the hourly sweep deleted the upload
            return GONE.format(name=name)
        if "is a DICOM file" in str(error):
            return (f"{name} is a DICOM file. This page takes pictures (JPEG, PNG, BMP or TIFF): export the image as "
                    "one from your viewer, or analyse DICOM files with the dermassist-client command.")
        if error.server_message:  # the service's own reason, without the step and tensor it came from
            return f"{name} cannot be analysed: {error.reason}"
        # refused here, before sending: the message names the file; the first bytes it quotes are for the log
        return _FIRST_BYTES.sub("", error.reason.replace(str(path), name))
    return f"{name} could not be analysed because of a fault in the service; try again, and tell the team if it goes on."


def _file_megabytes(path: str) -> str | None:
    """The size of the file at ``path`` in MB, for a message (None when it cannot be read)."""
    try:
        return f"{Path(path).stat().st_size / 1e6:.0f} MB"
    except OSError:
        return None


def large_picture(path: str) -> str | None:
    """How large the picture at ``path`` is (``48 megapixels``, ``25 MB``) when it is large enough to slow an answer
    down (``LARGE_PICTURE_PIXELS``, or ``LARGE_FILE_BYTES`` when its header cannot be read); None otherwise."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        width = height = 0
    if width * height >= LARGE_PICTURE_PIXELS:
        return f"{width * height / 1e6:.0f} megapixels"
    try:
        size = Path(path).stat().st_size
    except OSError:
        return None
    return f"{size / 1e6:.0f} MB" if size >= LARGE_FILE_BYTES else None


def answer_of(client: DermAssistClient, path: str | None, refer_threshold: float | None = None,
              not_learnt: Collection[str] = ()) -> PageOutputs:
    """``analyze_file``'s answer, or, for a fault nothing foresaw, a plain message (its traceback goes to the log): an
    exception ended Gradio's event without an answer, and the status line said "Analysing ..." for good (review 22,
    3)."""
    try:
        return analyze_file(client, path, refer_threshold, not_learnt)
    except Exception as e:  # noqa: BLE001 - any fault: the page answers, the log has its traceback, not the upload's name
        told = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        if path:
            told = told.replace(path, "<the upload>").replace(Path(path).name, "<the upload>")
        logger.error("the demo page could not answer an upload: an unexpected error\n%s", told)
        return _message(UNEXPECTED, path or "")


def analyze_file(client: DermAssistClient, path: str | None, refer_threshold: float | None = None,
                 not_learnt: Collection[str] = ()) -> PageOutputs:
    """Handler of the Analyze button: triage banner, overlay, crop, CAM, probabilities, status and model lines.

    An image the server cannot assess is an answer (a NOT ASSESSABLE banner with its note), not an error. Where no
    diagnosis is given (not assessable, or no lesion found) the page shows the banner, the note and the mask and box
    only: no probabilities, no class and no percentage, no crop and no CAM (the map of the top class).
    ``refer_threshold``: the served REFER threshold, when the page knows it (``dermassist demo`` does);
    ``not_learnt``: the class codes the served classifier has no training images of (no percentage is shown for them).
    """
    if not path:
        return _message(NO_FILE)
    try:
        result = client.analyze(path, with_crop=True)
    except DermAssistClientError as e:
        logger.info("analysis of an upload failed: %s", str(e).replace(path, "<the upload>"))  # no file name logged
        return _message(f"**Could not analyze:** {plain_error(e, path)}", path)
    overlay = overlay_of(path, result)
    name = f"Result for **{shown_name(path)}**." + ("" if overlay is not None else " " + NOT_DRAWN.format(
        name=shown_name(path)))
    if result.diagnosis_given:
        top = result.top_class
        status = (f"{name} Lesion found: {percent(result.lesion_fraction)} of the image, tinted red and outlined in its "
                  f"box. Most probable class: **{class_name(top)}**, {percent(result.probabilities[top.code])}.")
    elif result.assessable is False:
        found = ("No lesion found: the segmenter marked nothing." if not result.lesion_found
                 else MARKED.format(share=percent(result.lesion_fraction)))
        status = f"{NOT_RELIABLE}\n\n{name} {found}"
    else:
        status = f"{name} {NO_LESION} {NO_DIAGNOSIS}"
    model = (f"Answered by model `{result.model_name}` version `{result.model_version}` at `{client.config.url}`"
             + (f", release `{_code(result.model_release)}`, build `{_code(result.model_build)}`. The model card"
                if result.model_build
                else ". The served answer does not name its release: the model card")
             + f" `{MODEL_CARD}` gives the figures and limits of the release it describes ({MODEL_CARD_NAME}).")
    # no crop and no CAM (the map of the top class) where no diagnosis is given: only the banner, note, mask and box
    shown = result.diagnosis_given
    crop = np.asarray(result.crop) if shown and result.crop is not None else None
    cam = draw_cam(result) if shown else None
    hotspot = cam_hotspot(result.cam) if cam is not None and result.cam is not None else None
    return PageOutputs(banner_html(verdict_of_result(result), refer_threshold), overlay, crop, cam,
                       cam_legend_html(hotspot) if hotspot is not None else "",
                       probabilities_html(result, not_learnt), status, model, path, alt_texts(result, hotspot))


def _code(text: str | None) -> str:
    """``text`` fit to stand between Markdown backticks (a backtick the server sent would end the code span)."""
    return (text or "").replace("`", "'")


def overlay_of(path: str, result: LesionResult) -> Image.Image | None:
    """The picture at ``path`` with ``result``'s mask and box (its full-size page, as the SDK read it; at most
    ``OVERLAY_MAX_SIDE`` a side), or None when it cannot be drawn: the answer is shown all the same, never lost
    behind an error."""
    try:
        return draw_overlay_file(path, result, OVERLAY_MAX_SIDE)
    except (ResultError, OSError, ValueError, Image.DecompressionBombError) as e:
        logger.warning("the mask and box of an upload could not be drawn: %s",  # no file name logged
                       str(e).replace(path, "<the upload>"))
        return None


def build_demo(url: str, protocol: str = config_default("protocol"), timeout: float | None = None,
               retries: int = DEMO_RETRIES, refer_threshold: float | None = None, not_learnt: Collection[str] = (),
               analyses: Analyses | None = None, **options: Any) -> gr.Blocks:
    """The page, talking to the ensemble at ``url`` (``timeout`` None: ClientConfig's; ``options``: further
    ClientConfig fields, e.g. TLS). ``DEMO_RETRIES`` (one retry) by default, so a page whose server is down says so
    soon. ``refer_threshold``, when given, is the served REFER threshold the banner compares the score with;
    ``not_learnt``, the class codes the served classifier has no training images of (a ClientConfigError for an
    unknown code): the page shows no percentage for them and says they were never learnt. Told none, it claims none.
    ``analyses``: counts the analyses running, for a stop to let them finish (``Analyses.drain``). At most
    ANALYSES_AT_ONCE run at once, every user together (Gradio's default is one: eight users waited in turn).

    The examples sit under the introduction and the attribution at the foot of the page, so on a phone, where the
    columns stack, the answer comes straight after the Analyze button."""
    not_learnt = class_codes(not_learnt)
    analyses = Analyses() if analyses is None else analyses
    client = DermAssistClient(url, protocol, timeout=timeout, retries=retries, **options)
    examples = samples()
    private_upload_folder()  # before the page names its folder: this run's own, not the machine's shared one
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=UPLOAD_RETENTION_S) as page:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        gr.Markdown(intended_use(not_learnt), elem_id="intended-use")
        upload = gr.File(label="Image", type="filepath", elem_id="upload", render=False)
        gr.Examples(examples=[[str(s.path)] for s in examples], inputs=[upload],
                    example_labels=[s.label for s in examples],
                    label="Real examples (HAM10000), each named by its published diagnosis, which the model may not give",
                    elem_id="examples")
        with gr.Row():
            with gr.Column(scale=1):
                upload.render()
                button = gr.Button("Analyze", variant="primary", elem_id="analyze")
            with gr.Column(scale=2):
                banner = gr.HTML(elem_id="banner")
                status = gr.Markdown(elem_id="status")
                gr.HTML(elem_id=REFUSED_UPLOAD_ID)  # filled by the page's script alone (live_regions_js)
                # PNG, not Gradio's default lossy WebP: the crop shown is the crop the classifier saw, and a
                # downloaded picture can be analysed again (DermAssist takes no WebP)
                overlay = gr.Image(label="Mask and box", type="pil", elem_id="overlay", interactive=False,
                                   alt_text=ALT_OVERLAY, format="png", buttons=IMAGE_BUTTONS)
                with gr.Row():
                    crop = gr.Image(label="Crop the classifier saw (224x224)", elem_id="crop", interactive=False,
                                    alt_text=ALT_CROP, format="png", buttons=IMAGE_BUTTONS, visible=picture_visibility(None))
                    cam = gr.Image(label="Where it looked (CAM)", type="pil", elem_id="cam", interactive=False,
                                   alt_text=ALT_CAM, format="png", buttons=IMAGE_BUTTONS, visible=picture_visibility(None))
                cam_legend = gr.HTML(elem_id="cam-legend")
                probabilities = gr.HTML(elem_id="probabilities")
                model = gr.Markdown(elem_id="model")
                about = gr.Textbox(visible=False, elem_id="about")
        gr.Markdown(attribution_markdown(examples), elem_id="attribution")
        outputs = [banner, overlay, crop, cam, cam_legend, probabilities, status, model, about]
        button.click(None, inputs=[upload, status], outputs=[status], js=ANALYSING_JS)
        # always_last: Analyze pressed while an answer is pending analyses the picture then shown once that answer is in
        button.click(lambda path: page_values(analyses.run(
            lambda: answer_of(client, path, refer_threshold, not_learnt), path)), inputs=[upload],
                     outputs=outputs, trigger_mode="always_last", concurrency_limit=ANALYSES_AT_ONCE).then(
            None, inputs=[upload, *outputs], outputs=outputs, js=KEEP_IF_CURRENT_JS)
        upload.change(None, inputs=[upload], outputs=outputs, js=LOADED_JS)
        page.load(None, js=live_regions_js(upload_limit(options)))
    return page


def upload_limit(options: Mapping[str, Any]) -> int:
    """The largest picture the page takes (bytes): what one request to the service may carry (the page's client's
    ``max_message_bytes``, as ``ClientConfig`` defaults it). Gradio refuses a larger upload at once; without a limit a
    600 MiB upload was stored whole and held the page at 3.3 GB before the service refused it."""
    return int(options.get("max_message_bytes") or config_default("max_message_bytes"))


def launch_demo(url: str, protocol: str = config_default("protocol"), host: str = DEMO_HOST, port: int = DEMO_PORT,
                timeout: float | None = None, retries: int = DEMO_RETRIES, refer_threshold: float | None = None,
                not_learnt: Collection[str] = (), analyses: Analyses | None = None,
                **options: Any) -> tuple[gr.Blocks, str]:
    """Build and start the page (``build_demo``) without blocking; returns it and its local URL. The footer has no
    link to Gradio's API page: the page is for people, and programs call the ensemble (docs/sdk.md). No run history:
    Gradio would keep every analysis (the patient's picture and its answer) in the browser, and offer to save it to
    Hugging Face. No share link, whatever ``GRADIO_SHARE`` or a hosted notebook says: it would publish the page, and
    the patients' pictures uploaded to it, through a public relay."""
    problem = page_address_problem(host, port)
    if problem is not None:
        raise ClientConfigError(problem)
    page = build_demo(url, protocol, timeout=timeout, retries=retries, refer_threshold=refer_threshold,
                      not_learnt=not_learnt, analyses=analyses, **options)
    try:
        page.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, share=False,
                    show_error=False, ssr_mode=False, footer_links=["gradio"], css=PAGE_CSS,
                    run_history=False, max_file_size=upload_limit(options))
    except (OSError, OverflowError) as e:  # Gradio's words name its own variable and launch() argument
        page.close()
        raise ClientConfigError(f"cannot serve the demo page on {host}:{port} (taken since it was checked?); expected "
                                "a free port on an address of this machine: stop what holds it or pass another "
                                "--port") from e
    local_url = f"http://{host}:{page.server_port}/"
    logger.info("demo page at %s (server %s over %s)", local_url, url, protocol)
    return page, local_url
