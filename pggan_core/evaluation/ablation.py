"""The paper's Figure 3 as numbers: the same budget trained with and without segmentation channels,
both judged on their image channels only, with a verdict and its uncertainty per measure.

Beers et al. (2018, "Effect of Segmentation Channels") say that images trained without the
segmentation maps "often obscured details important to pathological diagnosis, such as global
retinal structures in the fundus images, and biologically-plausible tumor structures in the MRI
slices". Both models are measured against the same real images by the SWD of the image channels
alone (an all-channel SWD can hide artefacts of the photograph behind a well-drawn label map) and by
the anatomy the images show (``FundusStructure``, ``MriStructure``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from pggan_core.atomic import write_text_atomic
from pggan_core.data.preprocess import brain_mask, fields_of_view
from pggan_core.datasets import dataset_spec, hook
from pggan_core.evaluation.vessel_agreement import VESSEL_LABEL_THRESHOLD
from pggan_core.generate import sample_images
from pggan_core.measures import domain_stats, global_structure
from pggan_core.measures.swd import sliced_wasserstein, swd_floor, swd_options
from pggan_core.provenance import code_hashes, code_that_ran, derivation
from pggan_core.runs.folder import RunSpec, open_run, stale_result
from pggan_core.segmentation.vessels import enlarge_fundus, ensure_vessel_unet
from pggan_core.settings import DataConfig
from pggan_core.training.checkpoint import load_generator, weights_fingerprint

SEG, NOSEG = "with segmentation", "without segmentation"  # the two runs, as ``runs`` keys
PAPER, AGAINST, UNCLEAR = "paper's direction", "against", "no clear difference"
N_BOOTSTRAP = 1000  # resamples of the images per structure measure
SWD_REPEATS = 10  # an SWD takes seconds: 10 resampled repeats, not 1000
CONFIDENCE = 0.95
DISTANCE = "|log(mean generated / mean real)|"
SWD_IMAGE_LABEL = "SWD x1e3 to real (image channels)"
BRIGHT = 0.5  # channels are z / z_clip with z_clip 4 by default: 0.5 means z > 2

# names for the sentences and the conclusion
MEASURE_NAMES = {
    "swd_image_channels": "SWD of the image channels",
    "vessel_density_soft": "soft vessel density (mean U-Net probability)",
    "vessel_density": "vessel density (thresholded)",
    "branch_points": "vessel junctions",
    "tortuosity": "vessel tortuosity",
    "flair_hyperintense_fraction": "FLAIR-hyperintense share of the brain",
    "t1c_enhancing_fraction": "T1c-enhancing share of the brain",
    # the global layout (measures.global_structure)
    "radial_alignment": "vessels radiating from the disc (|cos| to the disc direction)",
    "vessel_reach": "the vessel tree's reach from the disc",
    "disc_uniqueness": "one optic disc (its lead over a second bright spot)",
    "lesion_nesting": "enhancing rim inside the FLAIR lesion",
    "lesion_components": "separate FLAIR lesions per slice",
}


# ------------------------------------------------------------- Structure in the image channels


def vessel_maps_at_unet_scale(segmenter, images: np.ndarray, data_cfg: DataConfig,
                              scale_to: int) -> tuple[np.ndarray, np.ndarray]:
    """The U-Net's vessel probability of fundus images (N, >=3, R, R) in [-1, 1] and the field of
    view, two (N, S, S) arrays at S = ``scale_to`` px: each photograph enlarged bicubically (its
    field of view by nearest neighbour, ``vessels.enlarge_fundus``) and segmented there, real and
    generated alike."""
    fovs = fields_of_view(images, data_cfg)
    enlarged = [enlarge_fundus(image, fov, scale_to) for image, fov in zip(images, fovs,
                                                                           strict=True)]
    if not enlarged:
        empty = np.zeros((0, scale_to, scale_to))
        return empty.astype(np.float32), empty.astype(bool)
    rgbs, big_fovs = zip(*enlarged, strict=True)
    probs = segmenter.segment_batch(list(rgbs), list(big_fovs))
    return np.stack(probs).astype(np.float32), np.stack(big_fovs)


class FundusStructure:
    """Vessel anatomy read from photographs alone, so runs without segmentation compare: a
    ``DatasetSpec.structure`` (built from a config; called on image channels (N, C, R, R) in
    [-1, 1], returns {statistic: per-image values}). The U-Net reads each photograph at its training
    resolution: at the images' own size a thin vessel's probability would average with the
    background below the threshold, breaking the tree at its junctions. At most
    ``eval.n_auc_images`` images per set are read (``max_images``: the U-Net is the slow part)."""

    def __init__(self, config: Any) -> None:
        self.data_cfg, self.scale = config.data, config.vessels.train_resolution
        self.segmenter = ensure_vessel_unet(config, progress=False)
        self.max_images: int | None = config.eval.n_auc_images

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self.reading(images, self.data_cfg, self.segmenter, self.scale)

    @staticmethod
    def reading(images: np.ndarray, data_cfg: DataConfig, segmenter, scale_to: int
                ) -> dict[str, np.ndarray]:
        """The measures of fundus ``images`` as ``segmenter`` reads them at ``scale_to`` px."""
        threshold = VESSEL_LABEL_THRESHOLD
        probs, fovs = vessel_maps_at_unet_scale(segmenter, images, data_cfg, scale_to)
        area = np.maximum(fovs.sum(axis=(1, 2)), 1)
        soft = np.where(fovs.any(axis=(1, 2)), (probs * fovs).sum(axis=(1, 2)) / area, np.nan)
        # the disc found in the photograph, its pixel centres moved to the maps' scale
        scale = scale_to / images.shape[-1]
        centres = (global_structure.disc_centres(images) + 0.5) * scale - 0.5
        return {"vessel_density_soft": soft,
                **domain_stats.fundus_stats(probs > threshold, fovs),
                "radial_alignment": global_structure.radial_alignment(probs, fovs, centres,
                                                                      threshold),
                "vessel_reach": global_structure.vessel_reach(probs > threshold, fovs,
                                                              centres),
                "disc_uniqueness": global_structure.disc_uniqueness(
                    images, fields_of_view(images, data_cfg))}

    def maps(self, images: np.ndarray) -> np.ndarray:
        """The U-Net's vessel probability at its own scale (N, S, S): what the measures read."""
        return vessel_maps_at_unet_scale(self.segmenter, images, self.data_cfg, self.scale)[0]

    def description(self, resolution: int) -> dict[str, Any]:
        """How the photographs were read, for ``ablation.json`` and the page."""
        return {"scale_px": self.scale, "threshold": VESSEL_LABEL_THRESHOLD,
                "path": f"photographs enlarged bicubically from {resolution} px to "
                        f"{self.scale} px (the U-Net's training resolution), field of view by "
                        f"nearest neighbour; vessel where the probability > "
                        f"{VESSEL_LABEL_THRESHOLD} at {self.scale} px; real and generated "
                        "images alike"}


class MriStructure:
    """Tumour-like anatomy read from the four MR contrasts alone: the share of the brain that is
    FLAIR-hyperintense (z > 2, oedema-like) and T1c-enhancing (z > 2, enhancing-tumour-like), and
    the lesions' layout."""

    max_images: int | None = None

    def __init__(self, config: Any) -> None:
        """Nothing to set up: the contrasts are read as they are."""

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        brain = brain_mask(images)
        area = np.maximum(brain.sum(axis=(1, 2)), 1)
        oedema, enhancing = (images[:, 3] > BRIGHT) & brain, (images[:, 1] > BRIGHT) & brain
        return {"flair_hyperintense_fraction": oedema.sum((1, 2)) / area,
                "t1c_enhancing_fraction": enhancing.sum((1, 2)) / area,
                "lesion_nesting": global_structure.lesion_nesting(oedema, enhancing),
                "lesion_components": global_structure.lesion_components(oedema)}

    def maps(self, images: np.ndarray) -> None:
        """The measures read the contrasts themselves: no map to show beside them."""
        return None

    def description(self, resolution: int) -> None:
        """None: the contrasts are read as they are."""
        return None


def structure_reader(dataset: str, run: str | Path):
    """The dataset's structure reader (``DatasetSpec.structure``) for the run's config."""
    return hook(dataset_spec(dataset).structure)(open_run(run).config)


# ------------------------------------------------------------------------------------ Verdicts


def verdict_from_interval(low: float, high: float) -> str:
    """The verdict of an interval of (distance without − with segmentation): above 0 the paper's
    direction (the channel brings the model closer to real), below 0 against, else no clear
    difference."""
    if low > 0:  # False for NaN; an infinite bound (one model found nothing) still counts
        return PAPER
    if high < 0:
        return AGAINST
    return UNCLEAR


def ratio_distance(generated_mean: np.ndarray | float, real_mean: np.ndarray | float
                   ) -> np.ndarray:
    """``|log(generated / real)|``: 0 as real, 2x and 0.5x equally far, infinite when one is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(np.log(np.asarray(generated_mean, float) / np.asarray(real_mean, float)))


def bootstrap_verdict(real: np.ndarray, seg: np.ndarray, noseg: np.ndarray,
                      n_resamples: int = N_BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """Which model's per-image statistic (NaN = undefined, left out) is closer to real: distances
    are ``ratio_distance`` of the means; the three sets are resampled independently ``n_resamples``
    times (``seed``) and the central ``CONFIDENCE`` percentile interval of (noseg − seg distance)
    decides (``verdict_from_interval``), its bounds observed values so that an infinite difference
    (one model found no vessel) stays infinite, not NaN. Returns the means, each model's ``*_ratio``
    and ``*_distance``, ``difference``, ``interval``, ``verdict``."""
    values = {name: np.asarray(v, float) for name, v in (("real", real), ("seg", seg),
                                                         ("noseg", noseg))}
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():  # a resample of NaNs only (no tortuosity) has no mean
        warnings.simplefilter("ignore", RuntimeWarning)
        means = {name: float(np.nanmean(v)) if len(v) else float("nan")
                 for name, v in values.items()}
        boot = {name: np.nanmean(v[rng.integers(0, len(v), size=(n_resamples, len(v)))], axis=1)
                for name, v in values.items()}
    with np.errstate(invalid="ignore"):  # both distances infinite: no difference to rank
        differences = (ratio_distance(boot["noseg"], boot["real"]) -
                       ratio_distance(boot["seg"], boot["real"]))
    defined = differences[~np.isnan(differences)]
    tail = 50 * (1 - CONFIDENCE)
    interval = ([float(v) for v in np.percentile(defined, [tail, 100 - tail],
                                                 method="inverted_cdf")]
                if len(defined) else [float("nan"), float("nan")])
    record: dict[str, Any] = dict(means)
    for name in ("seg", "noseg"):
        with np.errstate(divide="ignore", invalid="ignore"):
            record[f"{name}_ratio"] = float(np.float64(means[name]) / means["real"])
        record[f"{name}_distance"] = float(ratio_distance(means[name], means["real"]))
    with np.errstate(invalid="ignore"):
        record["difference"] = record["noseg_distance"] - record["seg_distance"]
    record["interval"] = interval
    record["verdict"] = verdict_from_interval(*interval)
    return record


def swd_verdict(real: np.ndarray, seg: np.ndarray, noseg: np.ndarray, floor_real: np.ndarray,
                swd_settings: dict[str, int], seed: int = 0, repeats: int = SWD_REPEATS
                ) -> dict[str, Any]:
    """SWD (x1e3) of each model's images to ``real``, with ``bootstrap_verdict``'s keys (``real``
    the floor: ``real`` against the disjoint ``floor_real``; ratios SWD / floor; distances the SWD)
    and ``repeat_differences``. The interval of (noseg − seg SWD) is the normal ``CONFIDENCE`` one:
    the full sets' difference ± Student's t x the standard deviation over ``repeats`` bootstrap
    resamples, each with an SWD seed of its own shared by both models. Few repeats cannot give
    percentiles (the 2.5% and 97.5% of 10 values are their minimum and maximum, which hold only
    about 82% of the distribution); their spread can."""
    values = {name: sliced_wasserstein(real, fake, seed=seed, **swd_settings)["swd_mean"]
              for name, fake in (("seg", seg), ("noseg", noseg))}
    floor = swd_floor(real, floor_real, seed=seed, **swd_settings)["swd_mean"]
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(repeats):
        picks = [rng.integers(0, len(images), len(images)) for images in (real, seg, noseg)]
        repeat_seed = int(rng.integers(2**31))
        real_b, seg_b, noseg_b = (images[p] for images, p in zip((real, seg, noseg), picks,
                                                                  strict=True))
        differences.append(
            sliced_wasserstein(real_b, noseg_b, seed=repeat_seed, **swd_settings)["swd_mean"] -
            sliced_wasserstein(real_b, seg_b, seed=repeat_seed, **swd_settings)["swd_mean"])
    difference = values["noseg"] - values["seg"]
    half_width = student_t.ppf(0.5 + CONFIDENCE / 2, repeats - 1) * np.std(differences, ddof=1)
    interval = [float(difference - half_width), float(difference + half_width)]
    return {"real": floor, "seg": values["seg"], "noseg": values["noseg"],
            "seg_ratio": values["seg"] / floor, "noseg_ratio": values["noseg"] / floor,
            "seg_distance": values["seg"], "noseg_distance": values["noseg"],
            "difference": difference, "interval": interval,
            "verdict": verdict_from_interval(*interval), "repeat_differences": differences}


# ------------------------------------------------------------------------------ The comparison


def compare_ablation(seg_run: str | Path, noseg_run: str | Path, seed: int = 0,
                     n_resamples: int = N_BOOTSTRAP, swd_repeats: int = SWD_REPEATS
                     ) -> dict[str, Any]:
    """Figure 3's comparison, written into ``seg_run`` as ``ablation.json`` and returned: both runs
    draw ``eval.n_generated`` images (``seed``) against as many real training images, and as many
    again for the SWD floor; ``swd_verdict`` of the image channels (the all-channel SWD beside it)
    and ``bootstrap_verdict`` of each measure the dataset's ``structure`` reads."""
    seg, noseg_run = open_run(seg_run), Path(noseg_run)
    seg_run, dataset, data = seg.path, seg.info.dataset, seg.data
    n_image = dataset_spec(dataset).image_channels
    runs = {SEG: seg_run, NOSEG: noseg_run}
    generators = {SEG: (seg.G, seg.facts), NOSEG: load_generator(noseg_run)}
    config, resolution = seg.config, seg.resolution
    with code_that_ran() as ran:  # what the numbers derive from, recorded below
        train_idx = data.split_indices("train")
        n = min(config.eval.n_generated, len(train_idx) // 2)
        drawn = np.random.default_rng(seed).choice(train_idx, 2 * n, replace=False)
        real_all = data.batch(drawn, resolution)  # real[:n] is the reference, real[n:] the floor's
        real, floor_real = real_all[:n, :n_image], real_all[n:, :n_image]
        fakes = {name: sample_images(G, n, resolution, config.model.latent_dim, seed)
                 for name, (G, _) in generators.items()}
        swd_settings = swd_options(config.eval)

        reader = hook(dataset_spec(dataset).structure)(config)
        k = n if reader.max_images is None else min(reader.max_images, n)
        stats = {"real": reader(real[:k]),
                 **{name: reader(fake[:k, :n_image]) for name, fake in fakes.items()}}

        swd_record = swd_verdict(real, fakes[SEG][:, :n_image], fakes[NOSEG][:, :n_image],
                                 floor_real, swd_settings, seed, swd_repeats)
        runs_out: dict[str, Any] = {}
        for name, fake in fakes.items():
            swd_image = swd_record["seg" if name == SEG else "noseg"]
            channels = fake.shape[1]
            runs_out[name] = {
                "run": str(runs[name]),
                "n_channels": channels,
                "swd_mean": swd_image,  # image channels only
                "swd_image_channels_mean": swd_image,
                # every channel the model draws (without segmentation: the image channels again)
                "swd_all_channels_mean": swd_image if channels == n_image else sliced_wasserstein(
                    real_all[:n, :channels], fake, seed=seed, **swd_settings)["swd_mean"],
                "structure": domain_stats.compare_distributions(stats["real"], stats[name])
                .reset_index().to_dict(orient="records"),
            }
        channels_seg = fakes[SEG].shape[1]
        verdicts = [{"measure": "swd_image_channels", "label": SWD_IMAGE_LABEL,
                     "method": f"SWD x1e3, normal interval from {swd_repeats} bootstrap/seed "
                               "repeats; real = the real-vs-real floor; ratio = SWD / floor",
                     **swd_record}]
        for measure in stats["real"]:
            record = bootstrap_verdict(stats["real"][measure], stats[SEG][measure],
                                       stats[NOSEG][measure], n_resamples, seed)
            verdicts.append({"measure": measure, "label": measure,
                             "method": f"{DISTANCE}, {n_resamples} bootstrap resamples", **record})
        result: dict[str, Any] = {
            "dataset": dataset, "resolution": resolution, "n": n, "n_structure": k, "seed": seed,
            "image_channels": n_image, "distance": DISTANCE,
            "vessel_reading": reader.description(resolution),
            "bootstrap": {"n_resamples": n_resamples, "seed": seed, "confidence": CONFIDENCE,
                          "swd_repeats": swd_repeats,
                          "structure": "real, with- and without-segmentation images resampled "
                                       "independently with replacement",
                          "swd": "normal interval: difference ± t quantile x standard deviation "
                                 "over the repeats, each a bootstrap resample of the three sets "
                                 "and an SWD seed of its own (patches, projections), shared by "
                                 "both models"},
            "swd_floor_image_channels_mean": swd_record["real"],
            "swd_floor_all_channels_mean": swd_floor(
                real_all[:n, :channels_seg], real_all[n:, :channels_seg], seed=seed,
                **swd_settings)["swd_mean"],
            "runs": runs_out,
        }
        result["verdicts"] = verdicts
        result["conclusion"] = ablation_conclusion(result)
    # what the book checks (seg generator, code, config); the other generator's weights beside it
    result["derivation"] = derivation("ablation", weights_fingerprint(generators[SEG][0]),
                                      config, ran)
    result["noseg_generator_sha256"] = weights_fingerprint(generators[NOSEG][0])
    write_text_atomic(seg_run / "ablation.json", json.dumps(result, indent=2, default=float))
    return result


def ensure_ablation(seg_run: str | Path, noseg_run: str | Path, seed: int = 0
                    ) -> dict[str, Any]:
    """``seg_run``'s ``ablation.json`` while it holds (``seed``, the default resampling, both runs'
    current generators, code and settings: ``runs.folder.stale_result``), else ``compare_ablation``
    again. A shipped run carries it, so a book build need not measure Figure 3."""
    saved = Path(seg_run) / "ablation.json"
    if saved.is_file():
        result = json.loads(saved.read_text())
        drawn = result.get("bootstrap") or {}
        same_draw = (result.get("seed") == seed and drawn.get("n_resamples") == N_BOOTSTRAP
                     and drawn.get("swd_repeats") == SWD_REPEATS)
        same_noseg = (result.get("noseg_generator_sha256")
                      == weights_fingerprint(load_generator(noseg_run)[0]))
        if same_draw and same_noseg and \
                stale_result(seg_run, "ablation", result.get("derivation")) is None:
            return result
    return compare_ablation(seg_run, noseg_run, seed=seed)


# ------------------------------------------------------------------------- Over training seeds

SEEDS_FILE = "ablation_seeds.json"  # beside the seed-0 run with segmentation


def seed_verdicts(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Figure 3's verdict per measure over training seeds (one ``compare_ablation`` result each):
    the Student-t interval of the seeds' (distance without − with segmentation), which holds the
    spread between trainings that one run cannot show; undefined with one seed."""
    verdicts = []
    for first in results[0]["verdicts"]:
        measure = first["measure"]
        records = [next(v for v in r["verdicts"] if v["measure"] == measure) for r in results]
        differences = np.array([r["difference"] for r in records], float)
        n, mean = len(differences), float(np.mean(differences))
        if n > 1 and np.isfinite(differences).all():
            half = float(student_t.ppf(0.5 + CONFIDENCE / 2, n - 1)
                         * np.std(differences, ddof=1) / np.sqrt(n))
            interval = [mean - half, mean + half]
        else:
            interval = [float("nan"), float("nan")]
        verdicts.append({
            "measure": measure, "label": first["label"], "seeds": n,
            "differences": differences.tolist(), "mean_difference": mean,
            "interval": interval, "verdict": verdict_from_interval(*interval),
            "seg_ratios": [r["seg_ratio"] for r in records],
            "noseg_ratios": [r["noseg_ratio"] for r in records],
            "per_seed_verdicts": [r["verdict"] for r in records]})
    return verdicts


def replicated_ablation(dataset: str, profile: str, seeds: Sequence[int] = (0, 1, 2)
                        ) -> dict[str, Any]:
    """``ensure_ablation`` of each seed's pair of runs (``runs.reuse.ensure_run``), the same images
    drawn for each, and ``seed_verdicts``; written as ``SEEDS_FILE`` into the seed-0 run with
    segmentation. Every generator is recorded by its SHA-256 (the book checks the seed-0 pair's)."""
    from pggan_core.runs.reuse import ensure_run

    results, generators = [], {}
    for seed in seeds:  # shipped seeds are installed, missing ones trained (hours each)
        seg, noseg = (ensure_run(dataset, profile, variant, seed, progress=False)
                      for variant in (True, False))
        result = ensure_ablation(seg, noseg)
        results.append(result)
        generators[str(seed)] = {"with": result["derivation"]["generator_sha256"],
                                 "without": result["noseg_generator_sha256"]}
    with code_that_ran() as ran:
        verdicts = seed_verdicts(results)
    # every seed's comparison ran the same code as seed 0's; the verdicts over seeds add theirs
    code = {name: digest for result in results for name, digest in
            result["derivation"]["code"].items()} | code_hashes(ran)
    out = {"dataset": dataset, "profile": profile, "seeds": list(seeds),
           "confidence": CONFIDENCE, "verdicts": verdicts,
           "per_seed": [{"seed": seed, "verdicts": [
               {k: v for k, v in record.items() if k != "repeat_differences"}
               for record in result["verdicts"]]} for seed, result in zip(seeds, results,
                                                                          strict=True)],
           "generators": generators,
           "derivation": {**results[0]["derivation"], "code": code},
           "noseg_generator_sha256": results[0]["noseg_generator_sha256"]}
    out["conclusion"] = (f"Over {len(seeds)} training seeds per model, with {CONFIDENCE:.0%} "
                         "Student-t intervals over the seeds: "
                         f"{_verdict_groups(out['verdicts'])[1]}.")
    target = RunSpec(dataset, profile, True, seeds[0]).folder() / SEEDS_FILE
    write_text_atomic(target, json.dumps(out, indent=2, default=float))
    return out


def replicated_result(dataset: str, profile: str, seed: int = 0,
                      source: str | Path | None = None) -> dict[str, Any] | None:
    """The ``SEEDS_FILE`` of the (dataset, profile, seed) run when it holds for that run and
    its run without segmentation (their generators, the code, the config), else None."""
    from pggan_core.runs.folder import stale_result

    seg = RunSpec(dataset, profile, True, seed, source).folder()
    path = seg / SEEDS_FILE
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    noseg = RunSpec(dataset, profile, False, seed, source).folder()
    if stale_result(seg, "ablation", result.get("derivation")) is not None or \
            weights_fingerprint(load_generator(noseg)[0]) != result.get("noseg_generator_sha256"):
        return None
    return result


def seeds_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per measure of ``replicated_ablation``: each seed's ratio to real with and
    without segmentation, the interval over seeds and the verdict."""
    rows = {}
    for record in result["verdicts"]:
        name = MEASURE_NAMES.get(record["measure"], record["measure"])
        row = {f"seed {s}": f"{a:.2f}× / {b:.2f}×" for s, a, b in zip(
            result["seeds"], record["seg_ratios"], record["noseg_ratios"], strict=True)}
        row["interval (without − with)"] = "[{:.3g}, {:.3g}]".format(*record["interval"])
        row["verdict"] = record["verdict"]
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


# ------------------------------------------------------------------------ The verdict in words


def _verdict_groups(verdicts: Sequence[dict[str, Any]]) -> tuple[dict[str, list[str]], str]:
    """The measures' names by verdict, and that grouping in words ("against: ...; ...")."""
    groups: dict[str, list[str]] = {PAPER: [], AGAINST: [], UNCLEAR: []}
    for record in verdicts:
        groups[record["verdict"]].append(MEASURE_NAMES.get(record["measure"],
                                                           record["measure"]))
    listed = "; ".join(f"{verdict}: {', '.join(names)}" for verdict, names in groups.items()
                       if names)
    return groups, listed


def ablation_conclusion(result: dict[str, Any]) -> str:
    """The page's conclusion, written from the verdicts of ``compare_ablation`` alone."""
    groups, listed = _verdict_groups(result["verdicts"])
    if groups[PAPER] and not groups[AGAINST]:
        summary = ("Every measure that separates the two models favours the one trained with "
                   "segmentation channels, as the paper says.")
    elif groups[AGAINST] and not groups[PAPER]:
        summary = ("Every measure that separates the two models favours the one trained "
                   "without segmentation channels, against the paper's claim.")
    elif groups[PAPER]:
        summary = (f"The measures disagree: the model with segmentation channels is closer "
                   f"to real in {', '.join(groups[PAPER])}, but further from it in "
                   f"{', '.join(groups[AGAINST])}.")
    else:
        summary = ("No measure separates the two models beyond its bootstrap interval: this "
                   "build neither supports nor contradicts the paper's claim.")
    return (f"{summary} ({listed}.) The intervals cover the sampling of images, not training: "
            "each model is one training run, and a second seed could move it further.")
