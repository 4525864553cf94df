"""What a person sees, without a server: the triage verdict, its banner and text line, the CAM heat map."""
from __future__ import annotations

import html
import re
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from dermassist_client import ResultError
from dermassist_client.overlay import CAM_ALPHA, VIRIDIS, blend_cam, draw_cam, jet_colours, viridis_colours
from dermassist_client.result import build_result
from dermassist_client.verdict import (
    DISCLAIMER,
    NO_TRIAGE,
    NOT_ASSESSABLE,
    REFER,
    ROUTINE,
    banner_html,
    headline,
    shown_score,
    verdict_line,
    verdict_of,
    verdict_of_dict,
    verdict_of_result,
)

BLURRED = "Image too blurred: sharpness 0.40 of the minimum."
NO_LESION = "No lesion found: the whole image was classified."


def _result(**triage):
    probs = np.full((1, 8), 0.05, np.float32)
    probs[0, 3] = 0.65
    mask = np.zeros((1, 256, 256), np.uint8)
    outputs = {"PROBABILITIES": probs, "MASK": mask, "BBOX": np.array([[0, 0, 600, 450]], np.int32),
               "LESION_FRACTION": np.array([[0.0]], np.float32)}
    outputs.update(triage)
    return build_result(outputs, 0, (600, 450), "dermassist", "1")


# --- the verdict and its banner ---------------------------------------------------------------------

@pytest.mark.parametrize("refer, score, assessable, note, kind, line", [
    (True, 0.624, True, "", REFER, "REFER (refer score 62.4%)"),
    (False, 0.031, True, "", ROUTINE, "ROUTINE (refer score 3.1%)"),
    # not assessable: no score, as on the banner; whether it is referred anyway instead
    (True, 0.2, False, BLURRED, NOT_ASSESSABLE, f"NOT ASSESSABLE - REFER (the picture could not be assessed) - {BLURRED}"),
    (False, 0.2, False, BLURRED, NOT_ASSESSABLE,
     f"NOT ASSESSABLE (the picture could not be assessed: retake it) - {BLURRED}"),
    (None, 0.2, False, "", NOT_ASSESSABLE, "NOT ASSESSABLE (the picture could not be assessed: retake it)"),
    (False, 0.2, True, NO_LESION, ROUTINE, f"ROUTINE (refer score 20.0%) - {NO_LESION}"),
    (True, 0.9, True, NO_LESION, REFER, f"REFER (refer score 90.0%) - {NO_LESION}"),
    (None, None, None, "", NO_TRIAGE, "NO TRIAGE (no refer score)"),
])
def test_verdict_kind_and_line(refer, score, assessable, note, kind, line):
    verdict = verdict_of(refer, score, assessable, note)
    assert verdict.kind == kind and verdict.note == note
    assert verdict_line(verdict) == line


def test_the_routine_advice_says_what_it_does_not_rule_out():
    routine = verdict_of(False, 0.031, True)
    assert routine.advice == ("No referral indicated by the model. "
                              "This does not rule out melanoma: refer on clinical grounds as usual.")
    assert html.escape(routine.advice) in banner_html(routine)
    assert "rule out" not in verdict_of(True, 0.9, True).advice + verdict_of(False, 0.9, False, BLURRED).advice


@pytest.mark.parametrize("refer, assessable", [(True, True), (False, True), (True, False), (False, False),
                                               (None, False), (None, None)])
def test_the_text_line_shows_a_score_exactly_when_the_banner_does(refer, assessable):
    """One rule for both (``shown_score``): a picture that is not assessable gets no score on either."""
    verdict = verdict_of(refer, None if refer is None and assessable is None else 0.957, assessable, BLURRED)
    line, banner = verdict_line(verdict), banner_html(verdict, refer_threshold=0.0661)
    assert ("95.7%" in line) == ("95.7%" in banner) == (assessable is not False and refer is not None)
    assert (shown_score(verdict) is None) == (assessable is False or refer is None)


def test_not_assessable_wins_over_refer_and_says_whether_it_was_referred():
    referred = verdict_of(True, 0.9, False, BLURRED)
    kept = verdict_of(False, 0.9, False, BLURRED)
    assert referred.kind == kept.kind == NOT_ASSESSABLE
    assert "retake it" in referred.advice and "refer the patient to a dermatologist" in referred.advice
    assert referred.advice.startswith("Until a clear dermoscopic image is assessed, refer the patient")  # referral first
    assert "dermatologist" not in kept.advice


@pytest.mark.parametrize("refer, assessable, expected", [
    (True, False, "NOT ASSESSABLE - REFER"), (False, False, "NOT ASSESSABLE"), (None, False, "NOT ASSESSABLE"),
    (True, True, "REFER"), (False, True, "ROUTINE"), (None, None, "NO TRIAGE"),
])
def test_the_banner_and_the_text_line_lead_with_one_headline(refer, assessable, expected):
    """The page's headline is the command line's: a picture referred although not assessable says REFER in both."""
    verdict = verdict_of(refer, 0.5, assessable, BLURRED)
    assert headline(verdict) == expected
    assert verdict_line(verdict).startswith(f"{expected} (")
    assert re.search(r'class="verdict-kind"[^>]*>([^<]*)<', banner_html(verdict)).group(1) == expected
    # a real heading, the page's second level, so heading navigation finds the verdict again (accessibility audit, L1)
    assert re.search(r'<h2 class="verdict-kind"[^>]*>[^<]*</h2>', banner_html(verdict))


@pytest.mark.parametrize("refer, assessable, note, kind", [
    (True, True, "", REFER), (False, True, "", ROUTINE), (True, False, BLURRED, NOT_ASSESSABLE),
    (False, True, NO_LESION, ROUTINE), (None, None, "", NO_TRIAGE),
])
def test_banner_shows_verdict_score_note_and_disclaimer(refer, assessable, note, kind):
    score = None if refer is None else 0.4567
    verdict = verdict_of(refer, score, assessable, note)
    banner = banner_html(verdict)
    assert f">{headline(verdict)}<" in banner and verdict.kind in headline(verdict) and DISCLAIMER in banner
    # a picture that is not assessable shows no score: its score is not one to read
    shown = score is not None and kind != NOT_ASSESSABLE
    assert ("Refer score <strong style=\"color: #1f1f1f;\">45.7%</strong>" in banner) == shown
    assert ("verdict-note" in banner) == bool(note) and (note in banner)


@pytest.mark.parametrize("refer, score, kind, side", [(True, 0.07, REFER, "at or above"), (False, 0.054, ROUTINE, "below")])
def test_the_banner_says_which_side_of_the_served_threshold_the_score_is(refer, score, kind, side):
    banner = banner_html(verdict_of(refer, score, True), refer_threshold=0.0661)
    assert f"{100 * score:.1f}% is {side} the referral threshold, 6.6%, which is set on validation for melanoma" in banner
    unknown = banner_html(verdict_of(refer, score, True))  # a page that does not know the served threshold
    assert "referral threshold is set on validation for melanoma sensitivity" in unknown and "is below" not in unknown
    assert "threshold" not in banner_html(verdict_of(True, 0.9, False, BLURRED), refer_threshold=0.0661)


@pytest.mark.parametrize("refer, assessable", [(True, True), (False, True), (True, False), (None, None)])
def test_every_text_of_the_banner_carries_its_dark_colour_so_a_dark_page_theme_cannot_hide_it(refer, assessable):
    """Gradio's dark theme gives inner divs and <strong> a light text colour: on the light banner it would vanish."""
    banner = banner_html(verdict_of(refer, 0.5, assessable, BLURRED))
    tags = re.findall(r"<(div|strong)([^>]*)>", banner)
    assert len(tags) >= 5
    for name, attributes in tags:
        assert re.search(r"(?<!-)color: #[0-9a-f]{6}", attributes), (name, attributes)


def test_banners_of_different_verdicts_differ_in_colour():
    colours = {re.search(r"border-left: 10px solid (#[0-9a-f]{6})", banner_html(verdict_of(r, 0.5, a))).group(1)
               for r, a in ((True, True), (False, True), (True, False), (None, None))}
    assert len(colours) == 4


def test_banner_escapes_the_note():
    banner = banner_html(verdict_of(False, 0.1, False, "<script>alert(1)</script> & more"))
    assert "<script>" not in banner and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in banner


def test_verdict_of_a_result_equals_that_of_its_json_summary():
    result = _result(REFER=np.array([[True]]), REFER_SCORE=np.array([[0.62]], np.float32),
                     ASSESSABLE=np.array([[False]]), OOD_SCORE=np.array([[1.5]], np.float32),
                     NOTE=np.array([[BLURRED.encode()]], dtype=object))
    assert verdict_of_result(result) == verdict_of_dict(result.to_dict())
    assert verdict_of_result(result).kind == NOT_ASSESSABLE and verdict_of_result(result).note == BLURRED
    old = _result()
    assert verdict_of_result(old).kind == verdict_of_dict(old.to_dict()).kind == NO_TRIAGE


@pytest.mark.parametrize("triage, lesion_fraction, starts, contains", [
    ({"refer": True, "refer_score": 0.81, "assessable": True, "note": ""}, 0.1,
     "a.jpg: REFER (refer score 81.0%); MEL (Melanoma) p=0.650; lesion 10.0% of image", ()),
    ({"refer": False, "refer_score": 0.04, "assessable": True, "note": ""}, 0.1,
     "a.jpg: ROUTINE (refer score 4.0%); MEL", ()),
    ({"refer": True, "refer_score": 0.3, "assessable": False, "note": BLURRED}, 0.1,
     f"a.jpg: NOT ASSESSABLE - REFER (the picture could not be assessed) - {BLURRED.rstrip('.')}; no diagnosis given; "
     "lesion 10.0% of image", ()),
    ({"refer": False, "refer_score": 0.3, "assessable": False, "note": BLURRED}, 0.0,
     f"a.jpg: NOT ASSESSABLE (the picture could not be assessed: retake it) - {BLURRED.rstrip('.')}; "
     "no diagnosis given; NO LESION FOUND", ()),
    ({"refer": False, "refer_score": 0.2, "assessable": True, "note": NO_LESION}, 0.0,
     f"a.jpg: ROUTINE (refer score 20.0%) - {NO_LESION.rstrip('.')}; no diagnosis given; highest class MEL",
     ("NO LESION FOUND",)),
    ({"refer": None, "refer_score": None, "assessable": None, "note": ""}, 0.1,
     "a.jpg: NO TRIAGE (no refer score); MEL", ()),
])
def test_cli_summary_line_leads_with_the_verdict(triage, lesion_fraction, starts, contains):
    from dermassist_client.cli import summary_line

    result = _result(LESION_FRACTION=np.array([[lesion_fraction]], np.float32))
    summary = {**result.to_dict(), **triage}
    summary["diagnosis_given"] = triage["assessable"] is not False and lesion_fraction > 0  # as diagnosis_given says
    line = summary_line("a.jpg", summary)
    assert line.startswith(starts) and line.endswith("model dermassist v1") and "\n" not in line and ".;" not in line
    for fragment in contains:
        assert fragment in line
    if triage["assessable"] is False:  # neither the refer score nor a class figure, as the banner
        assert "refer score" not in line and "30.0%" not in line and "p=" not in line and "highest class" not in line


# --- the CAM heat map ---------------------------------------------------------------------------------

def test_jet_runs_dark_blue_to_dark_red_and_clips():
    got = jet_colours(np.array([-1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 2.0]))
    assert got.dtype == np.uint8 and got.shape == (7, 3)
    assert got.tolist() == [[0, 0, 128], [0, 0, 128], [0, 128, 255], [128, 255, 128], [255, 128, 0],
                            [128, 0, 0], [128, 0, 0]]
    ramp = jet_colours(np.linspace(0, 1, 256)).astype(int)
    assert np.argmax(ramp[:, 2]) < np.argmax(ramp[:, 1]) < np.argmax(ramp[:, 0])  # blue, then green, then red
    assert jet_colours(np.zeros((4, 5))).shape == (4, 5, 3)


def _luminance(rgb) -> float:
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (v / 255 for v in rgb)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_the_cam_map_runs_dark_purple_to_yellow_ever_lighter_and_clips():
    """Readable without colour vision: every step up the map is lighter (WCAG relative luminance), unlike jet."""
    got = viridis_colours(np.array([-1.0, 0.0, 1.0, 2.0]))
    assert got.dtype == np.uint8 and got.tolist() == [list(VIRIDIS[0])] * 2 + [list(VIRIDIS[-1])] * 2
    assert viridis_colours(np.array([0.125, 0.5])).tolist() == [list(VIRIDIS[1]), list(VIRIDIS[4])]
    ramp = [_luminance(rgb) for rgb in viridis_colours(np.linspace(0, 1, 65)).astype(int)]
    assert all(a < b for a, b in zip(ramp, ramp[1:])), ramp
    jet = [_luminance(rgb) for rgb in jet_colours(np.linspace(0, 1, 65)).astype(int)]
    assert any(a > b for a, b in zip(jet, jet[1:]))  # what viridis replaced: jet gets darker again towards red
    assert viridis_colours(np.zeros((4, 5))).shape == (4, 5, 3)


def test_cam_blend_leaves_ignored_pixels_alone_and_tints_the_peak():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    cam = np.zeros((224, 224), np.uint8)
    cam[100:120, 50:70] = 255
    cam[0:10, 0:10] = 128
    out = blend_cam(crop, cam)
    assert out.shape == crop.shape and out.dtype == np.uint8
    untouched = cam == 0
    assert np.array_equal(out[untouched], crop[untouched])
    peak = crop[110, 60].astype(float) * (1 - CAM_ALPHA) + np.array(VIRIDIS[-1]) * CAM_ALPHA
    assert np.abs(out[110, 60].astype(float) - peak).max() <= 0.5
    half = 128 / 255
    expected = (crop[5, 5].astype(float) * (1 - CAM_ALPHA * half)
                + viridis_colours(half).astype(float) * CAM_ALPHA * half)
    assert np.abs(out[5, 5].astype(float) - expected).max() <= 0.5
    grey = np.full((224, 224, 3), 200, np.uint8)
    tinted = blend_cam(grey, np.full((224, 224), 255, np.uint8))[0, 0].astype(int)
    assert tinted[0] > tinted[2] and tinted[1] > tinted[2]  # the peak reads yellow


@pytest.mark.parametrize("crop, cam, fragment", [
    (np.zeros((224, 224, 3), np.uint8), np.zeros((112, 112), np.uint8), "CAM must be a 224x224 uint8"),
    (np.zeros((224, 224, 3), np.uint8), np.zeros((224, 224), np.float32), "dtype float32"),
    (np.zeros((224, 224), np.uint8), np.zeros((224, 224), np.uint8), "crop must be an HxWx3 uint8"),
    (np.zeros((224, 224, 3), np.float32), np.zeros((224, 224), np.uint8), "crop must be an HxWx3 uint8"),
])
def test_cam_blend_rejects_mismatched_arrays(crop, cam, fragment):
    with pytest.raises(ResultError, match=fragment):
        blend_cam(crop, cam)


def test_draw_cam_needs_both_crop_and_cam():
    crop = np.full((1, 224, 224, 3), 90, np.uint8)
    cam = np.zeros((1, 224, 224), np.uint8)
    cam[0, 50:60, 50:60] = 255
    with_both = _result(CROP=crop, CAM=cam)
    image = draw_cam(with_both)
    assert isinstance(image, Image.Image) and image.size == (224, 224)
    assert np.asarray(image)[55, 55, 0] > 90 and tuple(np.asarray(image)[0, 0]) == (90, 90, 90)
    assert draw_cam(_result(CROP=crop)) is None and draw_cam(_result()) is None
    assert draw_cam(replace(with_both, crop=None)) is None


def test_the_page_says_a_picture_over_the_message_limit_is_too_large(tmp_path):
    """It showed gRPC's 'CLIENT: Sent message larger than max (629379454 vs. 268435456)' (fuzz audit 4)."""
    from dermassist_client import RequestTooLargeError
    from dermassist_client.demo import plain_error

    picture = tmp_path / "lesion.jpg"
    picture.write_bytes(b"\xff\xd8" + b"\0" * 3_000_000)
    grpc_words = "CLIENT: Sent message larger than max (629379454 vs. 268435456)"
    error = RequestTooLargeError(f"analyzing 1 image(s): the request is larger than the gRPC message limit ({grpc_words})",
                                 server_message=grpc_words)
    assert plain_error(error, str(picture)) == ("lesion.jpg (3 MB) is too large to send to the service. Save a smaller "
                                                "copy (a JPEG of the picture) and try again.")


def test_the_page_says_why_a_picture_failed_in_plain_words():
    from dermassist_client import DeadlineExceededError, InvalidImageError, ServerError, ServerUnavailableError
    from dermassist_client.demo import TOO_SLOW, UNREACHABLE, plain_error

    path = "/tmp/gradio/abc123/lesion.jpg"
    server = InvalidImageError(
        "analyzing 1 image(s) (request 84ff): the server rejected the image: in ensemble 'dermassist', prepare: "
        "IMAGE row 0: input of 300 bytes ends before its end marker; the file is truncated",
        server_message="in ensemble 'dermassist', prepare: IMAGE row 0: input of 300 bytes ends before its end marker; "
                       "the file is truncated")
    assert plain_error(server, path) == ("lesion.jpg cannot be analysed: input of 300 bytes ends before its end marker; "
                                         "the file is truncated")
    local = InvalidImageError(f"{path} is not an image (12 bytes, first bytes 74 65); expected a JPEG, PNG, BMP or TIFF")
    # the bytes are for the log: a clinician reads the reason (a demo page audit: "first bytes 50 61 74 69 ...")
    assert plain_error(local, path) == "lesion.jpg is not an image; expected a JPEG, PNG, BMP or TIFF"
    dicom = InvalidImageError(f"{path} is a DICOM file, not an encoded image; analyse it with `dermassist-client ...")
    assert "lesion.jpg is a DICOM file. This page takes pictures" in plain_error(dicom, path)
    assert plain_error(ServerUnavailableError("… ipv4:127.0.0.1:18101 Connection refused; ssl=True …"), path) == UNREACHABLE
    assert plain_error(DeadlineExceededError("…"), path) == TOO_SLOW
    assert "fault in the service" in plain_error(ServerError("unexpected RuntimeError"), path)
    for shown in (plain_error(server, path), plain_error(local, path)):
        assert "/tmp/gradio" not in shown and "request" not in shown and "IMAGE row" not in shown


def test_the_cam_says_in_words_where_it_is_hottest() -> None:
    """Accessibility audit, M2: the map's alt text was one sentence for every picture, and as drawn over a dark lesion
    its hot area differed in lightness from the rest by 1.0-1.4:1, so without colour vision it said nothing."""
    from dermassist_client.overlay import cam_hotspot

    cam = np.zeros((224, 224), np.uint8)
    cam[10:40, 5:35] = 255  # 900 of 50,176 pixels, in the upper left
    cam[40:60, 5:35] = 140
    assert cam_hotspot(cam) == "hottest in the upper left of the crop; 3% of the crop is at least half as hot"
    middle = np.zeros((224, 224), np.uint8)
    middle[100:124, 100:124] = 200
    assert cam_hotspot(middle).startswith("hottest in the middle of the crop; 1% of the crop")
    right = np.zeros((9, 9), np.uint8)
    right[4, 8] = 9
    assert cam_hotspot(right).startswith("hottest on the right")
    assert cam_hotspot(np.zeros((7, 7), np.uint8)) == "empty: nothing in the crop raised the top class"
    apart = np.zeros((224, 224), np.uint8)  # two hot areas apart: the peak is named, not their cold middle
    apart[100:124, 5:30] = 250
    apart[100:124, 190:215] = 255
    assert cam_hotspot(apart).startswith("hottest on the right of the crop")
