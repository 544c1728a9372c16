"""Built-in ROP fundus phantom: a RetCam-like posterior-pole photograph with its exact vessel mask.

One seed fixes one premature infant's eye, built in three steps, each with its own random stream
(so labels are drawn without rendering and geometry does not depend on the output size):

1. labels: laterality and plus-disease severity (about 82% normal, 15% pre-plus, 3% plus, the
   i-ROP class balance), and a continuous severity knob `plus_score` in [0, 1].
2. geometry, in image widths: disc, fovea and a vessel tree of temporal arcades spiralling round
   the macula, nasal trunks, papillomacular twigs and side branches split by Murray's law
   (w^3 = w1^3 + w2^3, at Murray's optimal angles). Plus disease dilates the veins (the
   arteries a little) and adds a sinusoidal tortuosity to the posterior-pole trunks, fading
   away from the disc.
3. pixels: vessels as exact-width antialiased polygons, giving both their opacity and the exact
   mask (``_rasterise``); then texture, faint choroid, dark macula, disc with cup, vignetting,
   haze, colour and gamma variation, noise, black outside a circular field of view.

Numbers follow jannessm/RetinaSynthesis and the vessel-synthesis literature (Fiorini et al.
2014, Menti et al. 2016, Costa et al. 2017) for the tree, textbook calibres (CRVE about 220,
CRAE about 150 micrometres on a 1.8 mm disc) for the widths, tuned by eye against
skimage.data.retina(). ``benchmarks/bench_data.py`` measures the cost per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pggan_core.data.types import FundusImage
from pggan_core.errors import ConfigError

SEVERITIES = ("normal", "pre-plus", "plus")
SEVERITY_PROBS = (0.82, 0.15, 0.03)  # i-ROP reference-standard diagnoses (Brown et al. 2018)
SCORE_RANGES = {"normal": (0.0, 0.25), "pre-plus": (0.3, 0.6), "plus": (0.65, 1.0)}

FOV_RADIUS = 0.47  # field of view radius, image widths
STEP = 0.004  # vessel centreline step, image widths (2 px at 512)
MIN_WIDTH = 0.0018  # vessels thinner than this end (0.9 px at 512)
ARTERY, VEIN = 0, 1
MIN_SIZE, MAX_SIZE = 64, 1024  # below 64 px nearly every vessel is sub-pixel
SHIFT = 4  # fractional bits of cv2's sub-pixel drawing
AA_SPREAD = 1.33  # how much cv2's antialiased fill widens a polygon, in pixels (measured)
MIN_DRAWN = 0.4  # narrowest outline drawn, in fine pixels
MASK_MIN_PX = 0.3  # vessels this wide (output pixels) darken green by ~15%: visible, so masked

# Base reflectance of an infant fundus and vessel colours as fractions of it.
BASE_RGB = np.array([0.82, 0.36, 0.18], np.float32)
# Vessels barely darken red (near saturation in fundus photographs) and show mostly in green.
# Textbook colours looked brown, so these match skimage.data.retina()'s vessel/background ratios
# by eye (vein ~0.8/0.4/0.55 once drawn at opacity).
VEIN_REL = np.array([0.76, 0.3, 0.47], np.float32)
ARTERY_REL = np.array([0.87, 0.5, 0.6], np.float32)


def sample_fundus_labels(seed: int, severity: str | None = None) -> dict[str, Any]:
    """Phantom `seed`'s labels, exactly as render_fundus(seed) uses them, without rendering:
    laterality ("OD" / "OS"), plus_severity, plus_score. `severity` forces the class (the score
    is drawn in its range). ConfigError for an unknown severity or a non-integer or negative seed.
    """
    if severity is not None and severity not in SEVERITIES:
        raise ConfigError(f"fundus phantom: unknown severity {severity!r}; use one of "
                          f"{', '.join(SEVERITIES)}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"fundus phantom: seed {seed!r} must be a non-negative integer")
    rng = np.random.default_rng([int(seed), 0])
    laterality = "OD" if rng.random() < 0.5 else "OS"
    drawn = SEVERITIES[int(rng.choice(3, p=SEVERITY_PROBS))]
    plus_severity = severity or drawn
    low, high = SCORE_RANGES[plus_severity]
    plus_score = float(rng.uniform(low, high))
    return {"laterality": laterality, "plus_severity": plus_severity, "plus_score": plus_score}


@dataclass
class _Vessel:
    """One unbranched piece of vessel: centreline points (N, 2) in image widths, x right, y down."""

    points: np.ndarray
    width: float
    kind: int  # ARTERY or VEIN


@dataclass
class _Eye:
    """Where things are, in image widths."""

    fovea: np.ndarray
    disc: np.ndarray
    disc_radius: float
    side: int  # +1: disc on the image's right (OD), -1: on the left (OS)
    faz_radius: float


# ---------------------------------------------------------------------------------- geometry


def _eye(rng: np.random.Generator, laterality: str) -> _Eye:
    """Disc and fovea: a RetCam posterior-pole view, so the disc-fovea distance is short."""
    side = 1 if laterality == "OD" else -1
    disc_fovea = rng.uniform(0.15, 0.19)
    middle = np.array([0.5, 0.5]) + rng.normal(0.0, 0.015, 2)
    fovea = middle - [side * disc_fovea / 2, 0.0]
    disc = middle + [side * disc_fovea / 2, -rng.uniform(0.0, 0.025)]  # disc a little higher
    disc_radius = disc_fovea / rng.uniform(2.0, 2.4) / 2
    return _Eye(fovea, disc, disc_radius, side, faz_radius=rng.uniform(0.025, 0.035))


def _smooth_noise_1d(rng: np.random.Generator, n: int, taps: int) -> np.ndarray:
    """Unit-variance noise smoothed over `taps` samples (moving average, variance restored)."""
    raw = rng.standard_normal(n + taps)
    return np.convolve(raw, np.full(taps, 1 / math.sqrt(taps)), mode="valid")[:n]


def _walk(rng: np.random.Generator, start: np.ndarray, heading: float, length: float,
          wiggle: float, target: float | None = None) -> np.ndarray:
    """A gently meandering path: the heading relaxes from `heading` toward `target` (retinal
    vessels run away from the disc) plus a slow bend and smoothed random turns."""
    n = max(2, int(length / STEP))
    travelled = STEP * np.arange(n)
    headings = np.full(n, heading)
    if target is not None:
        offset = math.remainder(heading - target, 2 * math.pi)
        headings = target + offset * np.exp(-travelled / 0.08)
    turns = rng.normal(0.0, 0.6) * STEP + wiggle * math.sqrt(STEP) * _smooth_noise_1d(rng, n, 7)
    headings = headings + np.concatenate([[0.0], np.cumsum(turns[:-1])])
    steps = STEP * np.stack([np.cos(headings), np.sin(headings)], 1)
    return start + np.concatenate([[[0.0, 0.0]], np.cumsum(steps[:-1], 0)])


def _arcade(rng: np.random.Generator, eye: _Eye, superior: bool, spread: float) -> np.ndarray:
    """A temporal arcade: a spiral round the fovea from the disc (leaving it vertically, arching
    over the macula), then a temporal run turning from the raphe so the arcades diverge."""
    start = eye.disc + [rng.normal(0, 0.25) * eye.disc_radius, 0.0]
    offset = start - eye.fovea
    phi0, radius0 = math.atan2(offset[1], offset[0]), float(np.hypot(*offset))
    sweep = math.radians(rng.uniform(95, 125))
    growth = rng.uniform(1.1, 1.3) * spread
    # image y points down: the superior arcade goes to negative y
    direction = -eye.side if superior else eye.side
    n = int(sweep * radius0 * 1.2 / STEP)
    t = np.linspace(0.0, 1.0, n)
    phi = phi0 + direction * sweep * t
    radius = radius0 * growth**t * (1 + 0.03 * _smooth_noise_1d(rng, n, 25) * t)
    spiral = eye.fovea + radius[:, None] * np.stack([np.cos(phi), np.sin(phi)], 1)
    tangent = spiral[-1] - spiral[-2]
    temporal = math.pi if eye.side > 0 else 0.0
    away_from_raphe = math.radians(rng.uniform(20, 40)) * eye.side * (1 if superior else -1)
    tail = _walk(rng, spiral[-1], math.atan2(tangent[1], tangent[0]), 0.35, 0.4,
                 target=temporal + away_from_raphe)
    return np.concatenate([spiral, tail[1:]])


def _tortuosity_displace(rng: np.random.Generator, path: np.ndarray, width: float, eye: _Eye,
                         amount: float) -> np.ndarray:
    """Plus-disease tortuosity: a sideways sine of wavelength 7-11 widths and amplitude
    `amount` widths, modulated along the vessel and fading with distance from the disc."""
    if amount <= 0 or len(path) < 4:
        return path
    n = len(path)
    wavelength = width * rng.uniform(7, 11) * (1 + 0.25 * _smooth_noise_1d(rng, n, 15))
    phase = rng.uniform(0, 2 * math.pi) + 2 * math.pi * np.cumsum(STEP / wavelength)
    from_disc = np.hypot(*(path - eye.disc).T)
    fade = np.exp(-np.maximum(from_disc - eye.disc_radius, 0) / (5 * eye.disc_radius))
    fade *= np.clip((from_disc - eye.disc_radius * 0.6) / eye.disc_radius, 0, 1)  # calm on disc
    ramp = 0.7 + 0.3 * np.abs(_smooth_noise_1d(rng, n, 20))
    tangent = np.gradient(path, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1) / np.hypot(*tangent.T)[:, None]
    return path + (amount * width * fade * ramp * np.sin(phase))[:, None] * normal


def _clip_path(path: np.ndarray, eye: _Eye) -> np.ndarray:
    """Cut a path where it leaves the field of view or enters the foveal avascular zone."""
    outside = np.hypot(*(path - 0.5).T) > FOV_RADIUS + 0.01
    in_faz = np.hypot(*(path - eye.fovea).T) < eye.faz_radius
    stop = np.flatnonzero(outside | in_faz)
    return path[: stop[0]] if len(stop) else path


def _murray_angles(w0: float, w1: float, w2: float) -> tuple[float, float]:
    """Murray's minimum-work branching angles of daughters w1, w2 from a parent w0."""

    def angle(a: float, b: float) -> float:
        cos = (w0**4 + a**4 - b**4) / (2 * w0**2 * a**2)
        return math.acos(min(1.0, max(-1.0, cos)))

    return angle(w1, w2), angle(w2, w1)


def _grow(rng: np.random.Generator, path: np.ndarray, width: float, kind: int, depth: int,
          eye: _Eye, twist: float, out: list[_Vessel]) -> None:
    """Split a centreline into pieces at side branches, thinning it by Murray's law, and grow
    each side branch recursively until vessels are thinner than MIN_WIDTH."""
    path = _clip_path(path, eye)
    if len(path) < 2:
        return
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))])
    gap_scale = 0.07 if depth == 0 else 0.11
    position = rng.uniform(0.3, 1.0) * gap_scale + (2 * eye.disc_radius if depth == 0 else 0)
    piece_start, side = 0, rng.choice([-1, 1])
    while position < arc[-1] and width > 2 * MIN_WIDTH and depth < 3:
        k = int(np.searchsorted(arc, position))
        daughter_w = width * rng.uniform(0.35, 0.8)
        parent_w = (width**3 - daughter_w**3) ** (1 / 3)
        daughter_angle, parent_angle = _murray_angles(width, daughter_w, parent_w)
        out.append(_Vessel(path[piece_start : k + 1], width, kind))
        tangent = path[min(k + 1, len(path) - 1)] - path[max(k - 1, 0)]
        heading = math.atan2(tangent[1], tangent[0])
        side = -side if rng.random() < 0.75 else side
        daughter_heading = heading + side * (daughter_angle + rng.normal(0, 0.12))
        daughter = _walk(rng, path[k], daughter_heading, daughter_w * rng.uniform(50, 90), 0.5,
                         target=_branch_target(path[k], daughter_heading, eye))
        if depth == 0:  # plus disease reaches the first branches of the trunks, half as much
            daughter = _tortuosity_displace(rng, daughter, daughter_w, eye, 0.5 * twist)
        _grow(rng, daughter, daughter_w, kind, depth + 1, eye, twist, out)
        if depth > 0:  # a branch swings from its daughter (Murray); trunks keep their course
            path = path.copy()
            rotation = -side * parent_angle * 0.7
            c, s = math.cos(rotation), math.sin(rotation)
            rest = path[k:] - path[k]
            path[k:] = path[k] + rest @ np.array([[c, s], [-s, c]])
            path = path[: k + len(_clip_path(path[k:], eye))]
            arc = arc[: len(path)]  # a rotation keeps step lengths; only the clip shortens
        piece_start, width = k, parent_w
        position += rng.uniform(0.5, 1.5) * gap_scale
    if width >= MIN_WIDTH:
        out.append(_Vessel(path[piece_start:], width, kind))


def _branch_target(start: np.ndarray, heading: float, eye: _Eye) -> float:
    """Where a side branch settles: macular branches (near the macula, leaving toward it) run
    to the fovea and stop at its avascular zone; all others run away from the disc."""
    to_fovea = eye.fovea - start
    fovea_heading = math.atan2(to_fovea[1], to_fovea[0])
    near_macula = np.hypot(*to_fovea) < 1.3 * np.hypot(*(eye.disc - eye.fovea))
    if near_macula and abs(math.remainder(heading - fovea_heading, 2 * math.pi)) < math.pi / 2:
        return fovea_heading
    from_disc = start - eye.disc
    return math.atan2(from_disc[1], from_disc[0])


def _vessel_tree(rng: np.random.Generator, eye: _Eye, plus_score: float
                 ) -> tuple[list[_Vessel], list[np.ndarray], list[float]]:
    """All vessel pieces, the posterior-pole trunk centrelines, and the vein trunk widths."""
    disc_diameter = 2 * eye.disc_radius
    vein_w0 = 0.12 * disc_diameter * (1 + 0.8 * plus_score) * rng.uniform(0.9, 1.1)
    artery_w0 = 0.08 * disc_diameter * (1 + 0.3 * plus_score) * rng.uniform(0.9, 1.1)
    # sine amplitude in vessel widths: 1-1.5 looked mild; 2 reads as plus at a glance and keeps
    # the vessel fraction of plus eyes near 0.2 (normal eyes: ~0.12)
    twist = 2.0 * plus_score
    nasal = 0.0 if eye.side > 0 else math.pi  # heading from the disc away from the fovea
    trunks: list[tuple[np.ndarray, float, int]] = []
    for kind, w0 in ((ARTERY, artery_w0), (VEIN, vein_w0)):
        spread = 1.0 if kind == VEIN else rng.uniform(0.95, 1.05)
        for superior in (True, False):
            trunks.append((_arcade(rng, eye, superior, spread), w0, kind))
        for offset in (-0.9, 0.0, 0.9):  # superior nasal, nasal, inferior nasal
            heading = nasal + offset * eye.side + rng.normal(0, 0.15)
            if offset == 0.0 and kind == ARTERY and rng.random() < 0.5:
                continue  # the straight nasal pair often has only a vein
            start = eye.disc + rng.normal(0, 0.25, 2) * eye.disc_radius
            w = w0 * (0.6 if offset == 0.0 else 0.8) * rng.uniform(0.9, 1.1)
            trunks.append((_walk(rng, start, heading, 0.5, 0.4), w, kind))
        for _ in range(rng.integers(0, 3)):  # papillomacular twigs toward the fovea
            towards = eye.fovea - eye.disc
            heading = math.atan2(towards[1], towards[0]) + rng.normal(0, 0.3)
            start = eye.disc + eye.disc_radius * 0.8 * np.array([math.cos(heading),
                                                                 math.sin(heading)])
            trunks.append((_walk(rng, start, heading, 0.09, 1.5), w0 * 0.2, kind))
    pieces: list[_Vessel] = []
    posterior_trunks: list[np.ndarray] = []
    vein_widths: list[float] = []
    for path, w, kind in trunks:
        is_major = w > 0.5 * w0
        path = _tortuosity_displace(rng, path, w, eye, twist if is_major else 0.5 * twist)
        if is_major:
            posterior_trunks.append(_posterior_part(path, eye))
            if kind == VEIN:
                vein_widths.append(w)
        _grow(rng, path, w, kind, 0, eye, twist, pieces)
    return pieces, posterior_trunks, vein_widths


def _posterior_part(path: np.ndarray, eye: _Eye) -> np.ndarray:
    """The trunk between the disc margin and 2.5 disc diameters from the disc centre."""
    from_disc = np.hypot(*(path - eye.disc).T)
    inside = (from_disc >= eye.disc_radius) & (from_disc <= 5 * eye.disc_radius)
    first = int(np.argmax(inside))
    last = first + int(np.argmin(inside[first:])) if not inside[first:].all() else len(path)
    return path[first:last]


def _arc_over_chord(path: np.ndarray) -> float:
    """Tortuosity index (ROPtool-like): centreline length over end-to-end distance."""
    arc = float(np.hypot(*np.diff(path, axis=0).T).sum())
    chord = float(np.hypot(*(path[-1] - path[0])))
    return arc / chord if chord > 0 else 1.0


# ------------------------------------------------------------------------------------ pixels


def _rasterise(pieces: list[_Vessel], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Artery and vein coverage (float32 0..1, size x size) and the vessel mask (bool).

    Pieces are filled as outline polygons (exact sub-pixel width; cv2 lines have odd widths
    only), antialiased on a grid at least twice as fine, then area-downsampled; outlines are
    drawn AA_SPREAD narrower to undo cv2's antialiased widening, too-thin ones at MIN_DRAWN,
    fainter. Mask: pixels at least half covered plus the centreline pixels of every vessel
    MASK_MIN_PX wide, so thin vessels stay connected as in manual annotations (DRIVE) instead
    of breaking into dashes at small sizes.
    """
    fine = max(2 * size, 256)
    layers = [np.zeros((fine, fine), np.uint8) for _ in (ARTERY, VEIN)]
    centrelines = np.zeros((size, size), np.uint8)
    for piece in sorted(pieces, key=lambda p: p.width):  # thick vessels win at junctions
        if len(piece.points) < 2:
            continue
        points = piece.points * fine - 0.5
        drawn = max(piece.width * fine - AA_SPREAD, MIN_DRAWN)
        shade = round(255 * min(1.0, piece.width * fine / (MIN_DRAWN + AA_SPREAD)))
        tangent = np.gradient(points, axis=0)
        tangent /= np.maximum(np.hypot(*tangent.T), 1e-9)[:, None]
        side = np.stack([-tangent[:, 1], tangent[:, 0]], 1) * (drawn / 2)
        outline = np.concatenate([points + side, (points - side)[::-1]])
        cv2.fillPoly(layers[piece.kind], [_fixed(outline)], shade, cv2.LINE_AA, SHIFT)
        # a round joint where the piece leaves its parent covers the kink at the branch point
        cv2.circle(layers[piece.kind], tuple(_fixed(points[0])), round(drawn / 2 * (1 << SHIFT)),
                   shade, -1, cv2.LINE_AA, SHIFT)
        if piece.width * size >= MASK_MIN_PX:
            cv2.polylines(centrelines, [_fixed(piece.points * size - 0.5)], False, 1, 1,
                          cv2.LINE_8, SHIFT)
    artery, vein = (cv2.resize(layer, (size, size), interpolation=cv2.INTER_AREA)
                    .astype(np.float32) / 255 for layer in layers)
    return artery, vein, (np.maximum(artery, vein) > 0.5) | (centrelines > 0)


def _fixed(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates as cv2's fixed-point integers (SHIFT fractional bits)."""
    return np.round(points * (1 << SHIFT)).astype(np.int32)


def _noise_field(rng: np.random.Generator, grid: int, size: int) -> np.ndarray:
    """Smooth unit-ish noise: a small random grid, bicubically enlarged (cheap at any size)."""
    small = rng.standard_normal((grid, grid)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def _paint(rng: np.random.Generator, eye: _Eye, artery: np.ndarray, vein: np.ndarray,
           rim: np.ndarray, pixel_noise: np.random.Generator) -> np.ndarray:
    """The photograph: reflectance, disc, vessels, camera illumination and noise. For speed all
    is float32 planar (3, H, W) (broadcasting over a last axis of 3 is several times slower),
    the macula a separable Gaussian, the disc painted in its own window."""
    size = rim.shape[0]
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size

    # reflectance: infant fundus orange-red, per-eye colour, fine texture and faint choroid
    base = BASE_RGB * rng.uniform([0.9, 0.8, 0.7], [1.08, 1.15, 1.3])
    shade = 1 + 0.02 * _noise_field(rng, 48, size) + 0.04 * _noise_field(rng, 6, size)
    choroid = np.exp(-np.square(_noise_field(rng, 14, size) / 0.18))  # bright wavy ridges
    shade += float(rng.uniform(0.0, 0.04)) * (choroid - 0.3)
    macula_sigma = 2 * float(rng.uniform(0.045, 0.065)) ** 2
    macula = np.outer(np.exp(-np.square(coords - float(eye.fovea[1])) / macula_sigma),
                      np.exp(-np.square(coords - float(eye.fovea[0])) / macula_sigma))
    depth = np.array([0.25, 0.4, 0.45]) * rng.uniform(0.6, 1.0)
    rgb = shade * _planar(base)
    rgb *= 1 - _planar(depth) * macula

    # optic disc: pale pink-yellow, slightly tall ellipse, soft rim, paler cup
    stretch, cup_ratio = float(rng.uniform(1.03, 1.12)), float(rng.uniform(0.2, 0.4))
    disc_rgb = _planar(np.array([1.0, 0.74, 0.56]) * rng.uniform(0.9, 1.0, 3))
    cup_rgb = _planar(np.array([1.0, 0.9, 0.75]))
    reach = 1.5 * eye.disc_radius * stretch
    x0, x1 = (int(np.clip((eye.disc[0] + d) * size, 0, size)) for d in (-reach, reach))
    y0, y1 = (int(np.clip((eye.disc[1] + d) * size, 0, size)) for d in (-reach, reach))
    ex = (coords[x0:x1] - float(eye.disc[0])) / eye.disc_radius
    ey = (coords[y0:y1] - float(eye.disc[1])) / (eye.disc_radius * stretch)
    disc_r = np.sqrt(ey[:, None] ** 2 + ex[None, :] ** 2)
    disc_alpha = 1 / (1 + np.exp((disc_r - 1) * 10))
    cup_alpha = 0.6 / (1 + np.exp((disc_r / cup_ratio - 1) * 5))
    window = rgb[:, y0:y1, x0:x1]
    window += disc_alpha * (disc_rgb - window)
    window += cup_alpha * (cup_rgb - window)

    # vessels over everything, a touch of optical blur so thin ones lose contrast
    blur = 0.0012 * size
    for layer, rel, opacity in ((artery, ARTERY_REL, 0.75), (vein, VEIN_REL, 0.85)):
        if blur > 0.3:
            layer = cv2.GaussianBlur(layer, (0, 0), blur)
        rgb *= 1 - layer * _planar(opacity * (1 - rel * rng.uniform(0.9, 1.1)))

    # camera: off-centre vignetting, uneven brightness, haze (RetCam), noise, gamma
    cx, cy = (0.5 + rng.normal(0, 0.03, 2)).astype(np.float32)
    r2 = (np.square(coords[:, None] - cy) + np.square(coords[None, :] - cx)) / FOV_RADIUS**2
    np.minimum(r2, 1.44, out=r2)
    light = float(rng.uniform(0.85, 1.1)) * (1 - 0.4 * r2 * np.sqrt(r2))
    light *= 1 + 0.08 * _noise_field(rng, 3, size)
    light *= rim * 255  # black outside the field of view, antialiased at its edge
    haze = float(rng.uniform(0.02, 0.15))
    rgb *= 1 - haze
    rgb += _planar(np.array([0.75, 0.45, 0.35]) * rng.uniform(0.8, 1.1) * haze)
    rgb += pixel_noise.standard_normal(rgb.shape, dtype=np.float32) * np.float32(0.008)
    rgb *= light
    np.clip(rgb, 0, 255, out=rgb)
    gamma = rng.uniform(0.8, 1.25)
    lut = (255 * (np.arange(256) / 255) ** gamma + 0.5).astype(np.uint8)
    photo = cv2.merge([cv2.LUT(plane, lut) for plane in (rgb + 0.5).astype(np.uint8)])
    return photo.astype(np.float32) * np.float32(1 / 255)


def _planar(colour: np.ndarray) -> np.ndarray:
    """An RGB triple as a float32 (3, 1, 1) array that broadcasts over planar images."""
    return np.asarray(colour, np.float32).reshape(3, 1, 1)


# ------------------------------------------------------------------------------------ public


def render_fundus(seed: int, size: int = 512, severity: str | None = None) -> FundusImage:
    """Render phantom fundus `seed` at size x size pixels (deterministic by seed).

    rgb float32 (size, size, 3) in [0, 1]; vessels and fov bool (size, size), vessels inside fov.
    labels: sample_fundus_labels's, tortuosity (mean arc/chord of the posterior-pole trunks),
    vein_width (mean major vein trunk width at the disc, image widths), disc_x, disc_y (fractions
    of width / height), vessel_fraction (vessel / FOV pixels). `severity` forces the plus class.
    ConfigError unless size is an integer in MIN_SIZE..MAX_SIZE (64..1024).
    """
    if (isinstance(size, bool) or not isinstance(size, int | np.integer)
            or not MIN_SIZE <= size <= MAX_SIZE):
        raise ConfigError(f"fundus phantom: size {size!r} is not an integer in "
                          f"{MIN_SIZE}..{MAX_SIZE}; use a power of two such as 512")
    size = int(size)
    labels = sample_fundus_labels(seed, severity)
    eye = _eye(np.random.default_rng([seed, 1]), labels["laterality"])
    pieces, posterior_trunks, vein_widths = _vessel_tree(np.random.default_rng([seed, 2]), eye,
                                                         labels["plus_score"])
    artery, vein, vessels = _rasterise(pieces, size)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    from_centre = np.sqrt(np.square(coords[:, None] - 0.5) + np.square(coords[None, :] - 0.5))
    rim = np.clip((FOV_RADIUS - from_centre) * size, 0, 1)  # antialiased just inside the FOV
    rgb = _paint(np.random.default_rng([seed, 3]), eye, artery, vein, rim,
                 np.random.default_rng([seed, 4]))
    fov = from_centre < FOV_RADIUS
    vessels &= fov
    labels |= {
        "tortuosity": float(np.mean([_arc_over_chord(p) for p in posterior_trunks if len(p) > 2])),
        "vein_width": float(np.mean(vein_widths)),
        "disc_x": float(eye.disc[0]),
        "disc_y": float(eye.disc[1]),
        "vessel_fraction": float(vessels.sum() / fov.sum()),
    }
    return FundusImage(rgb=rgb, vessels=vessels, fov=fov, labels=labels,
                       source_file=f"phantom:{seed}")
