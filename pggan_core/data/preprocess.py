"""Preprocessing for both domains, as Beers et al. (2018) describe it, in plain numpy / OpenCV.

Fundus: the vessel U-Net segments the image after grayscale -> per-image standardisation ->
CLAHE(2.0, 8x8) -> gamma 1.2 (the order and constants of the authors' retina-unet
``my_PreProc``); the GAN sees RGB plus the vessel map. BraTS: "We preprocessed each MR volume
to have zero mean and unit variance"; 2D axial slices are then taken, the segmentation labels
as extra channels.
"""

from __future__ import annotations

import cv2
import numpy as np

from pggan_core.data.types import BRATS_LABELS
from pggan_core.errors import DataError
from pggan_core.settings import DataConfig

# ------------------------------------------------------------------------ Fundus photographs


def as_unit_float(pixels: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]: integers divided by their dtype's maximum (16-bit by 65535), floats
    clipped."""
    if pixels.dtype == bool:
        return pixels.astype(np.float32)
    if np.issubdtype(pixels.dtype, np.integer):
        return pixels.astype(np.float32) / np.float32(np.iinfo(pixels.dtype).max)
    return np.clip(pixels.astype(np.float32), 0.0, 1.0)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) -> float32 luma (H, W) in [0, 1], retina-unet's ``rgb2gray`` (ITU-R 601)."""
    rgb = as_unit_float(rgb)
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).astype(np.float32)


def gamma_correct(gray: np.ndarray, gamma: float) -> np.ndarray:
    """out = in ** (1 / gamma) on [0, 1], as retina-unet's ``adjust_gamma``: gamma > 1 brightens
    the mid-tones; ValueError for gamma <= 0."""
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    return np.power(np.clip(gray, 0.0, 1.0), 1.0 / gamma).astype(np.float32)


def clahe(gray: np.ndarray, clip: float, tiles: int) -> np.ndarray:
    """CLAHE of a [0, 1] image on 8 bits, as the authors' code (clipLimit 2.0, 8x8 tiles)."""
    as_u8 = np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8)
    equalised = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles)).apply(as_u8)
    return equalised.astype(np.float32) / 255.0


FOV_RED_THRESHOLD = 20.0 / 255.0  # the dark surround of a fundus photograph has almost no red
FOV_EROSION_REFERENCE = 512  # DataConfig.fov_erosion_px is given for 512 px photographs


def fov_mask(rgb: np.ndarray, erosion_px: int) -> np.ndarray:
    """The illuminated disc: red (the brightest channel) > 20/255, eroded by ``erosion_px`` (the
    authors erode 10 px at 512 so the bright rim is not taken for a vessel wall)."""
    fov = as_unit_float(rgb)[..., 0] > FOV_RED_THRESHOLD
    if erosion_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erosion_px + 1,) * 2)
        fov = cv2.erode(fov.astype(np.uint8), kernel, borderValue=0).astype(bool)
    return fov


def field_of_view(rgb: np.ndarray, data_cfg: DataConfig) -> np.ndarray:
    """The one field of view of every vessel step (U-Net training and segmenting, AUCs,
    statistics), from the photograph alone so generated and real images get the same one;
    ``data_cfg.fov_erosion_px`` is scaled from 512 px."""
    erosion = round(data_cfg.fov_erosion_px * min(rgb.shape[:2]) / FOV_EROSION_REFERENCE)
    return fov_mask(rgb, erosion)


def fields_of_view(images: np.ndarray, data_cfg: DataConfig) -> np.ndarray:
    """``field_of_view`` of each fundus image (N, >=3, H, W) in [-1, 1]: bool (N, H, W)."""
    rgb = np.clip((np.asarray(images[:, :3], np.float32).transpose(0, 2, 3, 1) + 1.0) / 2.0,
                  0.0, 1.0)
    if not len(rgb):
        return np.zeros((0, *images.shape[2:]), bool)
    return np.stack([field_of_view(image, data_cfg) for image in rgb])


def vessel_input(rgb: np.ndarray, fov: np.ndarray, data_cfg: DataConfig) -> np.ndarray:
    """The vessel U-Net's input, float32 (H, W) in [0, 1], 0 outside ``fov``: ``my_PreProc``
    with statistics inside ``fov`` only (the black surround must not decide the contrast);
    retina-unet's data-set-wide z-score is irrelevant after the per-image rescale."""
    gray = to_gray(rgb)
    fov = fov.astype(bool)
    inside = gray[fov]
    if inside.size == 0:
        return np.zeros_like(gray)
    std = float(inside.std())
    z = (gray - float(inside.mean())) / (std if std > 0 else 1.0)
    lo, hi = float(z[fov].min()), float(z[fov].max())
    scaled = (z - lo) / (hi - lo) if hi > lo else np.zeros_like(z)
    scaled = np.where(fov, np.clip(scaled, 0.0, 1.0), 0.0).astype(np.float32)
    out = gamma_correct(clahe(scaled, data_cfg.clahe_clip, data_cfg.clahe_tiles), data_cfg.gamma)
    return np.where(fov, out, 0.0).astype(np.float32)


def fundus_channels(rgb: np.ndarray, vessel_map: np.ndarray) -> np.ndarray:
    """The GAN's four channels, float32 (4, S, S) in [-1, 1]: R, G, B and the vessel map (a
    probability or a boolean mask). ValueError if the shapes do not match."""
    rgb = as_unit_float(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != vessel_map.shape:
        raise ValueError(f"rgb {rgb.shape} and vessel map {vessel_map.shape} do not match")
    vessel = np.clip(vessel_map.astype(np.float32), 0.0, 1.0)
    channels = np.concatenate([rgb.transpose(2, 0, 1), vessel[None]], axis=0)
    return (channels * 2.0 - 1.0).astype(np.float32)


# -------------------------------------------------------------- BraTS multi-modal MR volumes


def zscore_volume(modalities: np.ndarray, brain_mask: np.ndarray, source: str) -> np.ndarray:
    """Each modality (4, X, Y, Z) to zero mean / unit variance over ``brain_mask``, 0 outside
    it; a DataError naming ``source`` for an empty brain, NaNs or a constant modality."""
    mask = brain_mask.astype(bool)
    if not mask.any():
        raise DataError(f"{source}: the brain mask is empty; check the case's images "
                        "(skull-stripped volumes with a non-zero brain are expected)")
    out = np.zeros(modalities.shape, dtype=np.float32)
    for i, volume in enumerate(modalities):
        brain = volume[mask].astype(np.float64)
        if not np.isfinite(brain).all():
            raise DataError(f"{source}: modality {i} has NaN or infinite values inside the "
                            "brain; replace or remove this case")
        std = brain.std()
        if std < 1e-8 * max(1.0, abs(brain.mean())):
            raise DataError(f"{source}: modality {i} is constant inside the brain (zero "
                            "variance); the file is empty or corrupt, replace or remove it")
        out[i][mask] = ((brain - brain.mean()) / std).astype(np.float32)
    return out


def select_slices(brain_mask: np.ndarray, seg: np.ndarray, min_brain_fraction: float, n: int,
                  rng: np.random.Generator) -> list[int]:
    """Up to ``n`` axial slices (sorted z) with at least ``min_brain_fraction`` brain.

    Tumour and non-tumour slices share ``n`` in proportion (at least one each when both exist
    and n >= 2), so the GAN sees the "presence and absence of tumor"; within a kind, one slice
    from each of equal z-ranges spreads the choice over the brain."""
    area = brain_mask.reshape(-1, brain_mask.shape[2]).mean(axis=0)
    valid = np.flatnonzero(area >= min_brain_fraction)
    if n >= len(valid):
        return [int(z) for z in valid]
    has_tumour = (seg[:, :, valid] > 0).any(axis=(0, 1))
    tumour, healthy = valid[has_tumour], valid[~has_tumour]
    n_tumour = round(n * len(tumour) / len(valid))
    if n >= 2 and len(tumour) and len(healthy):
        n_tumour = min(max(n_tumour, 1), n - 1)
    chosen = []
    for candidates, k in ((tumour, n_tumour), (healthy, n - n_tumour)):
        edges = np.linspace(0, len(candidates), k + 1).astype(int)
        chosen += [candidates[rng.integers(lo, hi)]
                   for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return sorted(int(z) for z in chosen)


def brats_slice_channels(zvol: np.ndarray, seg: np.ndarray, brain_mask: np.ndarray, z: int,
                         pad_to: int, z_clip: float) -> np.ndarray:
    """One axial slice as the GAN's seven channels: float32 (7, pad_to, pad_to) in [-1, 1].

    0-3: z-scored modalities clipped to +-``z_clip`` and divided by it, -1 outside the brain;
    4-6: labels 1, 2, 4 as -1 / +1. Oriented as radiologists read it (``.T[::-1]`` of RAS:
    anterior up, patient's right on the right), padded (or centre-cropped) with -1 to
    ``pad_to`` (240 -> 256 halves evenly)."""
    brain = brain_mask[:, :, z].astype(bool).T[::-1]
    images = [np.where(brain, np.clip(zvol[i, :, :, z].T[::-1], -z_clip, z_clip) / z_clip, -1.0)
              for i in range(zvol.shape[0])]
    labels = seg[:, :, z].T[::-1]
    masks = [np.where(labels == label, 1.0, -1.0) for label in BRATS_LABELS]
    return np.stack([_pad_centre(c, pad_to) for c in images + masks]).astype(np.float32)


def _pad_centre(plane: np.ndarray, size: int) -> np.ndarray:
    """Pad with -1 (or crop) both axes to ``size``, keeping the content centred."""
    out = np.full((size, size), -1.0, dtype=np.float32)
    h, w = plane.shape
    src_y, src_x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    dst_y, dst_x = max(0, (size - h) // 2), max(0, (size - w) // 2)
    ch, cw = min(h, size), min(w, size)
    out[dst_y:dst_y + ch, dst_x:dst_x + cw] = plane[src_y:src_y + ch, src_x:src_x + cw]
    return out


def brain_mask(images: np.ndarray) -> np.ndarray:
    """Brain pixels of MR slices in [-1, 1]: background is -1 in every modality."""
    return (images[:, :4] > -0.95).any(axis=1)


def tumour_slice(volume, data_cfg) -> tuple[np.ndarray, int, np.ndarray]:
    """A BrainVolume's z-scored modalities, its slice with most tumour and that slice's seven
    GAN channels."""
    zvol = zscore_volume(volume.modalities, volume.brain_mask, volume.source_file)
    z = int(np.argmax((volume.seg > 0).sum(axis=(0, 1))))
    channels = brats_slice_channels(zvol, volume.seg, volume.brain_mask, z, data_cfg.pad_to,
                                    data_cfg.z_clip)
    return zvol, z, channels
