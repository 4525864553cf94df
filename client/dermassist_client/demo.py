"""The Gradio demo page: upload an image (or pick a bundled real example) and see what the ensemble says.

Gradio is imported only here (``pip install dermassist-client[demo]``).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
import numpy as np
from PIL import Image

from .classes import CLASSES
from .client import DermAssistClient
from .config import DEMO_HOST, DEMO_PORT
from .errors import DeadlineExceededError, DermAssistClientError, InvalidImageError, ServerUnavailableError
from .overlay import draw_cam, draw_overlay
from .samples import attribution_markdown, samples
from .signals import wait_for_signal  # noqa: F401 - re-exported: callers import it from here
from .verdict import DISCLAIMER, banner_html, verdict_of_result

logger = logging.getLogger(__name__)

TITLE = "DermAssist demo"
INTRO = (
    "Upload a dermoscopic image (JPEG, PNG, BMP or TIFF) or pick one of the real examples, then press "
    f"**Analyze**. {DISCLAIMER}"
)
NO_FILE = "Upload an image or pick an example first."
NEW_FILE = "**{name}** is loaded: press **Analyze**."
UNREACHABLE = ("The analysis service cannot be reached right now. Try again in a minute; if it goes on, tell the team "
               "that runs DermAssist.")
TOO_SLOW = "The analysis service took too long to answer. Try again; a very large picture takes longer."
NOT_RELIABLE = ("**Image not assessable: the mask, box and probabilities below are not a diagnosis** (see the note "
                "above); they are shown only to help retake the picture.")
ALT_OVERLAY = "The uploaded image with the lesion the model found tinted red and its box drawn in green"
ALT_CROP = "The square crop around the lesion that the classifier analysed"
ALT_CAM = "The crop with a heat map of where the model looked: red raised the top class most"
NO_LESION = ("**No lesion found.** The segmenter found no lesion, so the whole image was classified "
             "(no mask, no box).")
CAM_LEGEND = ("Class activation map of the top class over the crop: red is what raised that class's probability "
              "most, untinted is what did not raise it. The map is coarse (a 7x7 grid drawn smooth): it marks "
              "regions, not borders, and can light normal skin beside the lesion.")
PROBABILITIES_LABEL = "Calibrated probabilities (a diagnosis only where the result line above the pictures names one)"


class PageOutputs(NamedTuple):
    """What the Analyze button fills in, in the order of the page's output components."""

    banner: str
    overlay: Image.Image | None
    crop: np.ndarray | None
    cam: Image.Image | None
    probabilities: dict[str, float] | None
    status: str
    model: str
    about: str  # the stored upload these outputs are about ("" for none), held in a hidden field of the page


def _message(status: str, about: str = "") -> PageOutputs:
    return PageOutputs("", None, None, None, None, status, "", about)


_FILE_NAME_JS = ("const name = file ? (file.orig_name || String(file.path || '').split('/').pop()) : ''; "
                 "const key = file ? String(file.path || '') : '';")
LOADED_JS = (
    f"(file) => {{ {_FILE_NAME_JS} "
    f"return ['', null, null, null, {{}}, name ? {json.dumps(NEW_FILE)}.replace('{{name}}', name) : "
    f"{json.dumps(NO_FILE)}, '', key]; }}"
)
"""Handler of a new or cleared upload, run in the browser the moment the picture changes (a server round trip could
arrive after an answer and replace it): every output of the last analysis is emptied, so a result is never shown
beside a picture it is not about, and the page says the picture is loaded. (Gradio's Label takes an empty object, not
null, from the browser: null would stop the whole update.)"""
KEEP_IF_CURRENT_JS = (
    f"(file, ...shown) => {{ {_FILE_NAME_JS} "
    f"return shown[shown.length - 1] === key ? shown.map((v, i) => (i === 4 && v == null ? {{}} : v)) "
    f": ({LOADED_JS})(file); }}"
)
"""Run in the browser when an answer arrives: an answer about another picture than the one now loaded (the picture
was changed while it was being analysed) is replaced by the 'loaded' message of the picture shown. A picture is
known by where Gradio stored its upload, not by its name: two cameras' IMG_0001.jpg are two pictures, and Gradio
stores some names changed (``mole!.jpg``, ``CON.jpg``), so a name would both match the wrong picture and miss the
right one."""
UPLOAD_RETENTION_S = (600, 3600)
"""Gradio's ``delete_cache``: every 10 minutes the uploads over an hour old are deleted, and all of them when the
page stops (patients' pictures are not kept on the demo host)."""


def plain_error(error: DermAssistClientError, path: str) -> str:
    """What a clinician reads when a picture could not be analysed: the reason in plain words, no request ids,
    tensor names or SDK advice (those go to the log)."""
    name = Path(path).name
    if isinstance(error, ServerUnavailableError):
        return UNREACHABLE
    if isinstance(error, DeadlineExceededError):
        return TOO_SLOW
    if isinstance(error, InvalidImageError):
        if "is a DICOM file" in str(error):
            return (f"{name} is a DICOM file. This page takes pictures (JPEG, PNG, BMP or TIFF): export the image as "
                    "one from your viewer, or analyse DICOM files with the dermassist-client command.")
        if error.server_message:  # the service's own reason, without the step and tensor it came from
            return f"{name} cannot be analysed: {error.reason}"
        return error.reason.replace(str(path), name)  # refused here, before sending: the message names the file
    return f"{name} could not be analysed because of a fault in the service; try again, and tell the team if it goes on."


def analyze_file(client: DermAssistClient, path: str | None, refer_threshold: float | None = None) -> PageOutputs:
    """Handler of the Analyze button: triage banner, overlay, crop, CAM, probabilities, status and model lines.

    An image the server cannot assess is an answer (a NOT ASSESSABLE banner with its note), not an error; its
    status line says that what is shown below is not a diagnosis, and names no class as one.
    ``refer_threshold``: the served REFER threshold, when the page knows it (``dermassist demo`` does).
    """
    if not path:
        return _message(NO_FILE)
    try:
        result = client.analyze(path, with_crop=True)
    except DermAssistClientError as e:
        logger.info("analysis of %s failed: %s", path, e)
        return _message(f"**Could not analyze:** {plain_error(e, path)}", path)
    with Image.open(path) as original:
        overlay = draw_overlay(original, result)
    probabilities = {f"{c.name} ({c.code})": result.probabilities[c.code] for c in CLASSES}
    top = result.top_class
    share = f"{100 * result.probabilities[top.code]:.1f}%"
    named = (f"Most probable class: **{top.name} ({top.code})**, {share}." if result.label is not None
             else f"No diagnosis given; the highest class, {top.name} ({top.code}, {share}), is not one.")
    found = f"{NO_LESION} {named}" if not result.lesion_found else (
        f"Lesion found: {100 * result.lesion_fraction:.1f}% of the image, box {list(result.bbox.as_tuple())} "
        f"(original pixels). {named}"
    )
    caution = f"{NOT_RELIABLE}\n\n" if result.assessable is False else ""
    status = f"{caution}Result for **{Path(path).name}**. {found}"
    model = f"Answered by model `{result.model_name}` version `{result.model_version}` at `{client.config.url}`."
    crop = None if result.crop is None else np.asarray(result.crop)
    return PageOutputs(banner_html(verdict_of_result(result), refer_threshold), overlay, crop, draw_cam(result),
                       probabilities, status, model, path)


def build_demo(url: str, protocol: str = "grpc", timeout: float | None = None, retries: int = 1,
               refer_threshold: float | None = None, **options: Any) -> gr.Blocks:
    """The page, talking to the ensemble at ``url`` (``timeout`` None: ClientConfig's; ``options``: further
    ClientConfig fields, e.g. TLS). One retry by default, so a page whose server is down says so soon.
    ``refer_threshold``, when given, is the served REFER threshold the banner compares the score with.

    The examples sit under the introduction and the attribution at the foot of the page, so on a phone, where the
    columns stack, the answer comes straight after the Analyze button."""
    client = DermAssistClient(url, protocol, timeout=timeout, retries=retries, **options)
    examples = samples()
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=UPLOAD_RETENTION_S) as page:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
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
                overlay = gr.Image(label="Mask and box", type="pil", elem_id="overlay", interactive=False,
                                   alt_text=ALT_OVERLAY)
                with gr.Row():
                    crop = gr.Image(label="Crop the classifier saw (224x224)", elem_id="crop", interactive=False,
                                    alt_text=ALT_CROP)
                    cam = gr.Image(label="Where it looked (CAM)", type="pil", elem_id="cam", interactive=False,
                                   alt_text=ALT_CAM)
                gr.Markdown(CAM_LEGEND)
                label = gr.Label(label=PROBABILITIES_LABEL, num_top_classes=8, elem_id="probabilities",
                                 show_heading=False)
                model = gr.Markdown(elem_id="model")
                about = gr.Textbox(visible=False, elem_id="about")
        gr.Markdown(attribution_markdown(examples), elem_id="attribution")
        outputs = [banner, overlay, crop, cam, label, status, model, about]
        # always_last: Analyze pressed while an answer is pending analyses the picture then shown once that answer is in
        button.click(lambda path: tuple(analyze_file(client, path, refer_threshold)), inputs=[upload], outputs=outputs,
                     trigger_mode="always_last").then(
            None, inputs=[upload, *outputs], outputs=outputs, js=KEEP_IF_CURRENT_JS)
        upload.change(None, inputs=[upload], outputs=outputs, js=LOADED_JS)
    return page


def launch_demo(url: str, protocol: str = "grpc", host: str = DEMO_HOST, port: int = DEMO_PORT,
                timeout: float | None = None, retries: int = 1, refer_threshold: float | None = None,
                **options: Any) -> tuple[gr.Blocks, str]:
    """Build and start the page without blocking; returns it and its local URL. The footer has no link to Gradio's
    API page: the page is for people, and programs call the ensemble (docs/sdk.md)."""
    page = build_demo(url, protocol, timeout=timeout, retries=retries, refer_threshold=refer_threshold, **options)
    page.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                show_error=False, ssr_mode=False, footer_links=["gradio", "settings"])
    local_url = f"http://{host}:{page.server_port}/"
    logger.info("demo page at %s (server %s over %s)", local_url, url, protocol)
    return page, local_url
