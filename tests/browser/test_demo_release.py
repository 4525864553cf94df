"""The demo page over the released real-data models, in headless Chromium: a real dermoscopy image the release
assesses shows its class probabilities, crop and CAM, and a picture it cannot assess (a greyscale copy of one) shows
none of them (the crop and CAM boxes are hidden) until the next assessable picture; focus lands on each verdict. The
crop and CAM boxes are not displayed before any answer, nor after a new upload. The page is told the classes the
release never learnt as ``dermassist demo`` tells it, from the served repository (SCC, whose row has no percentage)."""
from __future__ import annotations

import pytest
from PIL import Image

from dermassist_client.samples import samples
from tests.browser.test_demo import (
    BANNER_REGION,
    CHROMIUM_ARGS,
    check_page_accessibility,
    expect_focus_on,
    expect_picture_boxes,
    expect_result_shown,
    wait_for_upload,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.browser]


def test_the_page_shows_probabilities_only_for_an_assessable_picture(release_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from dermassist.base.server import free_ports
    from dermassist.commands.demo import served_not_learnt
    from dermassist_client import DermAssistClient
    from dermassist_client.demo import NOT_RELIABLE, launch_demo

    client = DermAssistClient(release_server.config.grpc_address, timeout=120)
    answers = {sample.path: client.analyze(sample.path) for sample in samples()}
    assessed = next(path for path, answer in answers.items() if answer.diagnosis_given)  # real dermoscopy
    grey = tmp_path / "greyscale.png"  # the same lesion without colour: the release does not assess it
    Image.open(assessed).convert("L").convert("RGB").save(grey)
    greyed = client.analyze(grey)
    assert greyed.assessable is False and not greyed.diagnosis_given, greyed.note

    not_learnt = served_not_learnt(release_server.config.repository)
    assert not_learnt == ("SCC",)  # the shipped release has no SCC training image
    (port,) = free_ports(1)
    page_server, url = launch_demo(release_server.config.grpc_address, port=port, timeout=120, not_learnt=not_learnt)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.goto(url)
            expect(page.locator("#analyze")).to_be_visible(timeout=30_000)
            expect_picture_boxes(page, displayed=False)  # before any answer: no empty crop and CAM boxes
            # one page: the greyscale picture hides the crop and CAM boxes, the real one after it shows them again
            for path, answer in ((assessed, answers[assessed]), (grey, greyed), (assessed, answers[assessed])):
                if page.locator("#upload button[aria-label='Clear']").count():
                    page.locator("#upload button[aria-label='Clear']").click()
                page.locator("#upload input[type=file]").set_input_files(str(path))
                wait_for_upload(page, path)
                page.locator("#analyze").focus()
                page.keyboard.press("Enter")
                expect(page.locator("#status")).to_contain_text(f"Result for {path.name}", timeout=60_000)
                expect_focus_on(page, BANNER_REGION)  # the keyboard user lands on the verdict
                expect_result_shown(page, answer, not_learnt)
                if path == grey:
                    expect(page.locator("#status")).to_contain_text(NOT_RELIABLE.split("**")[1])
                    expect(page.locator("#banner .verdict-kind")).to_have_text("NOT ASSESSABLE - REFER")
                    check_page_accessibility(page)
            check_page_accessibility(page)
            expect_picture_boxes(page, displayed=True)  # the last answer has a diagnosis
            page.locator("#upload button[aria-label='Clear']").click()
            page.locator("#upload input[type=file]").set_input_files(str(grey))  # a new picture: the boxes go
            wait_for_upload(page, grey)
            expect_picture_boxes(page, displayed=False)
            browser.close()
    finally:
        page_server.close()
