"""The released real-data models, served: real dermoscopy gets meaningful, assessable answers, and the
served figures equal what the release recorded."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from tests.support.images import outside_circle

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_real_dermoscopy_is_assessable_and_non_dermoscopy_is_not(release_server, tmp_path: Path) -> None:
    import cv2

    from dermassist_client import DermAssistClient

    images = sorted((SHARED_DATA / "ham10000_sample" / "HAM10000_images_part_1").glob("*.jpg"))
    rng = np.random.default_rng(0)
    noise, text = tmp_path / "noise.png", tmp_path / "page.png"
    cv2.imwrite(str(noise), rng.integers(0, 256, (450, 600, 3), dtype=np.uint8))
    page = np.full((450, 600, 3), 245, np.uint8)
    for y in range(40, 420, 28):
        cv2.putText(page, "patient report summary result", (20, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 1)
    cv2.imwrite(str(text), page)
    with DermAssistClient(release_server.config.grpc_address, timeout=120) as client:
        real = client.analyze_batch(images)
        other = client.analyze_batch([noise, text])
    assessable = np.mean([r.assessable for r in real])
    assert assessable >= 0.85, [r.note for r in real if not r.assessable]
    assert all(r.lesion_found for r in real[:10])
    assert all(not r.assessable and "out-of-distribution" in r.note and r.refer for r in other)
    for r in real:
        assert abs(sum(r.probabilities.values()) - 1.0) < 1e-4
        assert r.refer_score == pytest.approx(sum(r.probabilities[c] for c in ("MEL", "BCC", "SCC", "AK")), abs=1e-5)


def test_served_test_split_figures_equal_the_release_record(release_server, tmp_path: Path) -> None:
    from dermassist.evaluation import EvaluationConfig, evaluate
    from training.release import RELEASE_DIR, read_release

    release = read_release(RELEASE_DIR)
    report = evaluate(EvaluationConfig(data=SHARED_DATA / "isic2018_task3", name="t3", out=tmp_path,
                                       url=release_server.config.grpc_address,
                                       split_manifest=RELEASE_DIR / release["data"]["splits"]["classifier"]))
    recorded = release["evaluation"]["classification_test"]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "melanoma_auc"):
        assert report["classification"][key] == pytest.approx(recorded[key], abs=1e-9), key
    served, recorded_triage = report["triage"], release["evaluation"]["triage_test"]
    assert set(recorded_triage) <= set(served)  # figures added to the report since the release was recorded come on top
    for key, value in recorded_triage.items():  # shares, counts and their intervals (JSON keeps tuples as lists)
        got = list(served[key]) if isinstance(served[key], tuple) else served[key]
        assert got == (value if value is None else pytest.approx(value, abs=1e-9)), key
    card = (RELEASE_DIR / "MODEL_CARD.md").read_text()
    assert f"{report['classification']['balanced_accuracy']:.3f}" in card
    assert json.loads((tmp_path / "t3" / "report.json").read_text())["images"] == 159


def test_a_round_lens_border_does_not_change_the_answer(release_server) -> None:
    """The black border a round dermatoscope lens leaves is filled in ``prepare``: the answer follows the lesion."""
    import io

    from PIL import Image

    from dermassist_client import DermAssistClient

    images = sorted((SHARED_DATA / "ham10000_sample" / "HAM10000_images_part_1").glob("*.jpg"))[:8]
    plain = [np.asarray(Image.open(path).convert("RGB")) for path in images]
    height, width = plain[0].shape[:2]
    outside = outside_circle(height, width, height / 2)  # a circle touching top and bottom
    lensed = []
    for rgb in plain:
        buffer = io.BytesIO()
        Image.fromarray(np.where(outside[..., None], 0, rgb).astype(np.uint8)).save(buffer, "JPEG", quality=92)
        lensed.append(buffer.getvalue())
    with DermAssistClient(release_server.config.grpc_address, timeout=120) as client:
        before = [client.analyze(path, with_crop=True) for path in images]
        after = [client.analyze(blob, with_crop=True) for blob in lensed]
    assert sum(a.top_class == b.top_class for a, b in zip(after, before)) >= 7
    assert sum(a.refer == b.refer for a, b in zip(after, before)) >= 7
    assert [a.assessable for a in after] == [b.assessable for b in before]
    for a, b in zip(after, before):  # no lens black in any crop: no more near-black pixels than without the border
        assert a.crop is not None and b.crop is not None
        assert np.mean(a.crop.max(axis=2) < 40) <= np.mean(b.crop.max(axis=2) < 40) + 0.01


def test_a_greyscale_photograph_gets_no_diagnosis(release_server) -> None:
    """A picture without colour is answered (not refused) as not assessable, referred, with the reason named;
    the same pictures in colour are assessable."""
    import io

    from PIL import Image

    from dermassist_client import DermAssistClient

    images = sorted((SHARED_DATA / "ham10000_sample" / "HAM10000_images_part_1").glob("*.jpg"))[:6]
    grey = []
    for path, mode in zip(images, ("L", "RGB") * 3):  # stored greyscale, and greyscale saved in colour
        buffer = io.BytesIO()
        Image.open(path).convert("L").convert(mode).save(buffer, "JPEG", quality=90)
        grey.append(buffer.getvalue())
    with DermAssistClient(release_server.config.grpc_address, timeout=120) as client:
        colour = client.analyze_batch(images)
        answers = client.analyze_batch(grey)
    assert all(r.assessable for r in colour), [r.note for r in colour]
    for r in answers:
        assert not r.assessable and r.refer and "no colour (greyscale)" in r.note, r.note


def test_a_phone_picture_in_display_p3_gets_the_answer_of_its_srgb_original(release_server) -> None:
    """The same pictures stored in a phone's colours (Display P3, profile embedded) are read as the sRGB they show:
    the served answers are those of the originals (the 8-bit round trip moves a pixel by at most two levels)."""
    import io

    from PIL import Image

    from dermassist_client import DermAssistClient
    from tests.support import icc

    images = sorted((SHARED_DATA / "ham10000_sample" / "HAM10000_images_part_1").glob("*.jpg"))[:6]
    originals, phones = [], []
    for path in images:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for target, pixels, profile in ((originals, rgb, None), (phones, icc.srgb_to_display_p3(rgb), icc.display_p3())):
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "PNG", **({"icc_profile": profile} if profile else {}))
            target.append(buffer.getvalue())
    with DermAssistClient(release_server.config.grpc_address, timeout=120) as client:
        before, after = client.analyze_batch(originals), client.analyze_batch(phones)
    for a, b in zip(after, before):
        assert (a.top_class, a.refer, a.assessable) == (b.top_class, b.refer, b.assessable)
        assert sum(abs(a.probabilities[k] - b.probabilities[k]) for k in b.probabilities) < 0.05


def test_a_melanoma_beside_a_larger_nevus_is_not_left_unassessed(release_server) -> None:
    """Only the largest lesion is classified: the melanoma of a two-lesion picture came back ROUTINE with nothing
    said. The picture is now not assessable (so referred) and the note says another lesion was not assessed."""
    import io
    import json

    from PIL import Image

    from dermassist_client import DermAssistClient
    from training.release import RELEASE_DIR, read_release

    folder = SHARED_DATA / "ph2" / "PH2Dataset" / "PH2 Dataset images"

    def picture(name: str) -> np.ndarray:
        return np.asarray(Image.open(folder / name / f"{name}_Dermoscopic_Image" / f"{name}.jpg").convert("RGB"))

    # PH2 melanoma and nevus (the larger lesion, ROUTINE alone), both of the 30 images the release's splits held out
    # from training. (Where two pictures' lesions touch at the join the mask spans both and both are classified.)
    melanoma, nevus = picture("IMD211"), picture("IMD381")
    release = read_release(RELEASE_DIR)
    for model in ("segmenter", "classifier"):
        split = json.loads((RELEASE_DIR / release["data"]["splits"][model]).read_text())
        held_out = {row["image_id"] for name, rows in split.items() if name.startswith("test") for row in rows}
        assert {"IMD211", "IMD381"} <= held_out, model
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate([melanoma[:572, :765], nevus[:572, :765]], axis=1)).save(buffer, "JPEG", quality=95)
    with DermAssistClient(release_server.config.grpc_address, timeout=120) as client:
        both = client.analyze(buffer.getvalue())
        alone = client.analyze(np.ascontiguousarray(nevus[:572, :765]))
    assert not both.assessable and both.refer, (both.top_class.code, both.note)
    assert "Another lesion-like area" in both.note and "photograph each lesion on its own" in both.note
    assert alone.assessable and "Another lesion-like area" not in alone.note, alone.note
    assert not alone.refer, (alone.top_class.code, alone.refer_score)  # the nevus alone: the melanoma makes the referral
