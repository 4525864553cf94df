"""The demo page's handler and texts without a server: what an answer shows (and withholds), its alt texts, the
model card it names, the classes it marks as never learnt (those it is told of, and no others) and the Analyze
button's contrast (WCAG, computed here by hand). That the shipped release's export tells it SCC is checked in
tests/dermassist/commands/test_demo_served_facts.py."""
from __future__ import annotations

import html
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from dermassist_client import (
    CLASSES,
    demo,  # gradio: the [demo] extra, which `make test` installs
)
from dermassist_client.errors import DeadlineExceededError
from dermassist_client.overlay import cam_hotspot
from dermassist_client.result import build_result
from tests.conftest import PROJECT_ROOT

RELEASE = PROJECT_ROOT / "training" / "release" / "release.json"
BLURRED = "Picture too blurred to assess: retake it in focus."


def _result(assessable: bool | None = True, lesion_fraction: float = 0.4, refer: bool = True):
    probs = np.array([[0.02, 0.03, 0.004, 0.8, 0.1, 0.0455, 0.0005, 0.0]], np.float32)
    mask = np.zeros((1, 256, 256), np.uint8)
    if lesion_fraction:
        mask[0, 60:200, 60:200] = 255
    outputs = {"PROBABILITIES": probs, "MASK": mask,
               "BBOX": np.array([[100, 80, 500, 380] if lesion_fraction else [0, 0, 600, 450]], np.int32),
               "LESION_FRACTION": np.array([[lesion_fraction]], np.float32),
               "CROP": np.full((1, 224, 224, 3), 120, np.uint8), "CAM": np.full((1, 224, 224), 200, np.uint8),
               "REFER": np.array([[refer]]), "REFER_SCORE": np.array([[0.8505]], np.float32),
               "ASSESSABLE": np.array([[assessable]]), "OOD_SCORE": np.array([[0.5]], np.float32),
               "NOTE": np.array([[(BLURRED if assessable is False else "").encode()]], dtype=object)}
    return build_result(outputs, 0, (600, 450), "dermassist", "1")


class _Client:
    """Stands in for DermAssistClient: answers every picture with one result."""

    def __init__(self, result):
        self.result = result
        self.config = SimpleNamespace(url="127.0.0.1:8001")

    def analyze(self, path, with_crop=False):
        return self.result


@pytest.fixture()
def picture(tmp_path) -> str:
    path = tmp_path / "lesion.png"
    Image.new("RGB", (600, 450), (200, 150, 130)).save(path)
    return str(path)


def _class_names(text: str) -> list[str]:
    return [c.name for c in CLASSES if c.name in text or f"({c.code}" in text]


# --- what an answer shows ------------------------------------------------------------------------------

def _rows(probabilities: str) -> list[tuple[str, str]]:
    return [tuple(map(html.unescape, row)) for row in re.findall(
        r'<tr class="probability-row[^"]*"><th[^>]*>([^<]*)</th><td[^>]*>([^<]*)</td>', probabilities)]


def test_an_assessable_answer_shows_whole_percentages_its_class_and_the_caveat(picture):
    result = _result()
    shown = demo.analyze_file(_Client(result), picture, not_learnt=("SCC",))
    rows = _rows(shown.probabilities)
    assert rows == [("Melanoma (MEL)", "80%"), ("Nevus (NV)", "10%"), ("Pigmented benign keratosis (BKL)", "5%"),
                    ("Basal cell carcinoma (BCC)", "3%"), ("Actinic keratosis (AK)", "2%"),
                    ("Dermatofibroma (DF)", "<1%"), ("Vascular lesion (VASC)", "<1%"),
                    ("Squamous cell carcinoma (SCC)", "not learnt: no training images")]  # no 0% for SCC
    assert not re.search(r"\d\.\d%", shown.probabilities + shown.status)  # whole percentages, no 0.1% precision
    assert "calibrated on its own validation images" in shown.probabilities
    assert "over-confident on images from other clinics" in shown.probabilities
    assert "never learnt squamous cell carcinoma: do not read the top class" in shown.probabilities
    assert demo.MODEL_CARD_NAME in shown.probabilities and demo.MODEL_CARD in shown.probabilities
    assert "Most probable class: **Melanoma (MEL)**, 80%." in shown.status and "Lesion found: 40%" in shown.status
    assert shown.crop is not None and shown.cam is not None
    assert shown.cam_legend == demo.cam_legend_html(cam_hotspot(result.cam)) and demo.CAM_LEGEND_HTML in shown.cam_legend
    assert "version `1`" in shown.model and demo.MODEL_CARD in shown.model
    assert shown.alt_texts[0].startswith(demo.ALT_OVERLAY) and "40% of the image" in shown.alt_texts[0]
    assert f"Melanoma (MEL); the map is {cam_hotspot(result.cam)}" in shown.alt_texts[2]  # where it is hottest, in words


@pytest.mark.parametrize("assessable, lesion_fraction", [(False, 0.4), (False, 0.0), (True, 0.0)])
def test_an_answer_without_a_diagnosis_shows_no_class_no_percentage_and_no_chart(picture, assessable, lesion_fraction):
    """Not assessable (a cat, a blurred picture), or no lesion found: the banner, the note and the mask and box only."""
    result = _result(assessable, lesion_fraction)
    assert not result.diagnosis_given
    shown = demo.analyze_file(_Client(result), picture)
    assert shown.probabilities == "" and shown.crop is None and shown.cam is None and shown.cam_legend == ""
    assert shown.overlay is not None and shown.overlay.size == (600, 450)
    text = shown.status + " ".join(shown.alt_texts)
    assert _class_names(text) == [], text  # no class named, not even as 'the highest'
    assert "%" not in shown.status.replace(f"marked ({round(100 * lesion_fraction)}% of the image)", "")
    assert ">REFER score" not in shown.banner
    if assessable is False:
        assert shown.status.startswith(demo.NOT_RELIABLE) and "NOT ASSESSABLE - REFER" in shown.banner
        assert BLURRED in shown.banner
    else:
        assert "No lesion found" in shown.status and demo.NO_DIAGNOSIS in shown.status
    if not lesion_fraction:
        assert shown.alt_texts[0] == demo.ALT_NO_LESION and "Lesion found" not in shown.status


def test_the_page_values_carry_each_pictures_alt_text(picture):
    values = demo.page_values(demo.analyze_file(_Client(_result(False, 0.0)), picture))
    assert len(values) == 9
    assert values[1].alt_text == demo.ALT_NO_LESION and values[2].value is None


@pytest.mark.parametrize("assessable, lesion_fraction", [(False, 0.4), (False, 0.0), (True, 0.0)])
def test_the_crop_and_cam_boxes_are_hidden_without_a_diagnosis_and_shown_with_one(picture, assessable, lesion_fraction):
    """No empty crop and CAM boxes beside an answer that gives no diagnosis; the next answer with one shows them again
    (a hidden box is kept in the page, out of the layout and of what a screen reader reads)."""
    empty = demo.page_values(demo.analyze_file(_Client(_result(assessable, lesion_fraction)), picture))
    assert [box.visible for box in empty[1:4]] == [True, "hidden", "hidden"]
    assert (empty[2].value, empty[3].value) == (None, None)
    shown = demo.page_values(demo.analyze_file(_Client(_result()), picture))
    assert [box.visible for box in shown[1:4]] == [True, True, True]
    assert shown[2].value is not None and shown[3].value is not None
    assert "Melanoma (MEL); the map is hottest in the middle" in shown[3].alt_text and shown[2].alt_text == demo.ALT_CROP


def test_a_message_without_an_answer_hides_the_crop_and_cam_boxes_too(picture):
    for outputs in (demo.analyze_file(_Client(_result()), None), demo._message("**Could not analyze:** x", picture)):
        values = demo.page_values(outputs)
        assert [box.visible for box in values[1:4]] == [True, "hidden", "hidden"], outputs.status
        assert values[0] == "" and values[5] == ""  # no banner, no probabilities


def test_the_page_as_first_loaded_hides_the_crop_and_cam_boxes_and_keeps_the_overlay():
    """Before any answer there is no picture for the crop and CAM boxes: they start hidden (the overlay box stays, it
    is where the user's picture's mask appears). No server is needed to build the page."""
    page = demo.build_demo("127.0.0.1:1", retries=0, timeout=1)
    boxes = {block.elem_id: block.visible for block in page.blocks.values()
             if getattr(block, "elem_id", None) in ("overlay", "crop", "cam")}
    assert boxes == {"overlay": True, "crop": "hidden", "cam": "hidden"}


def test_the_page_css_hides_the_crop_cam_and_legend_boxes_while_empty_and_never_the_overlay():
    """Emptied in the browser (a new or cleared upload: LOADED_JS), the boxes are hidden by the page's CSS, since a
    script cannot change a component's visibility."""
    rules = {selectors.strip(): body for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", demo.PAGE_CSS)}
    hidden = [s.strip() for s in demo.HIDDEN_WHEN_EMPTY.split(",")]
    assert "display: none !important" in rules[demo.HIDDEN_WHEN_EMPTY]
    assert hidden == ["#crop:not(:has(img))", "#cam:not(:has(img))", "#cam-legend:not(:has(.cam-legend-text))"]
    assert 'class="cam-legend-text"' in demo.CAM_LEGEND_HTML  # the legend shown with an answer is not hidden
    assert not [s for s in rules if "#overlay" in s and "display: none" in rules[s]]


# --- messages ------------------------------------------------------------------------------------------

def test_a_slow_answer_names_the_picture_size_only_when_the_picture_is_large(tmp_path, picture):
    slow = DeadlineExceededError("deadline exceeded")
    assert demo.plain_error(slow, picture) == demo.TOO_SLOW and "large" not in demo.TOO_SLOW
    big = tmp_path / "big.png"
    Image.new("1", (5000, 4500)).save(big)  # 22.5 megapixels in a small file
    said = demo.plain_error(slow, str(big))
    assert said.startswith("The analysis service took too long") and "big.png is a large picture (22 megapixels)" in said


# --- the classes never learnt: those the page is told of, and no others ----------------------------------

def test_a_page_told_of_no_untrained_class_shows_every_percentage_and_claims_none(picture):
    """A model version trained on every class (``dermassist models --synthetic``), or one whose training counts are
    not known: no row without its percentage, no 'never learnt' in the caveat nor in the intended use."""
    shown = demo.analyze_file(_Client(_result()), picture)
    assert _rows(shown.probabilities) == [
        ("Melanoma (MEL)", "80%"), ("Nevus (NV)", "10%"), ("Pigmented benign keratosis (BKL)", "5%"),
        ("Basal cell carcinoma (BCC)", "3%"), ("Actinic keratosis (AK)", "2%"), ("Dermatofibroma (DF)", "<1%"),
        ("Squamous cell carcinoma (SCC)", "<1%"), ("Vascular lesion (VASC)", "<1%")]
    assert "not-learnt" not in shown.probabilities and demo.NOT_LEARNT not in shown.probabilities
    caveat = html.unescape(shown.probabilities.split("</table>")[1])
    assert "never learnt" not in caveat and "squamous" not in caveat
    assert "over-confident on images from other clinics. See the model card" in caveat
    assert "never learnt" not in demo.intended_use(()) and "{" not in demo.intended_use(())


def test_each_class_the_page_is_told_of_loses_its_percentage_and_is_named_in_the_caveat_and_intended_use(picture):
    shown = demo.analyze_file(_Client(_result()), picture, not_learnt=("SCC", "AK"))
    rows = _rows(shown.probabilities)
    assert rows[-2:] == [("Actinic keratosis (AK)", demo.NOT_LEARNT), ("Squamous cell carcinoma (SCC)", demo.NOT_LEARNT)]
    assert all(value.endswith("%") for _, value in rows[:-2]) and rows[0] == ("Melanoma (MEL)", "80%")
    assert ("never learnt actinic keratosis or squamous cell carcinoma: do not read the top class for a suspected "
            "actinic keratosis or keratinocyte cancer") in html.unescape(shown.probabilities)
    # the model card's advice for SCC, which the model calls one of the classes it learnt: any keratinocyte cancer
    assert ("never learnt squamous cell carcinoma: do not read the top class for a suspected keratinocyte cancer"
            in html.unescape(demo.probabilities_caveat(("SCC",))))
    assert "It never learnt squamous cell carcinoma (no training images)." in demo.intended_use(("SCC",))


def test_the_page_is_built_with_the_intended_use_it_is_told_and_refuses_an_unknown_class_code():
    from dermassist_client.errors import ClientConfigError

    def intended(page) -> str:
        (text,) = [b.value for b in page.blocks.values() if getattr(b, "elem_id", None) == "intended-use"]
        return text

    assert "never learnt squamous cell carcinoma" in intended(demo.build_demo("127.0.0.1:1", not_learnt=["scc"]))
    assert "never learnt" not in intended(demo.build_demo("127.0.0.1:1"))
    with pytest.raises(ClientConfigError, match=r"not_learnt: 'XYZ' is not a class code; expected one of AK, BCC, "
                                                r"DF, MEL, NV, BKL, SCC, VASC: pass those codes only"):
        demo.build_demo("127.0.0.1:1", not_learnt=("SCC", "XYZ"))


# --- constants checked against their sources ---------------------------------------------------------


def test_the_model_card_named_on_the_page_is_the_release_s():
    release = json.loads(RELEASE.read_text())
    assert demo.MODEL_CARD_NAME == release["name"]
    card = PROJECT_ROOT / demo.MODEL_CARD
    assert card.read_text().splitlines()[0].startswith(f"# DermAssist model card: {demo.MODEL_CARD_NAME} ")
    for fragment in ("research and demonstration only, not for diagnosis", "darker skin is not known",
                     "CC BY-NC 4.0", "HAM10000", "PH2", demo.MODEL_CARD):
        assert fragment in demo.intended_use(), fragment


# --- the Analyze button's contrast ----------------------------------------------------------------------

def _luminance(colour: str) -> float:
    """WCAG 2 relative luminance of #rrggbb."""
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours, 1 to 21."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_contrast_formula_matches_known_pairs():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#ffffff", "#ea580c") == pytest.approx(3.56, abs=0.01)  # the default orange the audit measured
    assert contrast("#ffffff", "#f97316") == pytest.approx(2.80, abs=0.01)  # its hover and focus state


def test_the_footer_links_meet_aa_contrast_in_light_and_dark_mode():
    rules = {selectors.strip(): body for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", demo.PAGE_CSS)}
    light = re.search(r"color: (#[0-9a-f]{6})", rules["footer a, footer button"]).group(1)
    dark = re.search(r"color: (#[0-9a-f]{6})", rules[".dark footer a, .dark footer button"]).group(1)
    assert contrast(light, "#ffffff") >= 4.5 and contrast(dark, "#0b0f19") >= 4.5  # Gradio's page backgrounds
    upload_light = re.search(r"color: (#[0-9a-f]{6})", rules["#upload .or"]).group(1)
    upload_dark = re.search(r"color: (#[0-9a-f]{6})", rules[".dark #upload .or"]).group(1)
    assert contrast(upload_light, "#ffffff") >= 4.5 and contrast(upload_dark, "#0b0f19") >= 4.5  # Gradio's: 1.9:1


def test_the_analyze_button_meets_aa_contrast_in_every_state():
    rules = dict(re.findall(r"([^{}]+)\{([^}]*)\}", demo.PAGE_CSS))
    states = {}
    for selectors, body in rules.items():
        if "#analyze" not in selectors:
            continue
        background = re.search(r"background: (#[0-9a-f]{6})", body).group(1)
        text = re.search(r"(?<![-\w])color: (#[0-9a-f]{6})", body).group(1)
        for selector in selectors.split(","):
            states[selector.strip()] = (text, background)
    assert set(states) == {"#analyze", "#analyze:hover", "#analyze:focus", "#analyze:focus-visible", "#analyze:active"}
    for selector, (text, background) in states.items():
        assert contrast(text, background) >= 4.5, (selector, text, background, contrast(text, background))


def test_a_tiff_whose_preview_page_comes_first_gets_its_answer_and_overlay(tmp_path):
    """The page drew on the TIFF's first page, a 150x112 preview: drawing raised, every box showed 'Error', and the
    REFER the service answered (and audited as delivered) was never seen."""
    import tifffile

    rgb = np.full((450, 600, 3), 180, np.uint8)
    path = tmp_path / "preview_first.tif"
    tifffile.imwrite(path, rgb[::4, ::4], photometric="rgb", subfiletype=1)
    tifffile.imwrite(path, rgb, photometric="rgb", subfiletype=0, append=True)
    out = demo.analyze_file(_Client(_result()), str(path))
    assert out.overlay is not None and out.overlay.size == (600, 450)
    assert "REFER" in out.banner and "could not be drawn" not in out.status


def test_an_answer_whose_picture_cannot_be_drawn_on_is_shown_all_the_same(picture):
    """Any fault after the answer (here a result of another frame) cost the whole answer behind 'Error' badges."""
    from dataclasses import replace

    out = demo.analyze_file(_Client(replace(_result(), original_size=(640, 480))), picture)
    assert out.overlay is None and "REFER" in out.banner and "80%" in out.probabilities
    assert "The mask and box could not be drawn on lesion.png" in out.status and "the answer above stands" in out.status


def test_a_large_picture_is_drawn_at_the_pages_size_with_its_box_in_place(tmp_path):
    """A 48-megapixel picture was drawn and sent at full size: 9 s, a 16.8 MB PNG and 3.4 GB while every other
    analysis waited. Here 6000x4500 (27 megapixels) is drawn 2048 pixels wide, its box scaled with it."""
    from dataclasses import replace

    path = tmp_path / "large.jpg"
    Image.new("RGB", (6000, 4500), (200, 150, 130)).save(path, quality=80)
    result = replace(_result(), original_size=(6000, 4500),
                     bbox=type(_result().bbox)(1000, 800, 5000, 3800))
    out = demo.analyze_file(_Client(result), str(path))
    assert out.overlay.size == (demo.OVERLAY_MAX_SIDE, 1536)  # 4500 x 2048 / 6000
    pixels = np.asarray(out.overlay)
    scale = demo.OVERLAY_MAX_SIDE / 6000
    x0, y0 = round(1000 * scale), round(800 * scale)
    assert tuple(pixels[y0 + 100, x0]) == (0, 0, 0)  # the box's left side (black outside white), where the scaled box is
    assert tuple(pixels[10, 10]) != (0, 0, 0)


def test_drawing_an_overlay_small_leaves_the_callers_picture_as_it_was(tmp_path):
    """draw_overlay(image, result, max_side) decoded the caller's JPEG at a reduced scale: drawn again at full size,
    the same image object no longer fit its result (a review's finding)."""
    from dataclasses import replace

    from dermassist_client.overlay import draw_overlay

    path = tmp_path / "large.jpg"
    Image.new("RGB", (4000, 3000), (200, 150, 130)).save(path, quality=80)
    result = replace(_result(), original_size=(4000, 3000))
    with Image.open(path) as image:
        assert draw_overlay(image, result, 1000).size == (1000, 750)
        assert image.size == (4000, 3000) and draw_overlay(image, result).size == (4000, 3000)


def test_the_release_and_build_the_answer_names_are_shown_as_code_whatever_they_hold(picture):
    from dataclasses import replace

    named = replace(_result(), model_release="site `build` 7", model_build="sha256:00112233aabbccdd")
    out = demo.analyze_file(_Client(named), picture)
    assert "release `site 'build' 7`, build `sha256:00112233aabbccdd`. The model card" in out.model
    bare = demo.analyze_file(_Client(_result()), picture)
    assert "The served answer does not name its release" in bare.model


def test_a_phone_jpeg_with_a_second_picture_is_decoded_small_too(tmp_path, monkeypatch):
    """Pillow opens a JPEG that carries a second picture (a phone's MPO) as 'MPO': its large picture was decoded at
    full size (1.12 s instead of 0.10 s for 8000x6000)."""
    from dataclasses import replace

    from dermassist_client.overlay import draw_overlay_file

    path = tmp_path / "phone.jpg"
    first, second = Image.new("RGB", (4000, 3000), (200, 150, 130)), Image.new("RGB", (400, 300), (90, 90, 90))
    first.save(path, "MPO", save_all=True, append_images=[second])
    from PIL import JpegImagePlugin

    drafts = []
    original = JpegImagePlugin.JpegImageFile.draft  # an MPO's reader is a JPEG's
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", lambda self, mode, size: drafts.append((self.format, size))
                        or original(self, mode, size))
    out = draw_overlay_file(path, replace(_result(), original_size=(4000, 3000)), 1000)
    assert out.size == (1000, 750) and drafts == [("MPO", (1000, 750))]


@pytest.mark.parametrize(("argv", "message"), [
    (["--port", "70000"], "demo --port must be a TCP port from 1 to 65535, got 70000; pass another --port"),
    (["--host", "nosuchhost.invalid"], "demo --host nosuchhost.invalid does not resolve"),
])
def test_the_client_demo_refuses_a_page_address_it_cannot_serve_in_its_own_flags(argv, message, capsys) -> None:
    """Gradio's OverflowError and its "set GRADIO_SERVER_PORT" advice reached the user as tracebacks."""
    from dermassist_client.cli import main

    assert main(["demo", "--url", "127.0.0.1:1", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "GRADIO" not in err


def test_the_client_demo_names_a_taken_page_port(capsys) -> None:
    import socket

    from dermassist_client.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["demo", "--url", "127.0.0.1:1", "--port", str(port)]) == 2
    assert f"cannot serve the demo page on 127.0.0.1:{port}: Address already in use" in capsys.readouterr().err


# --- several users, and a stop (concurrency audit 7 and 8) ----------------------------------------------------------

def test_the_analyze_button_runs_up_to_a_few_analyses_at_once():
    """Gradio's default of one had every user wait for every other's analysis."""
    page = demo.build_demo("127.0.0.1:1", retries=0, timeout=1)
    limits = [fn.concurrency_limit for fn in page.fns.values() if getattr(fn, "name", None) == "<lambda>"]
    assert limits == [demo.ANALYSES_AT_ONCE] and demo.ANALYSES_AT_ONCE > 1


def test_a_stop_lets_the_running_analyses_finish_and_answers_later_ones_that_it_stops(monkeypatch, picture):
    import threading
    import time

    monkeypatch.setattr(demo, "DELIVERY_S", 0.0)
    analyses = demo.Analyses()
    started, finish = threading.Event(), threading.Event()
    answers: list = []

    def slow() -> demo.PageOutputs:
        started.set()
        finish.wait(10)
        return demo._message("answered", picture)

    running = threading.Thread(target=lambda: answers.append(analyses.run(slow, picture)))
    running.start()
    assert started.wait(5)
    threading.Timer(0.3, finish.set).start()
    start = time.monotonic()
    assert analyses.drain(5.0) == 0  # waited for it
    assert 0.2 < time.monotonic() - start < 3.0
    running.join(5)
    assert answers[0].status == "answered"
    later = analyses.run(lambda: demo._message("never run", picture), picture)
    assert later.status == demo.STOPPING and later.about == picture


def test_a_drain_cuts_what_does_not_finish_in_time(monkeypatch, picture):
    import threading

    monkeypatch.setattr(demo, "DELIVERY_S", 0.0)
    analyses = demo.Analyses()
    started, finish = threading.Event(), threading.Event()
    running = threading.Thread(target=analyses.run, args=(lambda: (started.set(), finish.wait(10))[0], picture))
    running.start()
    assert started.wait(5)
    assert analyses.drain(0.2) == 1
    finish.set()
    running.join(5)


def test_a_fault_nothing_foresaw_is_answered_plainly_and_logged_with_its_traceback(picture, caplog):
    """An exception from the handler had ended Gradio's event without an answer: the status line said "Analysing ..."
    for good (review 22, 3)."""
    import logging

    from dermassist_client import demo

    class Broken(_Client):
        def analyze(self, path, with_crop=False):
            raise RuntimeError(f"a bug reading {path}")

    with caplog.at_level(logging.ERROR, logger="dermassist_client.demo"):
        outputs = demo.answer_of(Broken(None), picture)
    assert outputs.status == demo.UNEXPECTED and outputs.banner == "" and outputs.overlay is None
    assert "Traceback" in caplog.text and "RuntimeError: a bug reading <the upload>" in caplog.text
    assert "lesion.png" not in caplog.text  # no upload's name in the log
    assert demo.answer_of(_Client(_result()), picture).status == demo.analyze_file(_Client(_result()), picture).status
