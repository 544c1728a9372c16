"""Global anatomy that texture measures cannot see.

The paper's Figure 3 says that images trained without segmentation maps lose "global retinal
structures in the fundus images, and biologically-plausible tumor structures in the MRI slices".
Vessel density, junctions and SWD read local texture: a grid of vessel fragments scores near real on
them. These read the layout instead, per image, from the image channels alone (so runs without
segmentation compare): where the optic disc is, whether there is one, whether the vessels radiate
from it and how far they reach; whether the enhancing rim sits inside the oedema (as BraTS nests
enhancing tumour inside the tumour core inside the whole tumour) and how many lesions a slice shows.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

DISC_BLUR = 40  # the disc is found after a blur of R / 40 (the loaders' rule for photographs)
MIN_LESION_PIXELS = 4  # a FLAIR-bright region smaller than this is noise, not a lesion


def _whiteness(images: np.ndarray) -> np.ndarray:
    """The darkest colour channel of fundus images (N, >=3, R, R) in [-1, 1]: the disc is pale in
    all three, the orange-red retina bright only in red."""
    return np.asarray(images, np.float32)[:, :3].min(axis=1)


def disc_centres(images: np.ndarray) -> np.ndarray:
    """The optic disc of each fundus image (N, >=3, R, R) in [-1, 1]: (row, column) in pixels,
    the brightest spot of the darkest colour channel after a blur of R / ``DISC_BLUR``."""
    whiteness = _whiteness(images)
    sigma = whiteness.shape[-1] / DISC_BLUR
    return np.array([np.unravel_index(np.argmax(cv2.GaussianBlur(w, (0, 0), sigma)), w.shape)
                     for w in whiteness], dtype=float).reshape(len(whiteness), 2)


def disc_uniqueness(images: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """How much the brightest disc-sized spot stands out from the next one at least a quarter of the
    image away, per image: 1 - (second peak / first peak), each above the field of view's median
    whiteness. Near 1: one disc; near 0: two equal discs, or none."""
    whiteness = _whiteness(images)
    size = whiteness.shape[-1]
    sigma = size / DISC_BLUR
    out = np.full(len(whiteness), np.nan)
    rows, cols = np.mgrid[:size, :size]
    for i, (w, inside) in enumerate(zip(whiteness, fov, strict=True)):
        if not inside.any():
            continue
        blurred = cv2.GaussianBlur(w, (0, 0), sigma) - np.median(w[inside])
        blurred = np.where(inside, blurred, -np.inf)
        first = np.unravel_index(np.argmax(blurred), blurred.shape)
        far = (rows - first[0]) ** 2 + (cols - first[1]) ** 2 > (size / 4) ** 2
        top = blurred[first]
        second = np.max(np.where(far, blurred, -np.inf))
        if top > 0:
            out[i] = 1.0 - max(float(second), 0.0) / float(top)
    return out


def radial_alignment(probability: np.ndarray, fov: np.ndarray, centres: np.ndarray,
                     threshold: float = 0.5) -> np.ndarray:
    """Whether the vessels radiate from the disc, per vessel map (N, S, S) in [0, 1]: the
    probability-weighted mean, over vessel pixels (probability > ``threshold``, inside ``fov``,
    outside a disc-sized circle round ``centres`` (N, 2) in the maps' pixels), of |cos| of the angle
    between the vessel's direction (across its probability gradient, from the structure tensor) and
    the direction to the disc. Directions at random give 2/π ≈ 0.637, vessels all pointing at the
    disc 1."""
    n, size = probability.shape[0], probability.shape[-1]
    out = np.full(n, np.nan)
    rows, cols = np.mgrid[:size, :size].astype(np.float32)
    for i in range(n):
        p = cv2.GaussianBlur(probability[i].astype(np.float32), (0, 0), 1.0)
        gy, gx = np.gradient(p)
        blur = size / 64  # the tensor averaged over about a vessel's width
        jxx, jyy, jxy = (cv2.GaussianBlur(a, (0, 0), blur) for a in (gx * gx, gy * gy, gx * gy))
        across = 0.5 * np.arctan2(2 * jxy, jxx - jyy)  # the gradient's (the vessel's normal)
        along = across + np.pi / 2
        dy, dx = centres[i, 0] - rows, centres[i, 1] - cols
        to_disc = np.arctan2(dy, dx)
        far = dy ** 2 + dx ** 2 > (size / 16) ** 2
        vessel = (probability[i] > threshold) & fov[i] & far
        if vessel.sum() == 0:
            continue
        cosine = np.abs(np.cos(along - to_disc))
        out[i] = float((cosine * probability[i])[vessel].sum() / probability[i][vessel].sum())
    return out


def vessel_reach(vessels: np.ndarray, fov: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """How far the vessel tree spreads from the disc, per map (N, S, S) bool: the mean distance
    of vessel pixels from the disc ``centres`` (N, 2), over the field of view's radius."""
    n, size = vessels.shape[0], vessels.shape[-1]
    rows, cols = np.mgrid[:size, :size]
    out = np.full(n, np.nan)
    for i in range(n):
        inside = vessels[i] & fov[i]
        if inside.sum() == 0 or fov[i].sum() == 0:
            continue
        distance = np.hypot(rows - centres[i, 0], cols - centres[i, 1])
        out[i] = float(distance[inside].mean() / np.sqrt(fov[i].sum() / np.pi))
    return out


def lesion_nesting(flair_bright: np.ndarray, enhancing: np.ndarray) -> np.ndarray:
    """The share of each slice's enhancing pixels (N, R, R) bool inside its FLAIR-hyperintense
    region (grown by one pixel), as BraTS nests enhancing tumour inside the whole tumour; NaN
    for a slice with no enhancing pixel."""
    out = np.full(len(enhancing), np.nan)
    for i, (oedema, rim) in enumerate(zip(flair_bright, enhancing, strict=True)):
        if rim.any():
            out[i] = float((rim & ndimage.binary_dilation(oedema)).sum() / rim.sum())
    return out


def lesion_components(flair_bright: np.ndarray) -> np.ndarray:
    """How many separate FLAIR-hyperintense regions of at least ``MIN_LESION_PIXELS`` pixels
    each slice (N, R, R) bool shows (8-connected)."""
    out = np.zeros(len(flair_bright))
    for i, mask in enumerate(flair_bright):
        labelled, count = ndimage.label(mask, np.ones((3, 3)))
        if count:
            sizes = np.bincount(labelled.ravel())[1:]
            out[i] = float((sizes >= MIN_LESION_PIXELS).sum())
    return out
