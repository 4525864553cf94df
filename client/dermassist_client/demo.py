"""The Gradio demo page: upload an image (or pick a bundled sample) and see what the ensemble says.

Gradio is imported only here (``pip install dermassist-client[demo]``).
"""
from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import numpy as np
from PIL import Image

from .classes import CLASSES
from .client import DermAssistClient
from .errors import DermAssistClientError
from .overlay import draw_overlay
from .samples import sample_paths

logger = logging.getLogger(__name__)

TITLE = "DermAssist demo"
INTRO = (
    "Upload a dermoscopic image (JPEG, PNG, BMP or TIFF) or pick a synthetic sample, then press "
    "**Analyze**. Research demo, not a medical device."
)
NO_FILE = "Upload an image or pick a sample first."
NO_LESION = ("**Warning: no lesion found.** The segmenter found no lesion, so the whole image was classified; "
             "treat the probabilities with care.")

Outputs = tuple[Any, Any, Any, str, str]


def _error(message: str) -> Outputs:
    return None, None, None, f"**Could not analyze:** {message}", ""


def analyze_file(client: DermAssistClient, path: str | None) -> Outputs:
    """Handler of the Analyze button: overlay, crop, probabilities, status line, model line."""
    if not path:
        return None, None, None, NO_FILE, ""
    try:
        result = client.analyze(path, with_crop=True)
    except DermAssistClientError as e:
        logger.info("analysis of %s failed: %s", path, e)
        return _error(str(e).replace(str(path), Path(path).name))
    with Image.open(path) as original:
        overlay = draw_overlay(original, result)
    probabilities = {f"{c.name} ({c.code})": result.probabilities[c.code] for c in CLASSES}
    status = NO_LESION if not result.lesion_found else (
        f"Lesion found: {100 * result.lesion_fraction:.1f}% of the image, box {list(result.bbox.as_tuple())} "
        f"(original pixels). Top class: **{result.label.name} ({result.label.code})**."
    )
    model = f"Answered by model `{result.model_name}` version `{result.model_version}` at `{client.config.url}`."
    crop = None if result.crop is None else np.asarray(result.crop)
    return overlay, crop, probabilities, status, model


def build_demo(url: str, protocol: str = "grpc", timeout: float = 30.0, retries: int = 1) -> gr.Blocks:
    """The page, talking to the ensemble at ``url``."""
    client = DermAssistClient(url, protocol, timeout=timeout, retries=retries)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as page:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Image", type="filepath", elem_id="upload")
                button = gr.Button("Analyze", variant="primary", elem_id="analyze")
                gr.Examples(examples=[[str(p)] for p in sample_paths()], inputs=[upload], label="Synthetic samples")
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id="status")
                with gr.Row():
                    overlay = gr.Image(label="Mask and box", type="pil", elem_id="overlay", interactive=False)
                    crop = gr.Image(label="Crop the classifier saw (224x224)", elem_id="crop", interactive=False)
                label = gr.Label(label="Probabilities", num_top_classes=8, elem_id="probabilities")
                model = gr.Markdown(elem_id="model")
        button.click(lambda path: analyze_file(client, path), inputs=[upload],
                     outputs=[overlay, crop, label, status, model])
    return page


def launch_demo(url: str, protocol: str = "grpc", host: str = "127.0.0.1", port: int = 7860,
                timeout: float = 30.0, retries: int = 1) -> tuple[gr.Blocks, str]:
    """Build and start the page without blocking; returns it and its local URL."""
    page = build_demo(url, protocol, timeout=timeout, retries=retries)
    page.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                show_error=False, ssr_mode=False)
    local_url = f"http://{host}:{page.server_port}/"
    logger.info("demo page at %s (server %s over %s)", local_url, url, protocol)
    return page, local_url


def wait_for_signal(alive: Callable[[], bool] | None = None, on_ready: Callable[[], None] | None = None) -> int:
    """Block the main thread until SIGINT or SIGTERM (its number is returned) or ``alive()`` is False (0).

    ``on_ready`` runs once the handlers are installed (e.g. to announce the page's URL).
    """
    received: list[int] = []
    done = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        done.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if on_ready is not None:
            on_ready()
        while not done.wait(0.5):
            if alive is not None and not alive():
                return 0
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return received[0]
