"""The demo page keeps patients' pictures to itself (privacy audit, M2, M3, L4): uploads in a folder of its own
(mode 0700, removed when it ends, and by the next page after a crash), never a public share link, and no upload's
file name in its log."""
from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dermassist_client import uploads


@pytest.fixture
def fresh_uploads(monkeypatch: pytest.MonkeyPatch) -> None:
    """No folder made yet by this process, no GRADIO_TEMP_DIR set (the state of a page that starts)."""
    monkeypatch.delenv(uploads.ENV, raising=False)
    monkeypatch.setattr(uploads, "_made", None)


def test_the_page_keeps_uploads_in_a_private_folder_and_clears_those_of_pages_that_crashed(
        tmp_path: Path, fresh_uploads: None, monkeypatch: pytest.MonkeyPatch) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    crashed = tmp_path / f"{uploads.PREFIX}{ended.stdout.strip()}-abc123"  # a page SIGKILLed: its process is gone
    (crashed / "039ed8").mkdir(parents=True)
    (crashed / "039ed8" / "Doe_Jane_MRN123456.jpg").write_bytes(b"a patient's picture")
    running = tmp_path / f"{uploads.PREFIX}{os.getppid()}-def456"  # another page still running: kept
    running.mkdir()
    unrelated = tmp_path / "gradio"
    unrelated.mkdir()
    folder = uploads.private_upload_folder(tmp_path)
    assert folder.parent == tmp_path and folder.name.startswith(f"{uploads.PREFIX}{os.getpid()}-")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # no other user lists or reads what is in it
    assert os.environ[uploads.ENV] == str(folder)
    assert not crashed.exists() and running.is_dir() and unrelated.is_dir()
    assert uploads.private_upload_folder(tmp_path) == folder  # made once per process
    monkeypatch.delenv(uploads.ENV)
    assert uploads.private_upload_folder(tmp_path) == folder and os.environ[uploads.ENV] == str(folder)  # review 19, L6


def test_an_operators_upload_folder_is_kept(tmp_path: Path, fresh_uploads: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(uploads.ENV, str(tmp_path / "tmpfs"))  # the container's, on its tmpfs
    assert uploads.private_upload_folder(tmp_path) == tmp_path / "tmpfs"
    assert list(tmp_path.iterdir()) == []


def test_the_page_never_opens_a_share_link(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """launch() had no share=False: GRADIO_SHARE=true (or a hosted notebook) made Gradio publish the page through
    its public relay."""
    import gradio as gr

    from dermassist_client import demo

    seen: dict = {}

    def launch(self: gr.Blocks, **kwargs: object) -> None:
        seen.update(kwargs)
        self.server_port = 1

    monkeypatch.setattr(gr.Blocks, "launch", launch)
    monkeypatch.setenv("GRADIO_SHARE", "true")
    monkeypatch.setenv(uploads.ENV, str(tmp_path))
    page, _ = demo.launch_demo("127.0.0.1:1", port=20399)
    page.close()
    assert seen["share"] is False
    # nor Gradio's settings dialog: its close button had no name, focus stayed behind it and left it, and it offered
    # to record the tab, patients' pictures and all (accessibility audit, M5)
    assert seen["footer_links"] == ["gradio"]


def test_a_failed_analysis_is_logged_without_the_uploads_file_name(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    from dermassist_client.demo import analyze_file
    from dermassist_client.errors import InvalidImageError

    upload = tmp_path / "Doe_Jane_MRN123456.jpg"
    upload.write_bytes(b"")

    class Refusing:
        def analyze(self, path: str, with_crop: bool = False) -> None:
            raise InvalidImageError(f"{path} is empty (0 bytes); expected a JPEG, PNG, BMP or TIFF file")

    with caplog.at_level(logging.DEBUG, logger="dermassist_client"):
        outputs = analyze_file(Refusing(), str(upload))  # type: ignore[arg-type]
    assert "analysis of an upload failed: <the upload> is empty (0 bytes)" in caplog.text
    assert "Doe_Jane" not in caplog.text
    assert "empty" in str(outputs)  # the page still tells the user


def test_a_picture_the_page_no_longer_holds_is_told_plainly(tmp_path: Path) -> None:
    """An upload the hourly sweep had deleted got the SDK's "No such file or directory; check the path", which a
    clinician has no path to check (accessibility audit, M6); the introduction says uploads go after an hour."""
    from dermassist_client import demo
    from dermassist_client.client import DermAssistClient

    gone = tmp_path / "ISIC_0025248.jpg"
    outputs = demo.analyze_file(DermAssistClient("127.0.0.1:1", timeout=1, retries=0), str(gone))
    assert outputs.status == f"**Could not analyze:** {demo.GONE.format(name=demo.shown_name(str(gone)))}"
    assert "The page no longer holds **ISIC\\_0025248.jpg** (it deletes uploads after an hour" in outputs.status
    assert "check the path" not in outputs.status and "No such file" not in outputs.status
    assert "deletes an upload after an hour" in demo.INTRO
    assert "fullscreen" not in demo.IMAGE_BUTTONS  # its view hid keyboard focus behind it (accessibility audit, M4)


def test_the_page_headings_do_not_skip_a_level() -> None:
    """The page's h1 was followed by an h3 (accessibility audit, L1): the intended use is a second-level heading, as
    the verdict's headline is."""
    from dermassist_client import demo

    assert demo.INTENDED_USE_TEMPLATE.startswith("## Intended use and limits\n")


def test_analyze_keeps_an_outline_in_a_high_contrast_theme_and_code_spans_wrap() -> None:
    """In forced colours Analyze lost its background and showed as plain text (accessibility audit, L8); at 320 px
    with WCAG's text spacing the model line and the intended use scrolled sideways on their code spans (L10)."""
    from dermassist_client import demo

    assert "@media (forced-colors: active) { #analyze { border: 2px solid ButtonText !important; } }" in demo.PAGE_CSS
    assert "#intended-use code, #model code { overflow-wrap: anywhere; }" in demo.PAGE_CSS
