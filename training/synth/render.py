"""Vectorised renderer of one synthetic dermoscopy image and its lesion mask (numpy + OpenCV).

Speed comes from a fixed bank of precomputed noise fields (each image takes random windows of
them), drawing primitives with OpenCV, and blurring at half resolution.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from .classes import RGB, SKIN_TONES, SKIN_WEIGHTS, STYLES, ClassStyle

BANK_SIDE = 1024
_BANK_SCALES = {"fine": 0, "mid": 128, "net": 64, "coarse": 24, "blob": 10}


@functools.lru_cache(maxsize=1)
def _noise_bank() -> dict[str, np.ndarray]:
    """Smooth noise fields in roughly [-1, 1], fixed once per process (seed 1234)."""
    rng = np.random.default_rng(1234)
    bank = {}
    for name, cells in _BANK_SCALES.items():
        if cells == 0:
            field: np.ndarray = rng.standard_normal((BANK_SIDE, BANK_SIDE), dtype=np.float32) * np.float32(0.5)
        else:
            low = rng.standard_normal((cells, cells), dtype=np.float32)
            field = np.asarray(cv2.resize(low, (BANK_SIDE, BANK_SIDE), interpolation=cv2.INTER_CUBIC), np.float32)
            field /= np.float32(max(1e-6, float(np.abs(field).max())))
        bank[name] = np.ascontiguousarray(field)
    return bank


@functools.lru_cache(maxsize=4)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return xx, yy


def _window(rng: np.random.Generator, name: str, h: int, w: int) -> np.ndarray:
    bank = _noise_bank()[name]
    y = int(rng.integers(0, BANK_SIDE - h))
    x = int(rng.integers(0, BANK_SIDE - w))
    return bank[y : y + h, x : x + w]


def _colour(rgb: RGB) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float32) / np.float32(255.0)


@dataclass(frozen=True)
class View:
    """Where and how a lesion is seen: centre, radius in pixels, rotation."""

    cx: float
    cy: float
    radius: float
    angle: float
    elongation: float

    def to_image(self, pts: np.ndarray) -> np.ndarray:
        """Map lesion-local points (unit disc) to image pixels."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        x = pts[:, 0] * self.elongation
        y = pts[:, 1]
        return np.stack([self.cx + self.radius * (c * x - s * y), self.cy + self.radius * (s * x + c * y)], axis=1)


def _local_points(rng: np.random.Generator, n: int, r_lo: float, r_hi: float) -> np.ndarray:
    theta = rng.uniform(0, 2 * np.pi, n)
    r = np.sqrt(rng.uniform(r_lo**2, r_hi**2, n))
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


class _Canvas:
    """Lesion colour field being built plus helpers to paint structures on it."""

    def __init__(self, h: int, w: int, lrng: np.random.Generator, view: View) -> None:
        self.h, self.w, self.lrng, self.view = h, w, lrng, view
        self.field: np.ndarray | None = None
        self.depth: np.ndarray | None = None

    def layer(self) -> np.ndarray:
        return np.zeros((self.h, self.w), dtype=np.uint8)

    def mix(self, amount: np.ndarray, rgb: RGB, strength: float) -> None:
        """Blend the field towards a colour by ``amount`` (0..1 float map, or uint8 0..255)."""
        a = amount.astype(np.float32) * np.float32(strength / 255.0 if amount.dtype == np.uint8 else strength)
        self.field += (_colour(rgb) - self.field) * a[..., None]

    def dots(self, layer: np.ndarray, n: int, r_lo: float, r_hi: float, rad_px: tuple[float, float]) -> np.ndarray:
        pts = self.view.to_image(_local_points(self.lrng, n, r_lo, r_hi))
        radii = self.lrng.uniform(*rad_px, n)
        for (x, y), r in zip(pts, radii):
            cv2.circle(layer, (int(x * 4), int(y * 4)), max(1, int(r * 4)), (255,), -1, cv2.LINE_AA, shift=2)
        return layer

    def ridges(self, name: str, width: float) -> np.ndarray:
        noise = _window(self.lrng, name, self.h, self.w)
        return np.clip(np.float32(1.0) - np.abs(noise) * np.float32(1.0 / width), 0.0, 1.0)


def _paint(canvas: _Canvas, structure: str, style: ClassStyle) -> None:
    """Paint one named dermoscopic structure onto the lesion colour field."""
    rng, depth, R = canvas.lrng, canvas.depth, canvas.view.radius
    if depth is None:
        raise RuntimeError("structures are painted after the lesion's depth map is made")
    if structure == "fine_network":
        canvas.mix(canvas.ridges("mid", 0.22), (70, 40, 28), rng.uniform(0.35, 0.55))
    elif structure == "coarse_network":
        width = 0.2 + 0.25 * np.abs(_window(rng, "blob", canvas.h, canvas.w))
        canvas.mix(np.clip(1 - np.abs(_window(rng, "net", canvas.h, canvas.w)) / width, 0, 1), (25, 15, 15), 0.6)
    elif structure == "brown_globules":
        canvas.mix(canvas.dots(canvas.layer(), int(rng.integers(5, 18)), 0.0, 0.8, (0.03 * R, 0.06 * R)), (95, 55, 35), 0.6)
    elif structure == "black_dots":
        canvas.mix(canvas.dots(canvas.layer(), int(rng.integers(15, 45)), 0.4, 1.0, (1.5, 4.0)), (15, 10, 12), 0.9)
    elif structure == "blue_veil":
        veil = np.clip(_window(rng, "blob", canvas.h, canvas.w) * 3.0 - 0.3, 0, 1) * np.minimum(depth * 3, 1)
        canvas.mix(veil, (105, 118, 150), 0.75)
    elif structure == "regression":
        patch = np.clip(_window(rng, "blob", canvas.h, canvas.w) * 3.0 - 1.0, 0, 1)
        canvas.mix(patch, (205, 195, 200), 0.6)
    elif structure == "cerebriform":
        canvas.mix(canvas.ridges("net", 0.3), (90, 62, 40), 0.5)
        canvas.mix(np.clip(_window(rng, "net", canvas.h, canvas.w) * 2.0, 0, 1), (205, 170, 130), 0.35)
    elif structure == "milia":
        canvas.mix(canvas.dots(canvas.layer(), int(rng.integers(4, 14)), 0.0, 0.85, (2.0, 5.0)), (238, 232, 208), 0.85)
    elif structure == "comedo":
        canvas.mix(canvas.dots(canvas.layer(), int(rng.integers(3, 10)), 0.0, 0.85, (2.0, 5.0)), (60, 38, 25), 0.8)
    elif structure == "arborizing":
        layer = canvas.layer()
        for _ in range(int(rng.integers(3, 8))):
            p = _local_points(rng, 1, 0.6, 0.95)[0]
            heading = np.arctan2(-p[1], -p[0]) + rng.uniform(-0.5, 0.5)
            steps = [p]
            for _ in range(12):
                heading += rng.uniform(-0.6, 0.6)
                steps.append(steps[-1] + 0.08 * np.array([np.cos(heading), np.sin(heading)]))
            pts = canvas.view.to_image(np.array(steps))
            cv2.polylines(layer, [np.round(pts).astype(np.int32)], False, (255,), int(rng.integers(1, 3)), cv2.LINE_AA)
        canvas.mix(layer, (185, 22, 38), 0.9)
    elif structure == "ovoid_nests":
        layer = canvas.layer()
        for (x, y) in canvas.view.to_image(_local_points(rng, int(rng.integers(1, 5)), 0.0, 0.7)):
            axes = (int(rng.uniform(0.08, 0.18) * R), int(rng.uniform(0.05, 0.12) * R))
            cv2.ellipse(layer, (int(x), int(y)), axes, float(rng.uniform(0, 180)), 0, 360, (255,), -1, cv2.LINE_AA)
        canvas.mix(layer, (88, 98, 122), 0.75)
    elif structure == "red_network":
        canvas.mix(canvas.ridges("mid", 0.3), (185, 55, 55), 0.55)
    elif structure == "scale":
        canvas.mix(np.clip(_window(rng, "coarse", canvas.h, canvas.w) * 3.0 - 0.6, 0, 1), (240, 230, 212), 0.8)
    elif structure == "follicles":
        canvas.mix(canvas.dots(canvas.layer(), int(rng.integers(10, 30)), 0.0, 0.9, (2.0, 4.0)), (236, 222, 180), 0.8)
    elif structure == "keratin":
        core = np.clip((depth - 0.25) * 4.0 + _window(rng, "coarse", canvas.h, canvas.w) * 0.8, 0, 1)
        canvas.mix(core, (242, 228, 192), 0.85)
    elif structure == "dotted_vessels":
        canvas.mix(canvas.dots(canvas.layer(), int(rng.integers(20, 60)), 0.45, 1.0, (1.0, 2.5)), (175, 25, 35), 0.9)
    elif structure == "blood_spots":
        canvas.mix(canvas.dots(canvas.layer(), int(rng.integers(1, 4)), 0.0, 0.6, (0.05 * R, 0.1 * R)), (105, 18, 24), 0.85)
    elif structure == "central_scar":
        scar = np.clip((depth - 0.35) * 5.0 + _window(rng, "coarse", canvas.h, canvas.w) * 0.6, 0, 1)
        canvas.mix(scar, (232, 214, 204), 0.85)
    elif structure == "lacunae":
        canvas.mix(np.ones((canvas.h, canvas.w), np.float32), (222, 190, 195), 0.35)
        for shade in ((170, 35, 60), (105, 22, 62)):
            canvas.mix(canvas.dots(canvas.layer(), int(rng.integers(6, 16)), 0.0, 0.9, (0.08 * R, 0.2 * R)), shade, 0.85)
    else:
        raise ValueError(f"unknown structure {structure!r} for class {style.code}")


def _contour(lrng: np.random.Generator, irregularity: float) -> np.ndarray:
    theta = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 9):
        r += irregularity * lrng.uniform(0.3, 1.0) / np.sqrt(k - 1) * np.cos(k * theta + lrng.uniform(0, 2 * np.pi))
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def _skin(vrng: np.random.Generator, h: int, w: int) -> np.ndarray:
    tone = _colour(SKIN_TONES[int(vrng.choice(len(SKIN_TONES), p=SKIN_WEIGHTS))]) * vrng.uniform(0.94, 1.06, 3).astype(np.float32)
    tex = (np.float32(vrng.uniform(0.05, 0.09)) * _window(vrng, "coarse", h, w)
           + np.float32(0.035) * _window(vrng, "mid", h, w) + np.float32(0.045) * _window(vrng, "fine", h, w))
    tex += np.float32(1.0)
    return cv2.merge([tex * tone[0], tex * tone[1], tex * tone[2]])


def _hairs(img: np.ndarray, vrng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    n = int(vrng.choice([0, 0, 2, 5, 10, 20]) + vrng.integers(0, 4))
    t = np.linspace(0, 1, 16)[:, None]
    for _ in range(n):
        p0, p2 = vrng.uniform([0, 0], [w, h]), vrng.uniform([0, 0], [w, h])
        p1 = (p0 + p2) / 2 + vrng.normal(0, 60, 2)
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        shade = float(vrng.uniform(0.05, 0.3))
        cv2.polylines(img, [np.round(pts).astype(np.int32)], False, (shade * 0.9, shade * 0.7, shade * 0.6),
                      int(vrng.integers(1, 4)), cv2.LINE_AA)


def _bubbles_and_glare(img: np.ndarray, vrng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    for _ in range(int(vrng.choice([0, 0, 1, 2, 4]))):
        c = (int(vrng.uniform(0, w)), int(vrng.uniform(0, h)))
        r = int(vrng.uniform(6, 40))
        cv2.circle(img, c, r, (0.95, 0.95, 0.95), int(vrng.integers(1, 3)), cv2.LINE_AA)
        cv2.circle(img, (c[0] - r // 3, c[1] - r // 3), max(1, r // 6), (1.0, 1.0, 1.0), -1, cv2.LINE_AA)
    for _ in range(int(vrng.choice([0, 1, 3]))):
        c = (int(vrng.uniform(0, w)), int(vrng.uniform(0, h)))
        cv2.ellipse(img, c, (int(vrng.uniform(2, 9)), int(vrng.uniform(1, 4))), float(vrng.uniform(0, 180)), 0, 360,
                    (1.0, 1.0, 1.0), -1, cv2.LINE_AA)


def _optics(img: np.ndarray, vrng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    qh, qw = h // 4, w // 4
    xx, yy = _grid(qh, qw)
    cx, cy = (w / 2 + vrng.normal(0, 12)) / 4, (h / 2 + vrng.normal(0, 10)) / 4
    d = np.sqrt((xx - np.float32(cx)) ** 2 + (yy - np.float32(cy)) ** 2) * np.float32(1.0 / (qw / 2))
    gain = np.float32(vrng.uniform(0.85, 1.08)) * (np.float32(1.0) - np.float32(vrng.uniform(0.05, 0.25)) * d * d)
    if vrng.random() < 0.6:
        edge = np.float32(vrng.uniform(0.82, 1.05))
        gain *= np.clip((edge - d) * np.float32(25.0), 0.0, 1.0)
    cast = vrng.uniform(0.95, 1.05, 3).astype(np.float32)
    full = cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.multiply(img, cv2.merge([full * cast[0], full * cast[1], full * cast[2]]))


@dataclass(frozen=True)
class Rendered:
    """One synthetic image (RGB uint8) with its lesion mask (uint8 0/255) and class code."""

    image: np.ndarray
    mask: np.ndarray
    code: str


def render(code: str, lesion_seed: int, view_seed: int, width: int = 600, height: int = 450) -> Rendered:
    """Render one view of one lesion: the lesion seed fixes the lesion, the view seed the photo."""
    style = STYLES[code]
    lrng, vrng = np.random.default_rng(lesion_seed), np.random.default_rng(view_seed)
    confuser = STYLES[style.confuser]
    borrow = lrng.random()
    palette = style.palette
    structures = list(style.structures)
    if borrow < 0.08:
        palette = confuser.palette
    elif borrow < 0.16:
        structures.append(str(lrng.choice(confuser.structures)))
    mix = lrng.dirichlet(np.ones(len(palette)))
    base = (np.asarray(palette, np.float32) * mix[:, None].astype(np.float32)).sum(axis=0)
    short = min(width, height)
    view = View(
        cx=width / 2 + vrng.normal(0, 0.07 * width),
        cy=height / 2 + vrng.normal(0, 0.07 * height),
        radius=lrng.uniform(*style.radius) * short * vrng.uniform(0.88, 1.12),
        angle=lrng.uniform(0, 2 * np.pi) + vrng.uniform(-0.6, 0.6),
        elongation=lrng.uniform(1.0, 1.35),
    )
    contour = view.to_image(_contour(lrng, lrng.uniform(*style.irregularity)))
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(contour * 4).astype(np.int32)], (255,), cv2.LINE_8, shift=2)
    sigma = float(lrng.uniform(*style.softness))
    pad = int(3 * sigma) + 4
    x0, y0 = (max(0, int(v) - pad) for v in contour.min(axis=0))
    x1, y1 = int(min(width, contour[:, 0].max() + pad + 1)), int(min(height, contour[:, 1].max() + pad + 1))
    skin = _skin(vrng, height, width)
    img = skin
    if x1 - x0 > 2 and y1 - y0 > 2:
        roi_mask = mask[y0:y1, x0:x1]
        rh, rw = roi_mask.shape
        local = View(view.cx - x0, view.cy - y0, view.radius, view.angle, view.elongation)
        alpha = cv2.GaussianBlur(roi_mask.astype(np.float32) * np.float32(1 / 255), (0, 0), sigma / 2 + 0.5)
        canvas = _Canvas(rh, rw, lrng, local)
        dist = cv2.distanceTransform(roi_mask, cv2.DIST_L2, 3) * np.float32(1.0 / max(view.radius, 1.0))
        canvas.depth = np.minimum(dist, np.float32(1.0))
        variation = np.float32(1.0) + np.float32(0.16) * _window(lrng, "blob", rh, rw)
        field = (base / np.float32(255.0)) * variation[..., None]
        field *= (np.float32(1.0) - np.float32(lrng.uniform(0.0, 0.25)) * canvas.depth)[..., None]
        canvas.field = field
        for s in structures:
            _paint(canvas, s, style)
        opacity = np.float32(vrng.uniform(0.78, 0.95))
        roi_skin = skin[y0:y1, x0:x1]
        a = (alpha * opacity)[..., None]
        img[y0:y1, x0:x1] = roi_skin + (canvas.field - roi_skin) * a
    _hairs(img, vrng)
    _bubbles_and_glare(img, vrng)
    img = _optics(img, vrng)
    out = cv2.convertScaleAbs(img, alpha=255.0)
    return Rendered(out, mask, code)
