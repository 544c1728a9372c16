"""Sliced Wasserstein distance, NVIDIA's PGGAN metric (Karras et al. 2018,
``metrics/sliced_wasserstein.py``): how far the distribution of local 7x7 patches of the fakes is
from that of the reals, per level of a Laplacian pyramid; lower is better. Needs no downloaded
weights and takes any channel count; images are float arrays (N, C, H, W) in [-1, 1]."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pggan_core.errors import DataError
from pggan_core.measures import check_images
from pggan_core.settings import EvalConfig

SWD_PATCH = 7  # descriptor size (NVIDIA's nhood_size)
SWD_DIRS_PER_REPEAT = 128  # projections are drawn and evaluated in groups of this size
SWD_IMAGE_CHUNK = 64  # images per pyramid pass; bounds memory at high resolution
# cv2.pyrDown's 5-tap binomial kernel; the 2-D filter NVIDIA uses is its outer product.
_BINOMIAL_5 = np.array([1.0, 4.0, 6.0, 4.0, 1.0], dtype=np.float32) / 16.0


def _blur(x: np.ndarray) -> np.ndarray:
    """Separable 5x5 binomial blur with mirror borders, as NVIDIA's scipy.ndimage.convolve.
    Two 1-D passes of scipy, not torch's conv2d: much faster on CPU (benchmarks/README.md)."""
    x = ndimage.correlate1d(x, _BINOMIAL_5, axis=-1, mode="mirror")
    return ndimage.correlate1d(x, _BINOMIAL_5, axis=-2, mode="mirror")


def _pyr_up(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    up = np.zeros((n, c, 2 * h, 2 * w), dtype=x.dtype)
    up[:, :, ::2, ::2] = x
    return _blur(up) * 4.0  # x4: three of every four samples are the inserted zeros


def laplacian_pyramid(images: np.ndarray, num_levels: int) -> list[np.ndarray]:
    """Band-pass levels, finest first; the last level is the low-pass residual (as NVIDIA)."""
    gaussians = [np.asarray(images, dtype=np.float32)]
    for _ in range(1, num_levels):
        gaussians.append(_blur(gaussians[-1])[:, :, ::2, ::2])
    bands = [g - _pyr_up(g_next) for g, g_next in zip(gaussians[:-1], gaussians[1:], strict=True)]
    return bands + [gaussians[-1]]


def _descriptors(level: np.ndarray, per_image: int, rng: np.random.Generator) -> np.ndarray:
    """``per_image`` random 7x7 patches (all channels) per image: (N * per_image, C, 7, 7)."""
    n, _, h, w = level.shape
    half = SWD_PATCH // 2
    offsets = np.arange(-half, half + 1)
    # Centres keep the whole patch inside the image, as NVIDIA's randint(H, S - H).
    ys = rng.integers(half, h - half, size=(n, per_image))
    xs = rng.integers(half, w - half, size=(n, per_image))
    img = np.arange(n)[:, None, None, None]
    rows = ys[:, :, None, None] + offsets[None, None, :, None]
    cols = xs[:, :, None, None] + offsets[None, None, None, :]
    patches = level[img, :, rows, cols]  # (N, per_image, 7, 7, C)
    return patches.reshape(n * per_image, SWD_PATCH, SWD_PATCH, -1).transpose(0, 3, 1, 2)


def _set_descriptors(images: np.ndarray, num_levels: int, per_image: int,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """Descriptors of one image set, one (N * per_image, C * 49) array per level, normalised
    per channel to zero mean and unit std over the set's patches (NVIDIA's finalize)."""
    per_level: list[list[np.ndarray]] = [[] for _ in range(num_levels)]
    for start in range(0, len(images), SWD_IMAGE_CHUNK):
        chunk = images[start:start + SWD_IMAGE_CHUNK]
        for lod, level in enumerate(laplacian_pyramid(chunk, num_levels)):
            per_level[lod].append(_descriptors(level, per_image, rng))
    out = []
    for descriptors in per_level:
        desc = np.concatenate(descriptors)
        desc = desc - desc.mean(axis=(0, 2, 3), keepdims=True)
        std = desc.std(axis=(0, 2, 3), keepdims=True)
        # a channel constant over the set (an empty label map) is 0/0 in NVIDIA's code; 0 here
        desc /= np.where(std > 0, std, 1.0)
        out.append(desc.reshape(desc.shape[0], -1))
    return out


def _sliced_wasserstein_1(a: np.ndarray, b: np.ndarray, n_projections: int,
                          rng: np.random.Generator) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance of the projections."""
    total = 0.0
    for start in range(0, n_projections, SWD_DIRS_PER_REPEAT):
        count = min(SWD_DIRS_PER_REPEAT, n_projections - start)
        dirs = rng.standard_normal((a.shape[1], count))
        dirs /= np.sqrt(np.sum(np.square(dirs), axis=0, keepdims=True))
        dirs_t = dirs.T.astype(np.float32)
        # Equal counts, so sorted projections are matched quantiles. (direction, patch) layout:
        # numpy sorts contiguous rows much faster than columns (benchmarks/README.md).
        proj_a = np.sort(dirs_t @ a.T, axis=1)
        proj_b = np.sort(dirs_t @ b.T, axis=1)
        total += float(np.abs(proj_a - proj_b).mean()) * count
    return total / n_projections


def sliced_wasserstein(real: np.ndarray, fake: np.ndarray, seed: int = 0,
                       n_descriptors: int = 128, n_projections: int = 512,
                       min_resolution: int = 16) -> dict[str, float]:
    """Multi-scale sliced Wasserstein distance between two image sets, x10^3 (NVIDIA's SWD).

    As PGGAN's: a Laplacian pyramid of each image (binomial filter, mirror borders) down to
    ``min_resolution`` px; ``n_descriptors`` random 7x7 patches (all channels) per image and level,
    normalised per channel over their own set (so SWD ignores a global per-channel brightness or
    contrast change of a whole set, by NVIDIA's design); the mean over ``n_projections`` random unit
    directions (NVIDIA: 4 x 128) of the mean absolute difference of the sorted projections. Inputs
    are not quantised to 8 bits. ``real`` and ``fake``: square (N, C, H, W), H halving evenly to the
    last level (DataError otherwise); the larger set is subsampled to the smaller's size (NVIDIA
    compares equal counts). ``seed`` fixes the patches (a stream per set, so
    ``sliced_wasserstein(x, x)`` is small sampling noise, not 0) and the directions (shared).
    Returns ``swd_<res>`` per level (the finest measures texture, the coarsest layout) and
    ``swd_mean``.
    """
    real = check_images(real, "sliced_wasserstein real")
    fake = check_images(fake, "sliced_wasserstein fake")
    if real.shape[1:] != fake.shape[1:]:
        raise DataError(f"sliced_wasserstein: real images are {real.shape[1:]} but fakes are "
                        f"{fake.shape[1:]}; compare sets with the same channels and resolution")
    _, _, h, w = real.shape
    resolutions, size = [], h  # the levels reported: h, h/2, ... >= min_resolution
    while size >= min_resolution:
        resolutions.append(size)
        size //= 2
    if h != w or not resolutions or h % resolutions[-1] or min_resolution < SWD_PATCH:
        raise DataError(f"sliced_wasserstein: images of {h}x{w} px cannot be reduced to "
                        f"{min_resolution} px by halving; use square power-of-two images of at "
                        f"least {max(min_resolution, SWD_PATCH)} px")

    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    real_rng, fake_rng, dir_rng, subset_rng = streams
    count = min(len(real), len(fake))
    if len(real) > count:
        real = real[np.sort(subset_rng.choice(len(real), count, replace=False))]
    if len(fake) > count:
        fake = fake[np.sort(subset_rng.choice(len(fake), count, replace=False))]

    real_desc = _set_descriptors(real, len(resolutions), n_descriptors, real_rng)
    fake_desc = _set_descriptors(fake, len(resolutions), n_descriptors, fake_rng)
    result = {
        f"swd_{res}": 1e3 * _sliced_wasserstein_1(a, b, n_projections, dir_rng)
        for res, a, b in zip(resolutions, real_desc, fake_desc, strict=True)
    }
    result["swd_mean"] = float(np.mean(list(result.values())))
    return result


def swd_floor(real_a: np.ndarray, real_b: np.ndarray, seed: int = 0,
              **kwargs: int) -> dict[str, float]:
    """SWD between two disjoint halves of the *real* set: what a perfect generator would get. SWD is
    never 0 for finite samples, so a fake-vs-real SWD means something only beside this floor, with
    the same set size and settings (compare fakes with one half)."""
    return sliced_wasserstein(real_a, real_b, seed=seed, **kwargs)


def swd_options(eval_cfg: EvalConfig) -> dict[str, int]:
    """``sliced_wasserstein``'s sampling settings from the config's ``eval`` section."""
    return {"n_descriptors": eval_cfg.swd_descriptors, "n_projections": eval_cfg.swd_projections}
