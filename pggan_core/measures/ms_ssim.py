"""Multi-scale structural similarity (Wang et al. 2003) of image pairs, any channel count. The mean
over random pairs of *generated* images measures diversity (lower = more diverse; a collapsed
generator scores near 1)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pggan_core.errors import DataError
from pggan_core.measures import check_images

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003
MS_SSIM_WIN, MS_SSIM_SIGMA = 11, 1.5
_SSIM_K1, _SSIM_K2 = 0.01, 0.03
LOW, DATA_RANGE = -1.0, 2.0  # images in [-1, 1] are shifted into [0, 2]
BATCH = 64  # pairs compared at a time


def ms_ssim_num_scales(size: int) -> int:
    """How many of the 5 MS-SSIM scales fit an image whose smaller side is ``size`` px: scale k sees
    it at about size / 2^k and needs the 11 px window there (5 scales from 161 px, so at 256; 4 from
    81, at 128; 3 from 41, at 64; 2 from 21, at 32; 1 from 11)."""
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and size >= MS_SSIM_WIN:
        scales += 1
        size = (size + 1) // 2
    return scales


def _filter_valid(x: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter over the last two axes, border cropped (unpadded convolution)."""
    half = len(win) // 2
    x = ndimage.correlate1d(x, win, axis=-1, mode="constant")[..., half:-half]
    return ndimage.correlate1d(x, win, axis=-2, mode="constant")[..., half:-half, :]


def _halve(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling; an odd side first gets a zero row/column in front, as torch's
    ``avg_pool2d(kernel_size=2, padding=1)`` in pytorch_msssim."""
    x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(s % 2, 0) for s in x.shape[-2:]])
    *lead, h, w = x.shape
    return x.reshape(*lead, h // 2, 2, w // 2, 2).mean(axis=(-3, -1))


def _ssim_and_cs(x: np.ndarray, y: np.ndarray, win: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Mean SSIM and mean contrast-structure term per (image, channel)."""
    c1, c2 = (_SSIM_K1 * DATA_RANGE) ** 2, (_SSIM_K2 * DATA_RANGE) ** 2
    mu_x, mu_y, e_xx, e_yy, e_xy = _filter_valid(np.stack([x, y, x * x, y * y, x * y]), win)
    var_x, var_y, cov = e_xx - mu_x**2, e_yy - mu_y**2, e_xy - mu_x * mu_y
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs_map
    return ssim_map.mean(axis=(-2, -1)), cs_map.mean(axis=(-2, -1))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MS-SSIM of each pair (a[i], b[i]) in [-1, 1], averaged over channels: (N,), 1 = identical.
    Standard MS-SSIM (as ``pytorch_msssim.ms_ssim``, which it matches to ~1e-5): Gaussian window 11,
    sigma 1.5, K = (0.01, 0.03), 2x2 average pooling between scales, terms clamped at 0, Wang et
    al.'s weights, float32 throughout, on images shifted into [0, 2] (SSIM's luminance term assumes
    non-negative intensities). The 5 scales need > 160 px; smaller images use the
    ``ms_ssim_num_scales(size)`` that fit, weights renormalised to sum to 1, so values then compare
    only between sets of one size: record ``ms_ssim_num_scales`` beside them. DataError for unequal
    shapes or images smaller than the window."""
    a, b = check_images(a, "ms_ssim a"), check_images(b, "ms_ssim b")
    if a.shape != b.shape:
        raise DataError(f"ms_ssim: pairs need equal shapes, got {a.shape} and {b.shape}")
    scales = ms_ssim_num_scales(min(a.shape[2:]))
    if scales == 0:
        raise DataError(f"ms_ssim: images of {a.shape[2]}x{a.shape[3]} px are smaller than the "
                        f"{MS_SSIM_WIN} px window; evaluate at a higher resolution")
    weights = np.array(MS_SSIM_WEIGHTS[:scales])
    weights /= weights.sum()
    coords = np.arange(MS_SSIM_WIN) - MS_SSIM_WIN // 2
    gauss = np.exp(-(coords**2) / (2 * MS_SSIM_SIGMA**2))
    win = (gauss / gauss.sum()).astype(np.float32)

    out = []
    for start in range(0, len(a), BATCH):
        x = np.asarray(a[start:start + BATCH], dtype=np.float32) - np.float32(LOW)
        y = np.asarray(b[start:start + BATCH], dtype=np.float32) - np.float32(LOW)
        terms = []
        for scale in range(scales):
            ssim, cs = _ssim_and_cs(x, y, win)
            if scale < scales - 1:
                terms.append(np.maximum(cs, 0))
                x, y = _halve(x), _halve(y)
        terms.append(np.maximum(ssim, 0))
        per_channel = np.prod(np.stack(terms).astype(np.float64) ** weights[:, None, None],
                              axis=0)  # (batch, C)
        out.append(per_channel.mean(axis=1))
    return np.concatenate(out)


def ms_ssim_diversity(images: np.ndarray, n_pairs: int, seed: int = 0) -> float:
    """Mean MS-SSIM over ``n_pairs`` random pairs of different images of one set; lower = more
    diverse. Compare it with the same statistic on real images (as in Odena et al. 2017): a value
    well above the real one signals mode collapse."""
    images = check_images(images, "ms_ssim_diversity images")
    if len(images) < 2 or n_pairs < 1:
        raise DataError(f"ms_ssim_diversity: needs >= 2 images and >= 1 pair, got "
                        f"{len(images)} images and n_pairs={n_pairs}")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(images), size=n_pairs)
    second = rng.integers(0, len(images) - 1, size=n_pairs)
    second = second + (second >= first)  # skip first: never pair an image with itself
    return float(np.mean(ms_ssim(images[first], images[second])))
