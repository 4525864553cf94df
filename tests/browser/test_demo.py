"""The Gradio demo page: its handler, a real headless Chromium driving it, and ``dermassist demo``."""
from __future__ import annotations

import contextlib
import html
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dermassist.base.server import free_ports
from dermassist_client import CLASSES
from dermassist_client.samples import LICENCE, samples
from tests.conftest import PROJECT_ROOT
from tests.support.images import encode, synthetic_lesion
from tests.support.polling import wait_until

MELANOMA = next(s for s in samples() if s.diagnosis == "melanoma")
HAM = MELANOMA.path
SCREENSHOT = PROJECT_ROOT / "reports" / "demo_screenshot.png"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def read_line_with(process: subprocess.Popen, marker: str, timeout_s: float, kept: list[str] | None = None) -> str:
    """The first stdout line containing ``marker`` (the process's output is drained meanwhile, every line into
    ``kept`` when given)."""
    found: list[str] = []
    event = threading.Event()

    def pump() -> None:
        for line in process.stdout:
            if kept is not None:
                kept.append(line)
            if marker in line and not found:
                found.append(line)
                event.set()
        event.set()

    threading.Thread(target=pump, daemon=True).start()
    if not event.wait(timeout_s) or not found:
        raise AssertionError(f"no line with {marker!r} within {timeout_s} s (exit code {process.poll()})")
    return found[0]


def stop(process: subprocess.Popen, timeout_s: float = 30) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=timeout_s)


@pytest.fixture()
def plain_png(tmp_path) -> Path:
    """A uniform skin-coloured image: the segmenter finds no lesion in it."""
    path = tmp_path / "plain_skin.png"
    Image.new("RGB", (320, 240), (230, 190, 170)).save(path)
    return path


@pytest.fixture()
def not_an_image(tmp_path) -> Path:
    path = tmp_path / "notes.jpg"
    path.write_text("this is a text file, not a photo")
    return path


@pytest.mark.integration
def test_handler_shows_what_the_server_said_and_plain_messages(triton_server, plain_png, not_an_image):
    from dermassist_client import DermAssistClient
    from dermassist_client.demo import NO_FILE, NOT_RELIABLE, UNREACHABLE, analyze_file, cam_legend_html, probabilities_html
    from dermassist_client.overlay import blend_cam, cam_hotspot
    from dermassist_client.verdict import banner_html, headline, verdict_of_result

    client = DermAssistClient(triton_server.config.grpc_address)
    direct = client.analyze(HAM, with_crop=True)
    shown = analyze_file(client, str(HAM))
    assert shown.banner == banner_html(verdict_of_result(direct))
    assert f">{headline(verdict_of_result(direct))}<" in shown.banner
    assert (f"Refer score <strong style=\"color: #1f1f1f;\">{100 * direct.refer_score:.1f}%" in shown.banner) == \
        (direct.assessable is not False)  # no score is shown for a picture that is not assessable
    assert html.escape(direct.note) in shown.banner
    assert shown.overlay.size == (600, 450) and "version `1`" in shown.model
    assert shown.probabilities == probabilities_html(direct)
    assert (NOT_RELIABLE in shown.status) == (direct.assessable is False)  # said exactly when not assessable
    if direct.diagnosis_given:
        assert shown.crop.shape == (224, 224, 3) and shown.cam_legend == cam_legend_html(cam_hotspot(direct.cam))
        assert np.array_equal(np.asarray(shown.cam), blend_cam(direct.crop, direct.cam))
        assert f"Result for **{HAM.name}**. Lesion found" in shown.status
        assert f"Most probable class: **{direct.top_class.name} ({direct.top_class.code})**" in shown.status
    else:  # the tiny test models assess nothing: no class, no percentage, no crop and no CAM, only the mask and box
        assert shown.probabilities == "" and (shown.crop, shown.cam, shown.cam_legend) == (None, None, "")
        assert not any(c.name in shown.status or f"({c.code}" in shown.status for c in CLASSES), shown.status

    compared = analyze_file(client, str(HAM), refer_threshold=0.5).banner  # the page knows the served threshold
    assert compared == banner_html(verdict_of_result(direct), 0.5)
    assert ("the referral threshold, 50.0%" in compared) == (direct.assessable is not False)

    plain = analyze_file(client, str(plain_png))
    plain_direct = client.analyze(str(plain_png))
    assert "No lesion found" in plain.status and plain.banner == banner_html(verdict_of_result(plain_direct))
    assert "No lesion found" in plain_direct.note and plain.cam is None and plain.probabilities == ""

    refused = analyze_file(client, str(not_an_image))
    assert refused.banner == "" and (refused.overlay, refused.crop, refused.cam) == (None,) * 3
    assert refused.probabilities == refused.cam_legend == ""
    assert refused.status.startswith("**Could not analyze:** notes.jpg is not an image")
    assert str(not_an_image.parent) not in refused.status and "Traceback" not in refused.status
    assert analyze_file(client, None).status == NO_FILE
    (dead,) = free_ports(1)
    unreachable = analyze_file(DermAssistClient(f"127.0.0.1:{dead}", retries=0), str(HAM)).status
    assert unreachable == f"**Could not analyze:** {UNREACHABLE}"  # plain words; the address and gRPC text go to the log

    grey = plain_png.parent / "grey.png"  # answered, not assessable: the page says the rest is not a diagnosis
    Image.open(HAM).convert("L").convert("RGB").save(grey)
    greyed = analyze_file(client, str(grey))
    assert ">NOT ASSESSABLE - REFER<" in greyed.banner and greyed.status.startswith(NOT_RELIABLE)


STATUS_REGION = "#status [data-testid=markdown]"
BANNER_REGION = "#banner .html-container"
FOCUSED = ("() => { const e = document.activeElement; "
           "return e ? [e.tagName, e.id, e.className, e.closest('[id]') ? e.closest('[id]').id : ''] : null; }")
"""What has focus, for an assertion's message."""


def expect_focus_on(page, region: str) -> None:
    """Focus lands on ``region`` (the banner's or the status line's container) once the answer is shown."""
    from playwright.sync_api import expect

    expect(page.locator(region)).to_be_focused(timeout=10_000)
    assert page.evaluate(f"() => document.activeElement === document.querySelector({region!r})"), page.evaluate(FOCUSED)


def expect_result_shown(page, result, not_learnt: tuple[str, ...] = ()) -> None:
    """The page shows ``result`` (the SDK's answer about the picture analysed) as it should: the probabilities, the
    class, the crop and the CAM exactly where a diagnosis is given, with no percentage for a class ``not_learnt`` (what
    the page was told) names and one for every other; otherwise none of them, no class named anywhere and no
    percentage beyond the lesion's share of the picture."""
    from playwright.sync_api import expect

    from dermassist_client.demo import MODEL_CARD, MODEL_CARD_NAME, NOT_LEARNT

    rows = page.locator("#probabilities .probability-row")
    expect(page.locator("#overlay img")).to_be_visible(timeout=30_000)
    alt = page.locator("#overlay img").get_attribute("alt")
    assert alt and ("no lesion was found" in alt) == (not result.lesion_found), alt
    assert page.locator("#overlay img").get_attribute("src").endswith(".png")  # not lossy WebP
    expect(page.locator("#model")).to_contain_text("dermassist")
    expect(page.locator("#model")).to_contain_text(MODEL_CARD)
    if result.diagnosis_given:
        expect(rows).to_have_count(len(CLASSES))
        top = f"{result.top_class.name} ({result.top_class.code})"
        expect(rows.first).to_contain_text(top)
        expect(page.locator("#status")).to_contain_text(f"Most probable class: {top}")
        expect(page.locator("#status")).to_contain_text("Lesion found")
        for c in CLASSES:
            row = rows.filter(has_text=f"({c.code})")
            expect(row).to_have_count(1)
            if c.code in not_learnt:
                expect(row).to_contain_text(NOT_LEARNT)
                expect(row).not_to_contain_text("%")
            else:
                expect(row).to_contain_text(re.compile(r"(\d{1,2}|<1|>99)%$"))  # whole percentages
        expect(page.locator("#probabilities .probability-caveat")).to_contain_text(MODEL_CARD_NAME)
        for image in ("#crop img", "#cam img"):
            expect(page.locator(image)).to_be_visible()
            assert page.locator(image).get_attribute("src").endswith(".png"), image
            assert page.locator(image).get_attribute("alt"), image
        assert page.locator("#cam img").evaluate("img => img.naturalWidth") == 224
        expect(page.locator("#cam-legend")).to_contain_text("Class activation map")
        expect(page.locator("#cam-legend")).to_contain_text("In this answer the map is hottest")  # in words too
        assert "hottest" in page.locator("#cam img").get_attribute("alt")
        expect(page.locator("#cam-legend")).to_be_visible()
    else:
        expect(page.locator("#status")).to_contain_text("Result for", timeout=30_000)
        expect(rows).to_have_count(0)
        expect(page.locator("#probabilities table")).to_have_count(0)
        expect(page.locator("#crop img")).to_have_count(0)
        expect(page.locator("#cam img")).to_have_count(0)
        expect(page.locator("#crop")).to_be_hidden()  # no empty boxes: nothing is drawn in them without a diagnosis
        expect(page.locator("#cam")).to_be_hidden()
        expect(page.locator("#cam-legend")).to_be_hidden()  # nor an empty legend
        shown = " ".join(page.locator(where).inner_text() for where in ("#status", "#probabilities", "#cam-legend"))
        shown += " " + alt
        assert not [c.code for c in CLASSES if c.name in shown or f"({c.code}" in shown], shown
        assert "%" not in re.sub(r"\((<|>)?\d+% of the image\)", "", shown), shown


def rgb(css_colour: str) -> str:
    """``rgb(194, 65, 12)`` (a computed style) as ``#c2410c``."""
    red, green, blue = (int(v) for v in re.findall(r"\d+", css_colour)[:3])
    return f"#{red:02x}{green:02x}{blue:02x}"


def check_page_accessibility(page) -> None:
    """After an answer: the status line and the banner are polite live regions, still (they survive the update);
    the pictures have no Share button; the Analyze button's text is at least 4.5:1 on it, at rest, hovered and
    focused, and the footer's links on the page (colours as the browser computes them, ratio by WCAG's formula); the
    pictures' labels and toolbars sit above them."""
    from playwright.sync_api import expect

    from tests.client.test_demo_page import contrast

    for region in (STATUS_REGION, BANNER_REGION):
        expect(page.locator(region)).to_have_attribute("aria-live", "polite")
        expect(page.locator(region)).to_have_attribute("role", "status")
        expect(page.locator(region)).to_have_attribute("tabindex", "-1")  # focusable by the page, not a Tab stop
    for image in ("#overlay", "#crop", "#cam"):
        labels = page.locator(f"{image} button").evaluate_all(
            "buttons => buttons.map(b => (b.getAttribute('aria-label') || b.title || b.innerText).toLowerCase())")
        assert not [label for label in labels if "share" in label], (image, labels)
    expect(page.locator("#overlay a[download], #overlay button[aria-label*='ownload']").first).to_be_attached()
    button = page.locator("#analyze")
    style = "b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]"
    page.mouse.move(0, 0)
    button.evaluate("b => b.blur()")  # Analyze was just pressed: at rest is neither focused nor hovered
    time.sleep(0.5)
    states = {"rest": button.evaluate(style)}
    button.hover()
    time.sleep(0.5)  # past any colour transition
    states["hover"] = button.evaluate(style)
    page.mouse.move(0, 0)
    button.focus()
    time.sleep(0.5)
    states["focus"] = button.evaluate(style)
    for state, (text, background) in states.items():
        assert contrast(rgb(text), rgb(background)) >= 4.5, (state, text, background)
    assert states["rest"] != states["hover"]  # hovering still shows
    for image in ("#overlay", "#crop", "#cam"):  # label and toolbar above the picture, not over its top edge
        tops = page.locator(image).evaluate(
            "e => [...e.querySelectorAll('img, [data-testid=block-label], .icon-button-wrapper')].map("
            "x => [x.tagName, Math.round(x.getBoundingClientRect().top), Math.round(x.getBoundingClientRect().bottom)])")
        pictures = [top for tag, top, _ in tops if tag == "IMG"]
        assert all(bottom <= min(pictures) for tag, _, bottom in tops if tag != "IMG" and pictures), (image, tops)
    footer = page.locator("footer a").evaluate_all("links => links.map(a => getComputedStyle(a).color)")
    assert footer and all(contrast(rgb(colour), "#ffffff") >= 4.5 for colour in footer), footer  # light page


PICTURE_BOXES = ("#crop", "#cam", "#cam-legend")
"""The boxes shown only while they hold something: the crop, the CAM and the CAM's legend."""
DISPLAYED = ("boxes => boxes.map(s => { const e = document.querySelector(s); "
             "return !!e && e.offsetParent !== null && getComputedStyle(e).display !== 'none'; })")
"""Which of the boxes the browser displays (one not displayed, or inside one that is not, has no offsetParent)."""


def expect_picture_boxes(page, displayed: bool) -> None:
    """The crop and CAM boxes and the CAM legend are displayed with their pictures and text, or not displayed at all
    (no empty frames with placeholder icons); the overlay box is displayed either way."""
    from playwright.sync_api import expect

    for box in PICTURE_BOXES:
        if displayed:
            expect(page.locator(box)).to_be_visible(timeout=30_000)
        else:
            expect(page.locator(box)).to_be_hidden(timeout=30_000)
    assert page.evaluate(DISPLAYED, list(PICTURE_BOXES)) == [displayed] * len(PICTURE_BOXES), \
        page.evaluate(DISPLAYED, list(PICTURE_BOXES))
    if displayed:
        for image in ("#crop img", "#cam img"):
            expect(page.locator(image)).to_be_visible()
        expect(page.locator("#cam-legend")).to_contain_text("Class activation map")
    else:
        expect(page.locator("#crop img")).to_have_count(0)
        expect(page.locator("#cam img")).to_have_count(0)
    expect(page.locator("#overlay")).to_be_visible()


def wait_for_upload(page, path: Path) -> None:
    """Wait until Gradio serves the uploaded file back (the upload has finished, whatever the markup) and the page
    says it is loaded, as a user sees it before pressing Analyze."""
    from playwright.sync_api import expect

    expect(page.locator(f"#upload a[href$='/{path.name}']")).to_be_visible(timeout=30_000)
    expect(page.locator("#status")).to_contain_text(f"{path.name} is loaded", timeout=30_000)


@contextlib.contextmanager
def demo_page_without_server(**options: Any) -> Iterator[Any]:
    """The demo page (its analysis replaced by the caller) in headless Chromium, opened; closed and stopped after.
    ``options``: more ClientConfig fields of the page's client (``max_message_bytes``, its upload limit)."""
    from playwright.sync_api import sync_playwright

    import dermassist_client.demo as demo

    port, dead = free_ports(2)
    page_server, url = demo.launch_demo(f"127.0.0.1:{dead}", port=port, retries=0, timeout=5, **options)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
            yield page
            browser.close()
    finally:
        page_server.close()


@pytest.mark.slow
@pytest.mark.browser
def test_an_answer_is_shown_only_beside_the_picture_it_is_about(monkeypatch):
    """Races a clinician can hit with a slow answer: Analyze pressed the moment the upload ends keeps its answer (the
    'loaded' message must not arrive after it), and a picture changed while the last one is analysed never gets the
    last one's answer beside it."""
    from playwright.sync_api import expect

    import dermassist_client.demo as demo

    returned: list[str] = []

    def slow_analysis(client, path: str, refer_threshold: float | None = None, not_learnt=()) -> demo.PageOutputs:
        time.sleep(2.0)
        returned.append(path)
        return demo._message(f"Answer about {Path(path).name}.", path)

    monkeypatch.setattr(demo, "analyze_file", slow_analysis)
    first, second = samples()[0], samples()[1]
    with demo_page_without_server() as page:
        page.locator("#upload input[type=file]").set_input_files(str(first.path))
        expect(page.locator(f"#upload a[href$='/{first.path.name}']")).to_be_visible(timeout=30_000)
        page.locator("#analyze").click()  # at once, not waiting for the page to say the picture is loaded
        expect(page.locator("#status")).to_contain_text(f"Analysing {first.path.name} ...", timeout=1_500)
        expect(page.locator("#status")).to_contain_text(f"Answer about {first.path.name}", timeout=30_000)
        time.sleep(1.0)
        expect(page.locator("#status")).to_contain_text(f"Answer about {first.path.name}")

        page.locator("#analyze").click()
        time.sleep(0.5)
        page.get_by_text(second.label, exact=True).click()  # another picture while the first is analysed
        expect(page.locator("#status")).to_contain_text(f"{second.path.name} is loaded: press Analyze")
        assert wait_until(lambda: len(returned) == 2, 30)  # the first picture's second answer has come back
        time.sleep(1.0)  # and reached the page, which does not show it
        expect(page.locator("#status")).to_contain_text(f"{second.path.name} is loaded: press Analyze")
        assert first.path.name not in page.locator("#status").inner_text()
        assert page.evaluate(f"() => ![{BANNER_REGION!r}, {STATUS_REGION!r}].some("
                             "s => document.activeElement === document.querySelector(s))"), \
            page.evaluate(FOCUSED)  # an answer dropped moves no focus
        page.locator("#analyze").click()
        expect(page.locator("#status")).to_contain_text(f"Answer about {second.path.name}", timeout=30_000)


@pytest.mark.slow
@pytest.mark.browser
def test_focus_lands_on_each_answer_and_the_crop_and_cam_boxes_show_only_with_a_diagnosis(monkeypatch):
    """Analyze pressed from the keyboard: focus moves to the verdict banner once each answer is shown (to the status
    line for an error, which has no banner). The crop and CAM boxes are hidden for an answer without a diagnosis and
    shown again, with their pictures, for the next answer that has one. Real page handler, stand-in answers."""
    from playwright.sync_api import expect

    import dermassist_client.demo as demo
    from dermassist_client.errors import ServerUnavailableError
    from tests.client.test_demo_page import _Client, _result

    class Unreachable(_Client):
        def analyze(self, path, with_crop=False):
            raise ServerUnavailableError("connection refused")

    handler = demo.analyze_file
    clients = iter([_Client(_result(assessable=False)), _Client(_result()), _Client(_result(assessable=False)),
                    Unreachable(None), _Client(_result())])

    def stand_in(client, path: str, refer_threshold: float | None = None, not_learnt=()) -> demo.PageOutputs:
        return handler(next(clients), path, refer_threshold, not_learnt)

    monkeypatch.setattr(demo, "analyze_file", stand_in)
    with demo_page_without_server() as page:
        page.locator("#upload input[type=file]").set_input_files(str(HAM))
        wait_for_upload(page, HAM)
        kind = page.locator("#banner .verdict-kind")
        for headline, diagnosis in (("NOT ASSESSABLE - REFER", False), ("REFER", True),
                                    ("NOT ASSESSABLE - REFER", False), (None, False), ("REFER", True)):
            page.locator("#analyze").focus()
            page.keyboard.press("Enter")
            if headline is None:
                expect(page.locator("#status")).to_contain_text("Could not analyze", timeout=30_000)
                expect(page.locator("#banner .verdict")).to_have_count(0)
                expect_focus_on(page, STATUS_REGION)
            else:
                expect(kind).to_have_text(headline, timeout=30_000)
                expect_focus_on(page, BANNER_REGION)
                assert page.evaluate("() => document.activeElement.querySelector('.verdict-kind').innerText") == headline
            for box in ("#crop", "#cam"):
                if diagnosis:
                    expect(page.locator(f"{box} img")).to_be_visible()
                    assert page.locator(f"{box} img").get_attribute("alt"), box
                else:
                    expect(page.locator(box)).to_be_hidden()
                    expect(page.locator(f"{box} img")).to_have_count(0)
            expect(page.locator("#overlay")).to_be_visible()
            if diagnosis:
                expect(page.locator("#cam-legend")).to_contain_text("Class activation map")
                expect(page.locator("#probabilities .probability-row")).to_have_count(len(CLASSES))
                expect(page.locator("#status")).to_contain_text("Most probable class: Melanoma (MEL)")
            else:
                assert page.locator("#cam-legend").inner_text().strip() == ""
                expect(page.locator("#probabilities .probability-row")).to_have_count(0)
        expect(page.locator(BANNER_REGION)).to_have_attribute("tabindex", "-1")
        expect(page.locator(STATUS_REGION)).to_have_attribute("tabindex", "-1")


@pytest.mark.slow
@pytest.mark.browser
def test_the_crop_and_cam_boxes_are_displayed_only_while_they_hold_a_picture(monkeypatch):
    """No empty crop and CAM boxes (frames with placeholder icons, read as 'failed to load'), nor an empty legend: not
    on the page as first loaded, nor after a new, cleared or changed upload following an answer with a diagnosis,
    nor when an answer is dropped because the picture changed while it was analysed. An answer with a diagnosis
    shows them, focus still lands on its banner and the page still passes the accessibility checks. Real page
    handler, stand-in answers (each with a diagnosis)."""
    from playwright.sync_api import expect

    import dermassist_client.demo as demo
    from tests.client.test_demo_page import _Client, _result

    handler = demo.analyze_file
    delays = iter([0.0, 0.0, 0.0, 2.0, 0.0])

    returned: list[str] = []

    def stand_in(client, path: str, refer_threshold: float | None = None, not_learnt=()) -> demo.PageOutputs:
        time.sleep(next(delays, 0.0))
        returned.append(path)
        return handler(_Client(_result()), path, refer_threshold, not_learnt)

    def analyze() -> None:
        page.locator("#analyze").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#banner .verdict-kind")).to_have_text("REFER", timeout=30_000)
        expect_focus_on(page, BANNER_REGION)
        expect_picture_boxes(page, displayed=True)

    monkeypatch.setattr(demo, "analyze_file", stand_in)
    other = next(sample for sample in samples() if sample.label != MELANOMA.label)
    with demo_page_without_server() as page:
        expect(page.locator("#analyze")).to_be_visible(timeout=30_000)
        expect(page.locator("#overlay")).to_be_visible()
        expect_picture_boxes(page, displayed=False)  # the page as first loaded
        empty = page.locator("#overlay .empty")
        expect(empty).to_have_attribute("role", "img")  # Gradio's "Empty value" label had been on a box with no role
        expect(empty).to_have_attribute("aria-label", demo.EMPTY_OVERLAY)
        page.locator("#upload input[type=file]").set_input_files(str(HAM))
        wait_for_upload(page, HAM)
        expect_picture_boxes(page, displayed=False)
        analyze()
        check_page_accessibility(page)
        expect(empty).to_have_count(0)

        page.get_by_text(other.label, exact=True).click()  # a new picture after an answer with a diagnosis
        wait_for_upload(page, other.path)
        expect(page.locator("#banner .verdict")).to_have_count(0)
        expect_picture_boxes(page, displayed=False)
        expect(empty).to_have_attribute("role", "img")  # the box Gradio made again is named again
        expect(empty).to_have_attribute("aria-label", demo.EMPTY_OVERLAY)
        analyze()

        page.locator("#upload button[aria-label='Clear']").click()  # the upload cleared
        expect(page.locator("#status")).to_contain_text(demo.NO_FILE, timeout=30_000)
        expect_picture_boxes(page, displayed=False)
        page.locator("#upload input[type=file]").set_input_files(str(HAM))
        wait_for_upload(page, HAM)
        expect_picture_boxes(page, displayed=False)
        analyze()

        page.locator("#analyze").click()  # a slow answer, dropped: the picture changes while it is analysed
        answered = len(returned)
        time.sleep(0.5)
        page.get_by_text(other.label, exact=True).click()
        wait_for_upload(page, other.path)
        assert wait_until(lambda: len(returned) > answered, 30)  # the dropped answer has come back
        time.sleep(1.0)  # and reached the page
        expect(page.locator("#status")).to_contain_text(f"{other.path.name} is loaded: press Analyze")
        expect_picture_boxes(page, displayed=False)
        analyze()
        check_page_accessibility(page)


@pytest.mark.slow
@pytest.mark.browser
def test_pictures_are_told_apart_by_their_upload_not_their_name(monkeypatch, tmp_path):
    """Two cameras' lesion.jpg are two pictures: the second never shows the first's answer. A name Gradio stores
    changed (mole!.jpg) still gets its answer. Analyze pressed while an answer is pending is not dropped: the picture
    then shown is analysed once that answer is in. And the uploads are gone once the page stops."""
    from playwright.sync_api import expect

    import dermassist_client.demo as demo

    analysed: list[str] = []

    returned: list[str] = []

    def slow_analysis(client, path: str, refer_threshold: float | None = None, not_learnt=()) -> demo.PageOutputs:
        analysed.append(path)
        time.sleep(2.0)
        returned.append(path)
        return demo._message(f"Answer about {Path(path).name}, {Path(path).stat().st_size} bytes.", path)

    monkeypatch.setattr(demo, "analyze_file", slow_analysis)
    first, second = (tmp_path / "a" / "lesion.jpg", tmp_path / "b" / "lesion.jpg")
    for path, sample in ((first, samples()[0]), (second, samples()[1])):
        path.parent.mkdir()
        path.write_bytes(sample.path.read_bytes())
    odd = tmp_path / "mole!.jpg"
    odd.write_bytes(samples()[2].path.read_bytes())
    with demo_page_without_server() as page:
        upload = page.locator("#upload input[type=file]")
        upload.set_input_files(str(first))
        expect(page.locator("#status")).to_contain_text("lesion.jpg is loaded", timeout=30_000)
        page.locator("#analyze").click()
        time.sleep(0.5)
        page.locator("#upload button[aria-label='Clear']").click()
        upload.set_input_files(str(second))  # the same name, another picture, while the first is analysed
        expect(page.locator("#status")).to_contain_text("lesion.jpg is loaded: press Analyze", timeout=30_000)
        assert wait_until(lambda: len(returned) == 1, 30)  # the first picture's answer has come back
        time.sleep(1.0)  # and reached the page, which does not show it beside the second
        expect(page.locator("#status")).to_contain_text("lesion.jpg is loaded: press Analyze")
        assert "Answer about" not in page.locator("#status").inner_text()

        page.locator("#analyze").click()
        size = second.stat().st_size
        expect(page.locator("#status")).to_contain_text(f"Answer about lesion.jpg, {size} bytes", timeout=30_000)

        page.locator("#upload button[aria-label='Clear']").click()
        upload.set_input_files(str(odd))
        expect(page.locator("#status")).to_contain_text("mole!.jpg is loaded", timeout=30_000)
        page.locator("#analyze").click()
        time.sleep(0.5)
        page.locator("#analyze").click()  # pressed again while the answer is pending: analysed after it
        expect(page.locator("#status")).to_contain_text(f"{odd.stat().st_size} bytes", timeout=30_000)
        deadline = time.monotonic() + 30
        while len(analysed) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(analysed) == 4, analysed
    stored = [Path(a) for a in analysed]
    assert all(str(s).startswith(tempfile.gettempdir()) for s in stored), stored  # Gradio's copies, not the originals
    assert not any(s.exists() for s in stored), [s for s in stored if s.exists()]  # deleted when the page stopped
    assert first.exists() and second.exists() and odd.exists()


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.browser
def test_demo_page_in_headless_chromium(triton_server, plain_png, not_an_image):
    from playwright.sync_api import expect, sync_playwright

    from dermassist_client import DermAssistClient
    from dermassist_client.demo import ALT_NO_LESION, launch_demo
    from dermassist_client.verdict import NOT_ASSESSABLE, headline, score_text, verdict_of_result

    direct = DermAssistClient(triton_server.config.grpc_address).analyze(HAM)
    said = verdict_of_result(direct)
    port, dead, dead_port = free_ports(3)
    page_process = subprocess.Popen(
        [sys.executable, "-m", "dermassist_client.cli", "demo", "--url", triton_server.config.grpc_address,
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
    )
    dead_page, dead_url = launch_demo(f"127.0.0.1:{dead}", port=dead_port, retries=0, timeout=5)
    try:
        url = read_line_with(page_process, "DermAssist demo page:", 60).split()[3]
        assert url == f"http://127.0.0.1:{port}/"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1400})

            def analyze(path: Path) -> None:
                page.goto(url)
                page.locator("#upload input[type=file]").set_input_files(str(path))
                wait_for_upload(page, path)
                page.locator("#analyze").click()

            page.goto(url)
            expect(page.locator("#attribution")).to_contain_text(LICENCE)
            expect_picture_boxes(page, displayed=False)  # no empty crop and CAM boxes before any answer
            for sample in samples():
                expect(page.locator("#attribution")).to_contain_text(sample.isic_id)
            page.get_by_text(MELANOMA.label, exact=True).click()
            wait_for_upload(page, HAM)
            page.locator("#analyze").click()
            banner = page.locator("#banner .verdict")
            expect(banner.locator(".verdict-kind")).to_have_text(headline(said), timeout=30_000)
            if said.kind == NOT_ASSESSABLE:  # no score is shown for a picture that is not assessable
                expect(banner).not_to_contain_text("Refer score")
            else:
                expect(banner).to_contain_text(score_text(said.refer_score).replace("refer score", "Refer score"))
            if said.note:
                expect(banner.locator(".verdict-note")).to_contain_text(said.note)
            expect(banner).to_contain_text("Research demo, not a medical device")
            expect_focus_on(page, BANNER_REGION)  # the keyboard and screen-reader user lands on the verdict
            expect_result_shown(page, direct)  # the tiny test models assess nothing: no class, no percentage
            check_page_accessibility(page)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            # another picture empties the last result: no verdict is ever shown beside a picture it is not about
            other = next(sample for sample in samples() if sample.label != MELANOMA.label)
            page.get_by_text(other.label, exact=True).click()
            wait_for_upload(page, other.path)
            expect(page.locator("#banner .verdict")).to_have_count(0)
            expect(page.locator("#status")).to_contain_text(f"{other.path.name} is loaded: press Analyze")
            expect_picture_boxes(page, displayed=False)

            analyze(plain_png)
            expect(page.locator("#status")).to_contain_text("No lesion found", timeout=30_000)
            expect(page.locator("#banner .verdict-note")).to_contain_text("No lesion found")
            expect(page.locator("#overlay img")).to_have_attribute("alt", ALT_NO_LESION)
            expect(page.locator("#probabilities .probability-row")).to_have_count(0)

            analyze(not_an_image)
            expect(page.locator("#status")).to_contain_text("Could not analyze: notes.jpg is not an image",
                                                             timeout=30_000)
            expect(page.locator("#banner .verdict")).to_have_count(0)
            expect_focus_on(page, STATUS_REGION)  # no banner: the message takes focus
            assert "Traceback" not in page.content()

            page.goto(dead_url)
            page.locator("#upload input[type=file]").set_input_files(str(HAM))
            wait_for_upload(page, HAM)
            page.locator("#analyze").click()
            expect(page.locator("#status")).to_contain_text("cannot be reached right now", timeout=30_000)
            expect(page.locator("#status")).to_contain_text("Could not analyze")
            expect(page.locator(STATUS_REGION)).to_have_attribute("aria-live", "polite")  # the failure is announced
            browser.close()
    finally:
        dead_page.close()
        assert stop(page_process) == 0
    assert SCREENSHOT.stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.integration
def test_dermassist_demo_starts_server_then_page_and_stops_on_sigterm(tiny_repository):
    http, grpc, metrics, page_port = free_ports(4)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dermassist"), "demo", "--repository", str(tiny_repository),
         "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
         "--port", str(page_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    try:
        line = read_line_with(process, "DermAssist demo page:", 120, output)
        assert f"http://127.0.0.1:{page_port}/" in line and f"127.0.0.1:{grpc}" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=5) as ready:
            assert ready.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{page_port}/", timeout=5) as page:
            assert page.status == 200 and b"DermAssist demo" in page.read()
    finally:
        started = time.monotonic()
        code = stop(process)
    assert code == 0 and time.monotonic() - started < 30
    deadline = time.monotonic() + 5  # the pump reads the last lines after the exit
    while not any("the demo page and the server stopped" in line for line in output) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any("the demo page and the server stopped" in line for line in output), output[-5:]  # it ended "stopping"
    for port in (http, page_port):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


@pytest.mark.slow
@pytest.mark.browser
def test_a_picture_larger_than_a_request_may_carry_is_refused_at_upload(tmp_path: Path) -> None:
    """A 600 MiB upload was stored whole and held the page process at 3.3 GB before the service refused it with
    gRPC's words (fuzz audit 4): Gradio refuses it at once, naming the limit and the file."""
    from playwright.sync_api import expect, sync_playwright

    import dermassist_client.demo as demo

    assert demo.upload_limit({}) == 256 * 1024 * 1024  # ClientConfig's max_message_bytes
    big = tmp_path / "big_lesion.jpg"
    big.write_bytes(encode(synthetic_lesion(), ".jpg") + b"\0" * (2 << 20))
    port, dead = free_ports(2)
    page_server, url = demo.launch_demo(f"127.0.0.1:{dead}", port=port, retries=0, timeout=5,
                                        max_message_bytes=1 << 20)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
            page.locator("#upload input[type=file]").set_input_files(str(big))
            expect(page.get_by_text('exceed the maximum allowed size of 1.0 Mb: "big_lesion.jpg"')).to_be_visible(
                timeout=30_000)
            expect(page.locator("#upload a[href$='/big_lesion.jpg']")).to_have_count(0)
            browser.close()
    finally:
        page_server.close()


@pytest.mark.slow
@pytest.mark.browser
def test_a_file_name_is_shown_as_a_name_never_as_markdown(tmp_path: Path) -> None:
    """A picture named '[click me](https:__evil.example).jpg' showed a live link in the status line (fuzz audit
    12.12): the name is escaped, in the browser's 'is loaded' line and in the server's answer alike."""
    from playwright.sync_api import expect

    picture = tmp_path / "[click me](https:__evil.example) *bold*.jpg"
    picture.write_bytes(b"the ward's notes, not a picture")  # refused here, before sending: the message names it
    with demo_page_without_server() as page:
        page.locator("#upload input[type=file]").set_input_files(str(picture))
        expect(page.locator("#status")).to_contain_text(f"{picture.name} is loaded", timeout=30_000)
        expect(page.locator("#status a")).to_have_count(0)
        expect(page.locator("#status em")).to_have_count(0)  # *bold* in the name is no emphasis
        page.locator("#analyze").click()
        expect(page.locator("#status")).to_contain_text("Could not analyze", timeout=60_000)
        expect(page.locator("#status")).to_contain_text("[click me](https")  # Gradio's stored name drops ':' and '*'
        expect(page.locator("#status a")).to_have_count(0)


@pytest.mark.slow
@pytest.mark.browser
def test_an_upload_over_the_limit_leaves_a_lasting_message_that_says_what_to_do(tmp_path: Path) -> None:
    """Gradio refuses it before any page code runs; its toast went after 10 s and left "Error" alone, with nothing
    saying what to do (accessibility audit, M1). The status line keeps the page's own words, and takes focus."""
    from playwright.sync_api import expect

    import dermassist_client.demo as demo

    big = tmp_path / "big_lesion.jpg"
    big.write_bytes(HAM.read_bytes() + b"\0" * (2 << 20))  # over a 1 MiB limit
    named = tmp_path / 'big "$&" lesion.jpg'  # quotes and a replacement pattern in its name are shown as they are
    big.rename(named)
    refused = f"#{demo.REFUSED_UPLOAD_ID}"
    with demo_page_without_server(max_message_bytes=1 << 20) as page:
        page.locator("#upload input[type=file]").set_input_files(str(named))
        told = demo.TOO_LARGE_UPLOAD.format(name=named.name, limit="1 MB")
        expect(page.locator(refused)).to_have_text(told, timeout=30_000)
        page.wait_for_selector(".toast-body", state="detached", timeout=30_000)  # Gradio's own message has gone
        expect(page.locator(refused)).to_have_text(told)  # the page's stays
        assert page.evaluate(f"() => !!document.activeElement.closest('#{demo.REFUSED_UPLOAD_ID}')")
        # a second refusal, which Gradio folds into the toast on screen ("Error (2)"), is told too (review 20, M2)
        second = tmp_path / "second_lesion.jpg"
        second.write_bytes(HAM.read_bytes() + b"\0" * (2 << 20))
        page.locator("#upload input[type=file]").set_input_files(str(second))
        expect(page.locator(refused)).to_have_text(demo.TOO_LARGE_UPLOAD.format(name=second.name, limit="1 MB"),
                                                   timeout=30_000)
        # the status line still speaks: writing into it had frozen it for the session (review 19, H1)
        page.locator("#upload input[type=file]").set_input_files(str(HAM))
        wait_for_upload(page, HAM)
        expect(page.locator(refused)).to_have_text("")
        assert page.locator(f"#{demo.REFUSED_UPLOAD_ID}").bounding_box()["height"] <= 1  # empty: no band left


@pytest.mark.slow
@pytest.mark.browser
def test_analyze_keeps_a_boundary_in_a_high_contrast_theme() -> None:
    """Windows' high-contrast mode removed Analyze's orange background and left "Analyze" as plain text, with no
    outline (accessibility audit, L8)."""
    border = "button => parseFloat(getComputedStyle(button).borderTopWidth)"
    with demo_page_without_server() as page:
        page.emulate_media(forced_colors="active")
        assert page.locator("#analyze").evaluate(border) >= 1


@pytest.mark.slow
@pytest.mark.browser
def test_focus_stays_with_the_upload_after_a_file_is_chosen_from_the_keyboard() -> None:
    """Space on the drop zone opens the chooser; once a file was chosen Gradio replaced the drop zone and focus fell to
    the page's body, losing a screen reader's place (accessibility audit, L6)."""
    from playwright.sync_api import expect

    import dermassist_client.demo as demo

    with demo_page_without_server() as page:
        zone = page.locator("#upload button.upload-container")
        expect(zone).to_have_attribute("aria-label", demo.DROP_ZONE_NAME, timeout=30_000)  # the page has loaded whole
        for _ in range(20):  # Tab to the upload's drop zone, as a keyboard user does
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.matches('#upload button.upload-container')"):
                break
        with page.expect_file_chooser() as chooser:
            page.keyboard.press("Space")  # a button's own key (Gradio's Enter handler missed now and then under load)
        chooser.value.set_files(str(HAM))
        expect(page.locator("#status")).to_contain_text("is loaded", timeout=30_000)
        assert page.evaluate("() => !!document.activeElement.closest('#upload')")


@pytest.mark.slow
@pytest.mark.browser
def test_the_drop_zones_name_holds_its_visible_words_also_after_a_picture_is_cleared() -> None:
    """Its name was "Click to upload or drop files" beside the visible "Drop File Here - or - Click to Upload": a
    voice-control user who says what they see reached nothing (accessibility audit, L3)."""
    from playwright.sync_api import expect

    import dermassist_client.demo as demo

    with demo_page_without_server() as page:
        zone = page.locator("#upload button.upload-container")
        expect(zone).to_have_attribute("aria-label", demo.DROP_ZONE_NAME, timeout=30_000)
        page.locator("#upload input[type=file]").set_input_files(str(HAM))
        wait_for_upload(page, HAM)
        page.locator("#upload button[aria-label='Clear']").click()
        expect(zone).to_have_attribute("aria-label", demo.DROP_ZONE_NAME, timeout=30_000)  # made again, named again


@pytest.mark.slow
@pytest.mark.browser
def test_each_result_picture_is_one_named_tab_stop_a_download_of_24_px_or_more(monkeypatch):
    """Each picture was three Tab stops: a link with no name, a 'Download' button nested in it and a button around the
    picture that did nothing; the download targets were 20x20 px and every picture saved as 'image.png'
    (accessibility audit, L4 and L5). Checked after two answers: Gradio draws the pictures again for each."""
    from playwright.sync_api import expect

    import dermassist_client.demo as demo
    from tests.client.test_demo_page import _Client, _result

    handler = demo.analyze_file

    def stand_in(client, path: str, refer_threshold: float | None = None, not_learnt=()) -> demo.PageOutputs:
        return handler(_Client(_result()), path, refer_threshold, not_learnt)

    monkeypatch.setattr(demo, "analyze_file", stand_in)
    stops = ("pictures => pictures.map(picture => [...picture.querySelectorAll('a[href], button, [tabindex]')]"
             ".filter(e => e.tabIndex >= 0 && !e.disabled).map(e => [e.tagName, e.getAttribute('aria-label'), "
             "e.getAttribute('download')]))")
    ids = list(demo.PICTURE_DOWNLOADS)
    pictures = ", ".join(f"#{i}" for i in ids)
    expected = [[["A", label, file]] for label, file in demo.PICTURE_DOWNLOADS.values()]
    with demo_page_without_server() as page:
        for answer in range(2):
            if answer:  # a new upload empties the pictures: the next answer draws them afresh
                page.locator("#upload button[aria-label='Clear']").click()
            page.locator("#upload input[type=file]").set_input_files(str(HAM))
            wait_for_upload(page, HAM)
            expect(page.locator("#cam img")).to_have_count(0)
            page.locator("#analyze").click()
            expect(page.locator("#cam img")).to_be_visible(timeout=30_000)
            wait_until(lambda: page.locator(pictures).evaluate_all(stops) == expected, 10.0)
            assert page.locator(pictures).evaluate_all(stops) == expected
            for image in ids:
                box = page.locator(f"#{image} a.download-link").bounding_box()
                assert box is not None and box["width"] >= 24 and box["height"] >= 24, (image, box)


@pytest.mark.slow
@pytest.mark.browser
def test_the_disclaimer_is_in_the_pages_body_text_size(monkeypatch):
    """"Not a medical device" was set at 0.85 em, 11.9 px, the smallest text of the page (accessibility audit, L11)."""
    from playwright.sync_api import expect

    import dermassist_client.demo as demo
    from tests.client.test_demo_page import _Client, _result

    handler = demo.analyze_file
    monkeypatch.setattr(demo, "analyze_file", lambda client, path, refer_threshold=None, not_learnt=(): handler(
        _Client(_result()), path, refer_threshold, not_learnt))
    size = "e => parseFloat(getComputedStyle(e).fontSize)"
    with demo_page_without_server() as page:
        page.locator("#upload input[type=file]").set_input_files(str(HAM))
        wait_for_upload(page, HAM)
        page.locator("#analyze").click()
        expect(page.locator("#banner .verdict-disclaimer")).to_be_visible(timeout=30_000)
        body = page.locator("#banner .verdict-advice").evaluate("e => parseFloat(getComputedStyle(e.parentElement).fontSize)")
        assert page.locator("#banner .verdict-disclaimer").evaluate(size) >= max(14.0, body)
