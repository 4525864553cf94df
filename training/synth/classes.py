"""Class-dependent appearance of synthetic lesions: priors, colours, size, border and structures.

Ranges overlap between neighbouring classes (NV/MEL, AK/SCC, BKL/MEL, BCC/SCC) and a lesion may
borrow one trait from a confuser class, so a classifier cannot be perfect.
"""
from __future__ import annotations

from dataclasses import dataclass

from preprocess.contract import CLASS_CODES

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ClassStyle:
    """How one class looks: colour palette, radius as a fraction of the short side, border, structures."""

    code: str
    prior: float
    palette: tuple[RGB, ...]
    radius: tuple[float, float]
    irregularity: tuple[float, float]
    softness: tuple[float, float]  # border blur in pixels at 600x450
    structures: tuple[str, ...]
    confuser: str


STYLES: dict[str, ClassStyle] = {
    s.code: s
    for s in (
        ClassStyle("AK", 0.08, ((200, 105, 95), (185, 95, 90), (210, 125, 110)), (0.15, 0.28), (0.05, 0.10),
                   (6.0, 10.0), ("red_network", "scale", "follicles"), "SCC"),
        ClassStyle("BCC", 0.09, ((212, 150, 145), (196, 138, 132), (222, 165, 155)), (0.12, 0.24), (0.05, 0.10),
                   (3.0, 6.0), ("arborizing", "ovoid_nests"), "SCC"),
        ClassStyle("DF", 0.07, ((172, 122, 88), (158, 108, 78), (185, 135, 98)), (0.09, 0.16), (0.02, 0.05),
                   (4.0, 7.0), ("fine_network", "central_scar"), "NV"),
        ClassStyle("MEL", 0.13, ((72, 42, 32), (48, 30, 28), (98, 60, 42)), (0.20, 0.36), (0.09, 0.18),
                   (2.0, 5.0), ("coarse_network", "black_dots", "blue_veil", "regression"), "NV"),
        ClassStyle("NV", 0.40, ((150, 96, 62), (122, 76, 46), (168, 114, 74)), (0.13, 0.26), (0.02, 0.06),
                   (2.0, 4.0), ("fine_network", "brown_globules"), "MEL"),
        ClassStyle("BKL", 0.12, ((168, 124, 84), (142, 102, 66), (186, 146, 102)), (0.15, 0.30), (0.04, 0.08),
                   (1.0, 2.5), ("cerebriform", "milia", "comedo"), "MEL"),
        ClassStyle("SCC", 0.055, ((218, 160, 150), (204, 142, 132), (226, 172, 160)), (0.15, 0.30), (0.06, 0.12),
                   (3.0, 6.0), ("keratin", "dotted_vessels", "blood_spots"), "AK"),
        ClassStyle("VASC", 0.055, ((160, 40, 62), (122, 32, 72), (188, 58, 72)), (0.08, 0.19), (0.03, 0.07),
                   (1.0, 2.5), ("lacunae",), "BCC"),
    )
}
if sorted(STYLES) != sorted(CLASS_CODES):
    raise RuntimeError(f"synthetic styles {sorted(STYLES)} must cover the contract classes {sorted(CLASS_CODES)}")

PRIORS: tuple[float, ...] = tuple(STYLES[c].prior / sum(s.prior for s in STYLES.values()) for c in CLASS_CODES)

# Dermoscopic skin under polarised light, phototypes I-VI, weighted like HAM10000 (mostly light).
SKIN_TONES: tuple[RGB, ...] = (
    (236, 200, 186), (226, 182, 162), (212, 162, 132), (188, 138, 104), (152, 104, 78), (110, 74, 54)
)
SKIN_WEIGHTS: tuple[float, ...] = (0.24, 0.30, 0.22, 0.12, 0.08, 0.04)
