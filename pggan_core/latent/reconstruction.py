"""Figure 4 as numbers: does a held-out image's regeneration resemble *that* image?

The paper judges its encoder's reconstructions by eye ("the neural network was able to
qualitatively approximate the global vessel structure of each real image in the held-out set").
Two measures over every reconstructed held-out image put that in numbers:

* **nearest-input retrieval**: the share of reconstructions closer (pixel MSE, image channels) to
  their own input than to every other held-out input, against chance 1/n; retrieved are those
  that keep what sets their image apart (eye side, disc position, brightness; slice level, head).
* **detail correlation**: the mean Pearson correlation of input and reconstruction fine detail
  (grey level, the image channels' mean, minus a Gaussian blur of sigma R/21), beside that of
  unrelated pairs (a fixed derangement): what two images of this kind share anyway.

Both compare inside the *input's* region (``DatasetSpec.regions``, e.g. ``brain_regions``).
Detail is scored only more than two blur sigmas inside the region's edge: nearer, the rim is
alike in every image and passes for shared detail (on the fundus demo run it lifts unrelated
pairs' correlation from about 0.04 to 0.18).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter

from pggan_core.data.preprocess import brain_mask, fields_of_view
from pggan_core.datasets import dataset_spec, hook
from pggan_core.settings import DataConfig

DETAIL_SIGMA_DIVISOR = 21  # detail blur sigma = image side / 21 (3 px at 64 px, 24 at 512)
DETAIL_RIM_SIGMAS = 2.0  # detail is scored this many sigmas or more inside the region's edge
READ_BATCH = 64  # held-out inputs read (and converted) at a time
RETRIEVAL_ABOVE_CHANCE = 2.0  # retrieval at less than this many times chance reads as chance
DETAIL_MOSTLY_KEPT = 0.5  # own-input detail correlation from which most detail reads as kept
DETAIL_GAP_NOISE = 0.02  # own minus unrelated correlation below this reads as no difference
COARSE_SIGMA_DIVISOR = 10  # the arcades' scale: a blur of sigma R / 10 (6.4 px at 64 px)


def detail_maps(grey: np.ndarray, regions: np.ndarray, sigma: float) -> np.ndarray:
    """Fine detail of grey images (N, R, R) inside ``regions`` (N, R, R) bool, 0 outside: grey
    minus its Gaussian blur over the region only (normalised convolution: blur of grey × region
    / blur of region), so a dark surround does not make the region's rim look like detail."""
    weight = np.asarray(regions, np.float32)
    only_image_axes = (0, sigma, sigma)
    blurred_grey = gaussian_filter(np.asarray(grey, np.float32) * weight, only_image_axes,
                                   mode="constant")
    blurred_weight = gaussian_filter(weight, only_image_axes, mode="constant")
    # inside the region a pixel weighs on its own blur, so the divisor is positive there
    smooth = blurred_grey / np.where(weight > 0, blurred_weight, 1.0)
    return np.where(weight > 0, grey - smooth, 0.0).astype(np.float32)


def detail_cores(regions: np.ndarray, sigma: float) -> np.ndarray:
    """The pixels of ``regions`` (N, R, R) bool farther than ``DETAIL_RIM_SIGMAS`` blur sigmas
    from the region's edge (the image border counts as an edge): where detail is scored."""
    cores = np.zeros(np.shape(regions), bool)
    for i, region in enumerate(regions):
        # padded with background so a region touching the border is eroded there too
        distance = distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        cores[i] = distance > DETAIL_RIM_SIGMAS * sigma
    return cores


def region_correlations(first: np.ndarray, second: np.ndarray, regions: np.ndarray
                        ) -> np.ndarray:
    """Pearson correlation of each pair of maps (N, R, R) over its region's pixels: 0 for a map
    flat there (a flat reconstruction has no detail to match), NaN for a region under 2 pixels."""
    out = np.full(len(first), np.nan)
    for i, (a, b, region) in enumerate(zip(first, second, regions, strict=True)):
        a, b = a[region].astype(np.float64), b[region].astype(np.float64)
        if a.size < 2:
            continue
        a, b = a - a.mean(), b - b.mean()
        spread = np.sqrt((a * a).sum() * (b * b).sum())
        out[i] = (a * b).sum() / spread if spread > 0 else 0.0
    return out


def fixed_derangement(n: int, seed: int = 0) -> np.ndarray:
    """A permutation of ``range(n)`` with no ``p[i] == i``, fixed by ``n`` and ``seed``;
    ValueError below 2. Sattolo's algorithm (one cycle through all ``n``): random, not a shift by
    one, so manifest neighbours (a volume's slices, a patient's eyes) are not paired by rule."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    rng = np.random.default_rng(seed)
    permutation = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))  # j < i: the defining difference from Fisher-Yates
        permutation[i], permutation[j] = permutation[j], permutation[i]
    return permutation


def region_mse_to_inputs(reconstructions: np.ndarray, masked_inputs: np.ndarray,
                         regions: np.ndarray, input_energy: np.ndarray) -> np.ndarray:
    """MSE of each reconstruction (B, C, R, R) against each input in the input's region, float64
    (B, N). ``masked_inputs`` (N, C·R·R): inputs × region; ``regions`` (N, R·R): 0/1 floats;
    ``input_energy`` (N,): their squares' sums. As ``sum M r² - 2 sum M x r + sum M x²``: two
    matrix products, not a (B, N, C, R, R) array of differences."""
    batch, channels = reconstructions.shape[:2]
    flat = np.asarray(reconstructions, np.float32).reshape(batch, channels, -1)
    recon_energy = (flat * flat).sum(axis=1) @ regions.T  # sum over each input's region
    cross = flat.reshape(batch, -1) @ masked_inputs.T
    pixels = np.maximum(regions.sum(axis=1), 1.0) * channels
    squared = recon_energy.astype(np.float64) - 2.0 * cross + input_energy[None, :]
    return np.maximum(squared, 0.0) / pixels[None, :]


# ``DatasetSpec.regions``: (retrieval region, detail region) of input images (B, C, R, R)


def whole_image_regions(image_channels: np.ndarray, data_cfg: DataConfig
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The whole image for both, where a dataset names nothing better."""
    whole = np.ones((len(image_channels), *image_channels.shape[2:]), bool)
    return whole, whole


def fundus_regions(image_channels: np.ndarray, data_cfg: DataConfig
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The field of view for both: outside it a photograph is black."""
    fov = fields_of_view(image_channels, data_cfg)
    return fov, fov


def brain_regions(image_channels: np.ndarray, data_cfg: DataConfig
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The whole slice for retrieval (the brain's outline is part of what identifies it),
    the brain for detail."""
    return whole_image_regions(image_channels, data_cfg)[0], brain_mask(image_channels)


class ReconstructionScores:
    """Retrieval and detail correlation of held-out reconstructions, fed a batch at a time: holds
    the inputs' masked image channels, regions and detail maps (about one copy of the held-out
    image channels); reconstructions are scored on ``add`` and dropped, so memory stays bounded.
    ``variant`` keeps reconstructions of the same inputs (encoder's, refined) apart."""

    def __init__(self, inputs: Any, data_cfg: DataConfig) -> None:
        """``inputs``: the held-out images (N, C, R, R) in [-1, 1], an array or a
        ``PreparedDataset.view`` (read ``READ_BATCH`` at a time)."""
        spec = dataset_spec(data_cfg.dataset)
        self.n_image_channels, regions = spec.image_channels, hook(spec.regions)
        self.n, side = len(inputs), int(inputs.shape[-1])
        self.sigma = side / DETAIL_SIGMA_DIVISOR
        parts: dict[str, list[np.ndarray]] = {name: [] for name in (
            "masked", "energy", "retrieval", "detail", "detail_regions", "detail_cores")}
        for start in range(0, self.n, READ_BATCH):
            images = np.asarray(inputs[start:start + READ_BATCH], np.float32)
            image_channels = images[:, :self.n_image_channels]
            retrieval_region, detail_region = regions(image_channels, data_cfg)
            masked = (image_channels * retrieval_region[:, None]).reshape(len(images), -1)
            parts["masked"].append(masked)
            # in float64 a batch at a time: a float64 copy of all inputs would be 4 GB at 512 px
            parts["energy"].append((masked.astype(np.float64) ** 2).sum(axis=1))
            parts["retrieval"].append(retrieval_region.reshape(len(images), -1)
                                      .astype(np.float32))
            parts["detail_regions"].append(detail_region)
            parts["detail_cores"].append(detail_cores(detail_region, self.sigma))
            parts["detail"].append(detail_maps(image_channels.mean(axis=1), detail_region,
                                               self.sigma))

        def joined(name: str, empty_shape: tuple[int, ...]) -> np.ndarray:
            return np.concatenate(parts[name]) if parts[name] else np.zeros(empty_shape,
                                                                            np.float32)

        self._masked_inputs = joined("masked", (0, self.n_image_channels * side ** 2))
        self._retrieval_regions = joined("retrieval", (0, side ** 2))
        self._input_energy = joined("energy", (0,))
        self._detail_regions = joined("detail_regions", (0, side, side)).astype(bool)
        self._detail_cores = joined("detail_cores", (0, side, side)).astype(bool)
        self._input_details = joined("detail", (0, side, side))
        # reconstruction j is the unrelated partner of input partner[j]
        self._partner = np.argsort(fixed_derangement(self.n)) if self.n >= 2 else None
        self._scores: dict[str, dict[str, np.ndarray]] = {}

    def add(self, variant: str, start: int, reconstructions: np.ndarray) -> None:
        """Score the reconstructions (B, C, R, R) of held-out inputs ``start:start + B``."""
        if variant not in self._scores:
            self._scores[variant] = {name: np.full(self.n, np.nan) for name in
                                     ("retrieved", "related", "unrelated")}
        scores = self._scores[variant]
        own = np.arange(start, start + len(reconstructions))
        image_channels = np.asarray(reconstructions[:, :self.n_image_channels], np.float32)
        distances = region_mse_to_inputs(image_channels, self._masked_inputs,
                                         self._retrieval_regions, self._input_energy)
        scores["retrieved"][own] = distances.argmin(axis=1) == own
        grey = image_channels.mean(axis=1)
        scores["related"][own] = self._detail_correlations(own, grey)
        if self._partner is not None:
            scores["unrelated"][own] = self._detail_correlations(self._partner[own], grey)

    def _detail_correlations(self, inputs: np.ndarray, grey: np.ndarray) -> np.ndarray:
        """Detail correlation of grey reconstructions (B, R, R) with inputs ``inputs`` (B)."""
        reconstructed = detail_maps(grey, self._detail_regions[inputs], self.sigma)
        return region_correlations(self._input_details[inputs], reconstructed,
                                   self._detail_cores[inputs])

    def results(self, variant: str) -> dict[str, float | None]:
        """Retrieval share and mean detail correlations (own, unrelated; images without a core
        left out) of ``variant``: None where it scored no image (unrelated: fewer than two);
        ValueError where only some held-out images were scored."""
        scores = self._scores.get(variant)
        if scores is None or np.isnan(scores["retrieved"]).all():
            return {"retrieval": None, "detail_correlation": None,
                    "detail_correlation_unrelated": None}
        if np.isnan(scores["retrieved"]).any():
            raise ValueError(f"{variant}: not every held-out image was reconstructed")

        def mean_of_defined(values: np.ndarray) -> float | None:
            defined = values[~np.isnan(values)]
            return float(defined.mean()) if defined.size else None

        return {"retrieval": float(scores["retrieved"].mean()),
                "detail_correlation": mean_of_defined(scores["related"]),
                "detail_correlation_unrelated": mean_of_defined(scores["unrelated"])}

    def summary(self, variants: tuple[str, ...] = ("encoder", "refined")) -> dict[str, Any]:
        """The ``encoder.json`` fields: each measure as {variant: value}, with chance, the
        blur's sigma and how many images had a core to score detail in."""
        results = {variant: self.results(variant) for variant in variants}
        return {
            "reconstruction_retrieval": {v: r["retrieval"] for v, r in results.items()},
            "reconstruction_retrieval_chance": 1.0 / self.n if self.n else None,
            "reconstruction_detail_correlation": {
                v: r["detail_correlation"] for v, r in results.items()},
            "reconstruction_detail_correlation_unrelated": {
                v: r["detail_correlation_unrelated"] for v, r in results.items()},
            "reconstruction_detail_sigma_px": self.sigma,
            "reconstruction_detail_images": int((self._detail_cores.sum(axis=(1, 2)) >= 2).sum()),
        }


def reconstruction_scores(inputs: np.ndarray, reconstructions: np.ndarray,
                          data_cfg: DataConfig) -> dict[str, float | None]:
    """``ReconstructionScores.results`` of one set of reconstructions (N, C, R, R) of
    ``inputs`` (N, C, R, R), both in [-1, 1]."""
    scores = ReconstructionScores(inputs, data_cfg)
    scores.add("reconstruction", 0, reconstructions)
    return scores.results("reconstruction")


# ---------------------------------------------------------------------------------------------
# "qualitatively approximate the global vessel structure": label channels at the layout's scale


def coarse_label_maps(images: np.ndarray, n_image_channels: int) -> np.ndarray:
    """Label channels (vessels; tumour labels) of (N, C, R, R) images in [-1, 1] as one [0, 1] map
    blurred to sigma R / ``COARSE_SIGMA_DIVISOR``; (N, 0, 0) without label channels."""
    images = np.asarray(images, np.float32)
    if images.shape[1] <= n_image_channels:
        return np.zeros((len(images), 0, 0), np.float32)
    labels = (images[:, n_image_channels:].mean(axis=1) + 1.0) / 2.0
    sigma = images.shape[-1] / COARSE_SIGMA_DIVISOR
    return np.stack([gaussian_filter(m, sigma) for m in labels]) if len(labels) else labels


def coarse_label_retrieval(input_maps: np.ndarray, reconstruction_maps: np.ndarray,
                           classes: np.ndarray) -> dict[str, Any]:
    """Does a reconstruction's label channel keep its input's layout? ``own_first``: the share of
    reconstructions whose ``coarse_label_maps`` correlate best (Pearson) with their own input's
    among inputs of their class (``classes``, e.g. the eye: the disc's side alone must not
    decide), against ``chance`` (mean 1 / class size); None without label channels or flat maps."""
    n = len(input_maps)
    if n == 0 or input_maps.size == 0:
        return {"own_first": None, "chance": None, "n": 0}
    first = input_maps.reshape(n, -1) - input_maps.reshape(n, -1).mean(axis=1, keepdims=True)
    second = (reconstruction_maps.reshape(n, -1)
              - reconstruction_maps.reshape(n, -1).mean(axis=1, keepdims=True))
    norms = np.linalg.norm(first, axis=1), np.linalg.norm(second, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = (second @ first.T) / np.outer(norms[1], norms[0])
    classes = np.asarray(classes)
    hits, chances = [], []
    for i in range(n):
        same = np.flatnonzero(classes == classes[i])
        row = correlation[i, same]
        if len(same) < 2 or not np.isfinite(row).all():
            continue
        hits.append(same[np.argmax(row)] == i)
        chances.append(1.0 / len(same))
    if not hits:
        return {"own_first": None, "chance": None, "n": 0}
    return {"own_first": float(np.mean(hits)), "chance": float(np.mean(chances)),
            "n": len(hits), "sigma_divisor": COARSE_SIGMA_DIVISOR}
