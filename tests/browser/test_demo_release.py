"""The demo page over the released real-data models, in headless Chromium: a real dermoscopy image the release
assesses shows its class probabilities, and a picture it cannot assess (a greyscale copy of one) shows none."""
from __future__ import annotations

import pytest
from PIL import Image

from dermassist_client.samples import samples
from tests.browser.test_demo import CHROMIUM_ARGS, check_page_accessibility, expect_result_shown, wait_for_upload

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.browser]


def test_the_page_shows_probabilities_only_for_an_assessable_picture(release_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from dermassist.base.server import free_ports
    from dermassist_client import DermAssistClient
    from dermassist_client.demo import NOT_RELIABLE, launch_demo

    client = DermAssistClient(release_server.config.grpc_address, timeout=120)
    answers = {sample.path: client.analyze(sample.path) for sample in samples()}
    assessed = next(path for path, answer in answers.items() if answer.diagnosis_given)  # real dermoscopy
    grey = tmp_path / "greyscale.png"  # the same lesion without colour: the release does not assess it
    Image.open(assessed).convert("L").convert("RGB").save(grey)
    greyed = client.analyze(grey)
    assert greyed.assessable is False and not greyed.diagnosis_given, greyed.note

    (port,) = free_ports(1)
    page_server, url = launch_demo(release_server.config.grpc_address, port=port, timeout=120)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            for path, answer in ((assessed, answers[assessed]), (grey, greyed)):
                page.goto(url)
                page.locator("#upload input[type=file]").set_input_files(str(path))
                wait_for_upload(page, path)
                page.locator("#analyze").click()
                expect(page.locator("#status")).to_contain_text(f"Result for {path.name}", timeout=60_000)
                expect_result_shown(page, answer)
            expect(page.locator("#status")).to_contain_text(NOT_RELIABLE.split("**")[1])
            expect(page.locator("#banner .verdict-kind")).to_have_text("NOT ASSESSABLE - REFER")
            check_page_accessibility(page)
            browser.close()
    finally:
        page_server.close()
