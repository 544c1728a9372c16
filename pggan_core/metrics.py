"""Offline image metrics: SWD, MS-SSIM, vessel-agreement AUC and nearest-neighbour distance.

None of these needs downloaded weights, and all accept any channel count (RGB + vessel = 4,
four MR sequences + three label maps = 7). Images are float arrays (N, C, H, W) in [-1, 1].

- ``sliced_wasserstein``: NVIDIA's PGGAN metric (Karras et al. 2018, ``metrics/
  sliced_wasserstein.py``): how far the distribution of local 7x7 patches of the fakes is from
  that of the reals, per level of a Laplacian pyramid. Lower is better.
- ``ms_ssim`` / ``ms_ssim_diversity``: multi-scale structural similarity of image pairs. The mean
  over random pairs of *generated* images measures diversity (lower = more diverse; a collapsed
  generator scores near 1).
- ``vessel_agreement_auc``: the paper's consistency check: does the generator's own vessel
  channel predict what the vessel U-Net segments from the generated RGB?
- ``nearest_neighbour_distances``: L2 distance of each image to its closest training image, for
  memorisation checks (generated->train should not be smaller than heldout->train).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from pggan_core.errors import DataError

# ----------------------------------------------------------------------------------------------
# Sliced Wasserstein distance (PGGAN)

SWD_PATCH = 7  # descriptor size (NVIDIA's nhood_size)
SWD_DIRS_PER_REPEAT = 128  # projections are drawn and evaluated in groups of this size
SWD_IMAGE_CHUNK = 64  # images per pyramid pass; bounds memory at high resolution

# cv2.pyrDown's 5-tap binomial kernel; the 2-D filter NVIDIA uses is its outer product.
_BINOMIAL_5 = np.array([1.0, 4.0, 6.0, 4.0, 1.0], dtype=np.float32) / 16.0


def _check_images(images: np.ndarray, name: str) -> np.ndarray:
    if not hasattr(images, "shape"):
        images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise DataError(f"{name}: expected a non-empty (N, C, H, W) array, got shape "
                        f"{images.shape}; pass images as N x channels x height x width")
    return images


def _blur(x: np.ndarray) -> np.ndarray:
    """Separable 5x5 binomial blur with mirror borders, as NVIDIA's scipy.ndimage.convolve.

    Two 1-D passes of scipy are ~8x faster than torch's conv2d with one input channel on CPU.
    """
    x = ndimage.correlate1d(x, _BINOMIAL_5, axis=-1, mode="mirror")
    return ndimage.correlate1d(x, _BINOMIAL_5, axis=-2, mode="mirror")


def _pyr_down(x: np.ndarray) -> np.ndarray:
    return _blur(x)[:, :, ::2, ::2]


def _pyr_up(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    up = np.zeros((n, c, 2 * h, 2 * w), dtype=x.dtype)
    up[:, :, ::2, ::2] = x
    return _blur(up) * 4.0  # x4: three of every four samples are the inserted zeros


def laplacian_pyramid(images: np.ndarray, num_levels: int) -> list[np.ndarray]:
    """Band-pass levels, finest first; the last level is the low-pass residual (as NVIDIA)."""
    gaussians = [np.asarray(images, dtype=np.float32)]
    for _ in range(1, num_levels):
        gaussians.append(_pyr_down(gaussians[-1]))
    bands = [g - _pyr_up(g_next) for g, g_next in zip(gaussians[:-1], gaussians[1:], strict=True)]
    return bands + [gaussians[-1]]


def swd_resolutions(size: int, min_resolution: int = 16) -> list[int]:
    """The pyramid levels SWD reports for square images of ``size`` px: size, size/2, ... >= min."""
    out = []
    while size >= min_resolution:
        out.append(size)
        size //= 2
    return out


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


def _normalise(desc: np.ndarray) -> np.ndarray:
    """Per-channel zero mean, unit std over one set's patches, then flatten (NVIDIA's finalize)."""
    desc = desc - desc.mean(axis=(0, 2, 3), keepdims=True)
    std = desc.std(axis=(0, 2, 3), keepdims=True)
    # A channel that is constant in a set (an empty label map) would give 0/0 in NVIDIA's code;
    # it stays all-zero here instead.
    desc /= np.where(std > 0, std, 1.0)
    return desc.reshape(desc.shape[0], -1)


def _set_descriptors(images: np.ndarray, num_levels: int, per_image: int,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """Normalised descriptors of one image set, one (N * per_image, C * 49) array per level."""
    per_level: list[list[np.ndarray]] = [[] for _ in range(num_levels)]
    for start in range(0, len(images), SWD_IMAGE_CHUNK):
        chunk = images[start:start + SWD_IMAGE_CHUNK]
        for lod, level in enumerate(laplacian_pyramid(chunk, num_levels)):
            per_level[lod].append(_descriptors(level, per_image, rng))
    return [_normalise(np.concatenate(d)) for d in per_level]


def _sliced_wasserstein_1(a: np.ndarray, b: np.ndarray, n_projections: int,
                          rng: np.random.Generator) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance of the projections."""
    dims = a.shape[1]
    total = 0.0
    for start in range(0, n_projections, SWD_DIRS_PER_REPEAT):
        count = min(SWD_DIRS_PER_REPEAT, n_projections - start)
        dirs = rng.standard_normal((dims, count))
        dirs /= np.sqrt(np.sum(np.square(dirs), axis=0, keepdims=True))
        dirs_t = dirs.T.astype(np.float32)
        # Equal counts, so sorted projections are matched quantiles. (direction, patch) layout:
        # numpy sorts contiguous rows ~6x faster than columns, and torch.sort is slower still.
        proj_a = np.sort(dirs_t @ a.T, axis=1)
        proj_b = np.sort(dirs_t @ b.T, axis=1)
        total += float(np.abs(proj_a - proj_b).mean()) * count
    return total / n_projections


def sliced_wasserstein(real: np.ndarray, fake: np.ndarray, seed: int = 0,
                       n_descriptors: int = 128, n_projections: int = 512,
                       min_resolution: int = 16) -> dict[str, float]:
    """Multi-scale sliced Wasserstein distance between two image sets, x10^3 (NVIDIA's SWD).

    Follows PGGAN's ``metrics/sliced_wasserstein.py``: each image is decomposed into a Laplacian
    pyramid (cv2.pyrDown/pyrUp binomial filter, mirror borders) down to ``min_resolution`` px; at
    every level ``n_descriptors`` random 7x7 patches (all channels) are taken per image; each
    set's patches are normalised per channel (zero mean, unit std, over that set alone); the
    distance is the mean over ``n_projections`` random unit directions (NVIDIA: 4 x 128) of the
    mean absolute difference between the sorted projections of the two sets.

    Args:
        real, fake: (N, C, H, W) square images, any C; H must halve evenly down to the last level.
            Sets of different sizes are compared on a random subset of the larger one (NVIDIA
            compares equal counts).
        seed: fixes patch positions (independent streams for ``real`` and ``fake``, so
            ``sliced_wasserstein(x, x)`` is a small sampling-noise value, not exactly 0) and
            projection directions (shared by both sets).

    Returns:
        ``{"swd_<res>": ...}`` for every level (e.g. ``swd_64``, ``swd_32``, ``swd_16``; the
        finest level measures fine texture, the coarsest overall layout) and ``swd_mean``.

    Notes:
        Because each set is normalised on its own, SWD ignores a global per-channel brightness or
        contrast change of a whole set (NVIDIA's design); compare channel means separately if
        that matters. Inputs are not quantised to 8 bits as NVIDIA's fakes were.
    """
    real = _check_images(real, "sliced_wasserstein real")
    fake = _check_images(fake, "sliced_wasserstein fake")
    if real.shape[1:] != fake.shape[1:]:
        raise DataError(f"sliced_wasserstein: real images are {real.shape[1:]} but fakes are "
                        f"{fake.shape[1:]}; compare sets with the same channels and resolution")
    _, _, h, w = real.shape
    resolutions = swd_resolutions(h, min_resolution)
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
    """SWD between two disjoint halves of the *real* set: the value a perfect generator would get.

    SWD is never 0 for finite samples (different images, random patches), so a fake-vs-real SWD
    is only meaningful next to this floor computed with the same set size and settings. Split the
    real images in two halves of equal size, and compare fakes with one half of that size.
    """
    return sliced_wasserstein(real_a, real_b, seed=seed, **kwargs)


# ----------------------------------------------------------------------------------------------
# MS-SSIM

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003
MS_SSIM_WIN = 11
MS_SSIM_SIGMA = 1.5
_SSIM_K1, _SSIM_K2 = 0.01, 0.03


def ms_ssim_num_scales(size: int, win_size: int = MS_SSIM_WIN) -> int:
    """How many of the 5 MS-SSIM scales fit an image whose smaller side is ``size`` px.

    Scale k sees the image at about size / 2^k and needs at least ``win_size`` px there: 5 scales
    from 161 px (256), 4 from 81 px (128), 3 from 41 px (64), 2 from 21 px (32), 1 from 11 px.
    """
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and size >= win_size:
        scales += 1
        size = (size + 1) // 2
    return scales


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    coords = np.arange(size) - size // 2
    g = np.exp(-(coords**2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


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


def _ssim_and_cs(x: np.ndarray, y: np.ndarray, data_range: float,
                 win: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean SSIM and mean contrast-structure term per (image, channel)."""
    c1, c2 = (_SSIM_K1 * data_range) ** 2, (_SSIM_K2 * data_range) ** 2
    mu_x, mu_y, e_xx, e_yy, e_xy = _filter_valid(np.stack([x, y, x * x, y * y, x * y]), win)
    var_x, var_y, cov = e_xx - mu_x**2, e_yy - mu_y**2, e_xy - mu_x * mu_y
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs_map
    return ssim_map.mean(axis=(-2, -1)), cs_map.mean(axis=(-2, -1))


def ms_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 2.0, low: float = -1.0,
            batch: int = 64) -> np.ndarray:
    """MS-SSIM of each pair (a[i], b[i]), averaged over channels: shape (N,), 1 = identical.

    Standard MS-SSIM (Wang et al. 2003; as ``pytorch_msssim.ms_ssim``, which it matches to
    ~1e-5): Gaussian window 11, sigma 1.5, K = (0.01, 0.03), 2x2 average pooling between scales,
    terms clamped at 0, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). float32 throughout.

    Inputs are shifted by ``-low`` into [0, data_range] first, because SSIM's luminance term
    assumes non-negative intensities ([-1, 1] images -> [0, 2]).

    Small images: the 5 scales need > 160 px (11 px at the coarsest). Below that only the
    ``ms_ssim_num_scales(size)`` scales that fit are used and their weights are renormalised to
    sum to 1 (64 px -> 3 scales, 128 px -> 4). Values are then comparable only between image
    sets of the same size; record ``ms_ssim_num_scales`` next to the value.
    """
    a, b = _check_images(a, "ms_ssim a"), _check_images(b, "ms_ssim b")
    if a.shape != b.shape:
        raise DataError(f"ms_ssim: pairs need equal shapes, got {a.shape} and {b.shape}")
    scales = ms_ssim_num_scales(min(a.shape[2:]))
    if scales == 0:
        raise DataError(f"ms_ssim: images of {a.shape[2]}x{a.shape[3]} px are smaller than the "
                        f"{MS_SSIM_WIN} px window; evaluate at a higher resolution")
    weights = np.array(MS_SSIM_WEIGHTS[:scales])
    weights /= weights.sum()
    win = _gaussian_window(MS_SSIM_WIN, MS_SSIM_SIGMA)

    out = []
    for start in range(0, len(a), batch):
        x = np.asarray(a[start:start + batch], dtype=np.float32) - np.float32(low)
        y = np.asarray(b[start:start + batch], dtype=np.float32) - np.float32(low)
        terms = []
        for scale in range(scales):
            ssim, cs = _ssim_and_cs(x, y, data_range, win)
            if scale < scales - 1:
                terms.append(np.maximum(cs, 0))
                x, y = _halve(x), _halve(y)
        terms.append(np.maximum(ssim, 0))
        per_channel = np.prod(np.stack(terms).astype(np.float64) ** weights[:, None, None],
                              axis=0)  # (batch, C)
        out.append(per_channel.mean(axis=1))
    return np.concatenate(out)


def ms_ssim_diversity(images: np.ndarray, n_pairs: int, seed: int = 0) -> float:
    """Mean MS-SSIM over ``n_pairs`` random pairs of different images of one set.

    Lower = more diverse. Compare generated sets with the same statistic on real images (as in
    Odena et al. 2017); a value well above the real one signals mode collapse.
    """
    images = _check_images(images, "ms_ssim_diversity images")
    if len(images) < 2 or n_pairs < 1:
        raise DataError(f"ms_ssim_diversity: needs >= 2 images and >= 1 pair, got "
                        f"{len(images)} images and n_pairs={n_pairs}")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(images), size=n_pairs)
    second = rng.integers(0, len(images) - 1, size=n_pairs)
    second = second + (second >= first)  # skip first: never pair an image with itself
    return float(np.mean(ms_ssim(images[first], images[second])))


# ----------------------------------------------------------------------------------------------
# Vessel agreement (the paper's AUC)


# The U-Net's probability above which a pixel is labelled vessel. The authors' scripts binarise
# the U-Net's output at 0.4-0.5; 0.5 is the usual cut of a sigmoid trained with cross-entropy.
VESSEL_LABEL_THRESHOLD = 0.5


def _vessel_inputs(vessel_score: np.ndarray, segmentation: np.ndarray, fov: np.ndarray | None,
                   threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    score = np.asarray(vessel_score, dtype=np.float32)
    seg = np.asarray(segmentation, dtype=np.float32)
    if score.ndim != 3 or score.shape != seg.shape:
        raise DataError(f"vessel_agreement_auc: vessel_score {score.shape} and segmentation "
                        f"{seg.shape} must both be (N, H, W) of one shape")
    mask = np.ones(score.shape, dtype=bool) if fov is None else np.broadcast_to(
        np.asarray(fov, dtype=bool), score.shape)
    return score, seg > threshold, mask


def vessel_agreement_auc(vessel_score: np.ndarray, segmentation: np.ndarray,
                         fov: np.ndarray | None = None,
                         threshold: float = VESSEL_LABEL_THRESHOLD) -> float:
    """The paper's AUC: how well a vessel map *predicts* the U-Net's segmentation.

    Beers et al. (2018, "Image Quality"): the GAN's vessel maps "predict the segmentation maps
    generated from the segmentation algorithm" at AUC 0.97. So the label of each pixel is the
    U-Net's segmentation of the photograph, binarised at ``threshold``, and the score is the
    continuous vessel map (the GAN's own vessel channel; ground truth for the reference).
    Swapping the two (the U-Net's probability scored against a binarised vessel map) is a
    different number.

    Args:
        vessel_score: (N, H, W) continuous vessel map (any monotone scale, e.g. [-1, 1]).
        segmentation: (N, H, W) the U-Net's vessel probability on the same photographs.
        fov: (N, H, W) or (H, W) bool field of view; only pixels inside count. None = all.
        threshold: the probability above which the U-Net's pixel is a vessel.

    Returns:
        AUC over the pixels of all images pooled.
    """
    score, vessel, mask = _vessel_inputs(vessel_score, segmentation, fov, threshold)
    labels = vessel[mask]
    if labels.all() or not labels.any():
        raise DataError("vessel_agreement_auc: the U-Net's segmentation has only one class "
                        "inside the field of view, so AUC is undefined; check the images and "
                        "the threshold")
    return float(roc_auc_score(labels, score[mask]))


def per_image_vessel_auc(vessel_score: np.ndarray, segmentation: np.ndarray,
                         fov: np.ndarray | None = None,
                         threshold: float = VESSEL_LABEL_THRESHOLD) -> np.ndarray:
    """AUC of each image on its own (same arguments as ``vessel_agreement_auc``), shape (N,).

    NaN for an image whose segmentation has only one class inside the FOV; summarise with
    ``np.nanmean``. The spread shows whether a pooled AUC hides some badly inconsistent samples.
    """
    score, vessel, mask = _vessel_inputs(vessel_score, segmentation, fov, threshold)
    out = np.full(len(score), np.nan)
    for i in range(len(score)):
        labels = vessel[i][mask[i]]
        if labels.any() and not labels.all():
            out[i] = roc_auc_score(labels, score[i][mask[i]])
    return out


# ----------------------------------------------------------------------------------------------
# Nearest-neighbour distance (memorisation)


# bytes of one block of images in ``nearest_neighbours`` (float64): 32 images of 4 x 256^2,
# 8 of 4 x 512^2. The loop re-reads the query once per reference block, which costs a
# ``batch``-th of the distances themselves, so small blocks are cheap.
NN_BLOCK_BYTES = 64 * 2**20


def nearest_neighbours(query: np.ndarray, reference: np.ndarray,
                       batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each query image, the L2 distance (pixel space, flattened) to its closest reference
    image, and that image's index: two arrays of shape (N_query,).

    Chunked ``torch.cdist`` in float64 over blocks of ``batch`` x ``batch`` images (by default
    as many as fit ``NN_BLOCK_BYTES``), so memory stays bounded at any resolution and any
    number of images (either set may be a ``store.ImageView``, read a block at a time); the
    winning distance is recomputed directly, so an exact copy gives exactly 0.
    """
    query = _check_images(query, "nearest_neighbours query")
    reference = _check_images(reference, "nearest_neighbours reference")
    if query.shape[1:] != reference.shape[1:]:
        raise DataError(f"nearest_neighbours: query images are {query.shape[1:]} but reference "
                        f"images are {reference.shape[1:]}; compare at the same resolution")
    if batch is None:
        batch = max(1, min(256, NN_BLOCK_BYTES // (8 * int(np.prod(query.shape[1:])))))

    def flat(images, start: int) -> torch.Tensor:
        block = np.asarray(images[start:start + batch], dtype=np.float64)
        return torch.from_numpy(block.reshape(len(block), -1))

    best = np.full(len(query), np.inf)
    best_idx = np.zeros(len(query), dtype=np.int64)
    for r_start in range(0, len(reference), batch):
        r = flat(reference, r_start)
        for q_start in range(0, len(query), batch):
            q = flat(query, q_start)
            dist, idx = torch.cdist(q, r).min(dim=1)
            dist, idx = dist.numpy(), idx.numpy() + r_start
            rows = slice(q_start, q_start + len(q))
            better = dist < best[rows]
            best[rows] = np.where(better, dist, best[rows])
            best_idx[rows] = np.where(better, idx, best_idx[rows])
    distances = np.empty(len(query))
    for start in range(0, len(query), batch):
        rows = slice(start, start + batch)
        diff = flat(query, start).numpy() - np.asarray(reference[best_idx[rows]], np.float64
                                                       ).reshape(len(best_idx[rows]), -1)
        distances[rows] = np.sqrt(np.sum(diff * diff, axis=1))
    return distances, best_idx


def nearest_neighbour_distances(query: np.ndarray, reference: np.ndarray,
                                batch: int | None = None) -> np.ndarray:
    """L2 distance of each query image to its closest reference image, shape (N_query,).

    For memorisation: compare ``nearest_neighbour_distances(generated, train)`` with
    ``nearest_neighbour_distances(heldout, train)``; generated images sitting much closer to the
    training set than held-out real images do are copies.
    """
    return nearest_neighbours(query, reference, batch)[0]
