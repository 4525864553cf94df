"""The Gradio demo page: its handler, a real headless Chromium driving it, and ``dermassist demo``."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from dermassist.server import free_ports
from tests.conftest import HAM_IMAGES, PROJECT_ROOT

HAM = HAM_IMAGES / "ISIC_0024311.jpg"
SCREENSHOT = PROJECT_ROOT / "reports" / "demo_screenshot.png"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def read_line_with(process: subprocess.Popen, marker: str, timeout_s: float) -> str:
    """The first stdout line containing ``marker`` (the process's output is drained meanwhile)."""
    found: list[str] = []
    event = threading.Event()

    def pump() -> None:
        for line in process.stdout:
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
def test_handler_outputs_and_plain_messages(triton_server, plain_png, not_an_image):
    from dermassist_client import DermAssistClient
    from dermassist_client.demo import NO_FILE, analyze_file

    client = DermAssistClient(triton_server.config.grpc_address)
    overlay, crop, probabilities, status, model = analyze_file(client, str(HAM))
    assert overlay.size == (600, 450) and crop.shape == (224, 224, 3)
    assert len(probabilities) == 8 and "Melanoma (MEL)" in probabilities
    assert status.startswith("Lesion found") and "version `1`" in model
    assert "no lesion found" in analyze_file(client, str(plain_png))[3]
    outputs = analyze_file(client, str(not_an_image))
    assert outputs[:3] == (None, None, None)
    assert outputs[3].startswith("**Could not analyze:** notes.jpg is not an image")
    assert str(not_an_image.parent) not in outputs[3] and "Traceback" not in outputs[3]
    assert analyze_file(client, None)[3] == NO_FILE
    (dead,) = free_ports(1)
    unreachable = analyze_file(DermAssistClient(f"127.0.0.1:{dead}", retries=0), str(HAM))[3]
    assert f"cannot connect to 127.0.0.1:{dead}" in unreachable or "unavailable" in unreachable


def wait_for_upload(page, path: Path) -> None:
    """Wait until Gradio serves the uploaded file back: the upload has finished, whatever the markup."""
    from playwright.sync_api import expect

    expect(page.locator(f"#upload a[href$='/{path.name}']")).to_be_visible(timeout=30_000)


@pytest.mark.integration
@pytest.mark.browser
def test_demo_page_in_headless_chromium(triton_server, plain_png, not_an_image):
    from playwright.sync_api import expect, sync_playwright

    from dermassist_client.demo import launch_demo

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
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            def analyze(path: Path) -> None:
                page.goto(url)
                page.locator("#upload input[type=file]").set_input_files(str(path))
                wait_for_upload(page, path)
                page.locator("#analyze").click()

            analyze(HAM)
            expect(page.locator("#probabilities")).to_contain_text("Melanoma (MEL)", timeout=30_000)
            for code in ("AK", "BCC", "DF", "NV", "BKL", "SCC", "VASC"):
                expect(page.locator("#probabilities")).to_contain_text(f"({code})")
            expect(page.locator("#overlay img")).to_be_visible()
            expect(page.locator("#crop img")).to_be_visible()
            expect(page.locator("#status")).to_contain_text("Lesion found")
            expect(page.locator("#model")).to_contain_text("dermassist")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            analyze(plain_png)
            expect(page.locator("#status")).to_contain_text("no lesion found", timeout=30_000)

            analyze(not_an_image)
            expect(page.locator("#status")).to_contain_text("Could not analyze: notes.jpg is not an image",
                                                             timeout=30_000)
            assert "Traceback" not in page.content()

            page.goto(dead_url)
            page.locator("#upload input[type=file]").set_input_files(str(HAM))
            wait_for_upload(page, HAM)
            page.locator("#analyze").click()
            expect(page.locator("#status")).to_contain_text(f"127.0.0.1:{dead}", timeout=30_000)
            expect(page.locator("#status")).to_contain_text("Could not analyze")
            browser.close()
    finally:
        dead_page.close()
        assert stop(page_process) == 0
    assert SCREENSHOT.stat().st_size > 10_000


@pytest.mark.integration
def test_dermassist_demo_starts_server_then_page_and_stops_on_sigterm(tiny_repository):
    http, grpc, metrics, page_port = free_ports(4)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dermassist"), "demo", "--repository", str(tiny_repository),
         "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
         "--port", str(page_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = read_line_with(process, "DermAssist demo page:", 120)
        assert f"http://127.0.0.1:{page_port}/" in line and f"127.0.0.1:{grpc}" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=5) as ready:
            assert ready.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{page_port}/", timeout=5) as page:
            assert page.status == 200 and b"DermAssist demo" in page.read()
    finally:
        started = time.monotonic()
        code = stop(process)
    assert code == 0 and time.monotonic() - started < 30
    for port in (http, page_port):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
