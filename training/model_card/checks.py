"""The card's checks beyond the tables: out-of-distribution images, the class activation map's faithfulness and the
quality gate on degraded copies of the release's test images, and the checks its evaluation skipped."""
from __future__ import annotations

from .text import fixed, percent

# How many of the test images (those of the CAM check) ``dermassist release`` degrades for the quality gate check.
QUALITY_CHECK_IMAGES = 40


def synthetic_line(ood: dict) -> str:
    """How many of the corpus's synthetic dermoscopy renderings came back not assessable ("" when none were in it)."""
    share = (ood.get("not_assessable_by_kind") or {}).get("synthetic_dermoscopy")
    return "" if share is None else f" Of its synthetic dermoscopy renderings, {percent(share)} came back not assessable."


def checks_lines(ev: dict, test_label: str) -> list[str]:
    """The paragraphs of the OOD, CAM and quality gate checks the release's evaluation ran (none for those it did not)."""
    lines: list[str] = []
    ood = ev.get("ood_test")
    if ood:
        lines += ["", f"Out of distribution: OOD_SCORE AUROC {fixed(ood['auroc'])} for {ood['images']} non-dermoscopic images "
                  f"(photographs, documents, plain and noise images, synthetic renderings) against the "
                  f"{ood['in_distribution_images']} {test_label} images." + synthetic_line(ood)
                  + " No clinical (non-dermoscopic) photograph of a skin lesion was among them: how well those are "
                  "caught is not measured."]
    cam, quality = ev.get("cam_faithfulness"), ev.get("quality_check")
    if cam:
        lines += ["", f"Class activation map: erasing the {cam['erased_share']:.0%} of the crop the CAM ranks highest "
                  f"lowered the top-class probability more than erasing as many random patches on "
                  f"{percent(cam['share_cam_beats_random'])} of {cam['images']} {test_label} crops (mean drop "
                  f"{fixed(cam['mean_drop_cam'])} against {fixed(cam['mean_drop_random'])})."]
    if quality:
        degraded = min(QUALITY_CHECK_IMAGES, cam["images"]) if cam else QUALITY_CHECK_IMAGES
        lines += ["", f"Quality gate on degraded copies of {degraded} test images: " + "; ".join(
            f"{kind}{' (' + v['how'] + ')' if v.get('how') else ''}: {percent(v['not_assessable'])} not assessable, note "
            f"names it for {percent(v['note_names_it'])}" for kind, v in quality.items())
            + ". Milder faults can pass the gate and change the answer: keep focus, exposure and white balance fixed."]
    return lines


def skipped_lines(skipped: dict[str, str]) -> list[str]:
    """The card's section naming each check the release's evaluation skipped and why (none for none)."""
    if not skipped:
        return []
    return ["## Checks not run", "", "The release's evaluation skipped these checks, so the figures above lack them:", "",
            *(f"- {name}: {why}." for name, why in skipped.items()), ""]

