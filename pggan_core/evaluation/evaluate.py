"""``pggan evaluate``: every offline metric of a trained run, written to ``metrics.json``.

The paper reports one number, the vessel-agreement AUC (0.97): a vessel segmenter trained only on
real(istic) images is run on the GAN's synthetic photographs and compared with the GAN's own vessel
channel. Beside it, generated against real, the metrics measure what the paper shows as pictures:
distance to the real distribution (SWD), diversity (MS-SSIM), memorisation and anatomy
(domain statistics).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pggan_core.atomic import write_text_atomic
from pggan_core.data.preprocess import brain_mask, fields_of_view
from pggan_core.datasets import dataset_spec, hook
from pggan_core.evaluation.registry import METRICS, Metric, Samples, metrics_for, register_metric
from pggan_core.evaluation.vessel_agreement import vessel_agreement_results
from pggan_core.generate import sample_images
from pggan_core.measures import domain_stats, memorisation
from pggan_core.measures.ms_ssim import ms_ssim_diversity
from pggan_core.measures.neighbours import nearest_neighbour_distances
from pggan_core.measures.swd import sliced_wasserstein, swd_floor, swd_options
from pggan_core.precision import autocast, resolve
from pggan_core.progress import Progress
from pggan_core.provenance import code_that_ran, derivation, stale_reason
from pggan_core.runs.folder import open_run
from pggan_core.segmentation.vessels import ensure_vessel_unet
from pggan_core.settings import DataConfig
from pggan_core.training.checkpoint import load_generator, weights_fingerprint


def fundus_domain_stats(images: np.ndarray, data_cfg: DataConfig) -> dict[str, np.ndarray]:
    """Vessel-tree statistics of fundus images' vessel channel, inside the field of view."""
    return domain_stats.fundus_stats(images[:, 3], fields_of_view(images, data_cfg))


def mri_domain_stats(images: np.ndarray, data_cfg: DataConfig) -> dict[str, np.ndarray]:
    """Tumour statistics of MR slices' three label channels, inside the brain."""
    return domain_stats.mri_stats(images[:, 4:7], brain_mask(images))


# --------------- the built-in metrics (``registry``), computed and shown in registration order


def _swd(s: Samples) -> dict[str, Any]:
    settings, half = swd_options(s.config.eval), len(s.fake) // 2
    real, fake = s.real, s.fake
    swd = sliced_wasserstein(real[:half], fake[:half], seed=s.seed, **settings)
    floor = swd_floor(real[:half], real[half:2 * half], seed=s.seed, **settings)
    # the image channels alone: an all-channel SWD can hide the image's artefacts behind good labels
    image = slice(0, dataset_spec(s.dataset).image_channels)
    swd_image = sliced_wasserstein(real[:half, image], fake[:half, image], seed=s.seed,
                                   **settings)
    floor_image = swd_floor(real[:half, image], real[half:2 * half, image], seed=s.seed,
                            **settings)
    return {"swd": swd, "swd_mean": swd["swd_mean"],
            "swd_floor": floor, "swd_floor_mean": floor["swd_mean"],
            "swd_image_mean": swd_image["swd_mean"],
            "swd_image_floor_mean": floor_image["swd_mean"]}


def _ms_ssim(s: Samples) -> dict[str, Any]:
    pairs = s.config.eval.n_msssim_pairs
    return {"ms_ssim_generated": ms_ssim_diversity(s.fake, pairs, s.seed),
            "ms_ssim_real": ms_ssim_diversity(s.real, pairs, s.seed)}


def _neighbours(s: Samples) -> dict[str, Any]:
    return {"nn_distance_generated_median": float(np.median(
                nearest_neighbour_distances(s.fake, s.train_all))),
            "nn_distance_heldout_median": float(np.median(
                nearest_neighbour_distances(s.heldout, s.train_all)))}


def _memorisation(s: Samples) -> dict[str, Any]:
    """``eval.n_memorisation`` generated images checked for copies, the detector on planted ones."""
    spec = dataset_spec(s.dataset)
    image = spec.image_channels
    n = s.config.eval.n_memorisation
    generated = memorisation.at_resolution(s.draw(n) if s.draw is not None else s.fake, image)
    train = memorisation.at_resolution(s.train_all, image)
    heldout = memorisation.at_resolution(s.heldout, image)
    manifest = s.data.manifest
    train_idx = s.data.split_indices("train")
    groups = (manifest[spec.item_column].to_numpy()[train_idx]
              if spec.item_column is not None and spec.item_column in manifest else None)
    report = memorisation.memorisation_report(generated, train, heldout, groups)
    # the detector checked on copies of 32 training images, made at the generator's size
    picked = np.sort(np.random.default_rng(s.seed).choice(len(train_idx), min(32, len(train)),
                                                          replace=False))
    report["planted"] = memorisation.planted_check(
        np.asarray(s.train_all[picked], np.float32)[:, :image], train, report["thresholds"],
        s.seed)
    report["closest"] = memorisation.closest_pairs(report)
    report["resolution"] = int(generated.shape[-1])
    if groups is not None:  # per subject: which training subjects flagged slices re-identify
        flagged = np.asarray(report["generated"]["flagged"])
        nearest = np.asarray(report["generated"]["invariant_index"])[flagged]
        subjects, counts = np.unique(groups[nearest].astype(str), return_counts=True)
        report["flagged_subjects"] = dict(zip(subjects.tolist(), counts.tolist(), strict=True))
        report["training_subjects"] = int(len(set(groups)))
    share = report["generated_flagged"]
    return {"memorisation": report, "memorised_share": share["share"],
            "memorised_interval": share["interval"],
            "memorised_heldout_share": report["heldout_flagged"]["share"],
            "memorised_unseen_share": report["unseen_flagged"]["share"]}


def _anatomy(s: Samples) -> dict[str, Any]:
    statistics = dataset_spec(s.dataset).domain_stats
    if statistics is None:  # the dataset's spec names no statistics of its labels
        return {}
    per_image = hook(statistics)
    stats = domain_stats.compare_distributions(per_image(s.real, s.config.data),
                                               per_image(s.fake, s.config.data))
    return {"domain_stats": stats.reset_index().to_dict(orient="records")}


def _vessel_agreement(s: Samples) -> dict[str, Any]:
    segmenter = ensure_vessel_unet(s.config, progress=False)
    return vessel_agreement_results(segmenter, s.fake, s.data, s.heldout_idx, s.config)


for _metric in (
    # the paper's one number first: the metrics table lists rows in registration order
    Metric("vessel_agreement", _vessel_agreement, needs_segmentation=True, datasets=("rop",),
           status="vessel agreement AUC", rows=(
               ("vessel-agreement AUC, generated (paper: 0.97)", "vessel_agreement_auc"),
               ("vessel-agreement AUC, held-out real with ground-truth masks (reference)",
                "vessel_agreement_auc_reference"))),
    Metric("swd", _swd, status="SWD and its floor", rows=(
        ("SWD x1e3, generated vs real (mean over levels)", "swd_mean"),
        ("SWD x1e3, real vs real (floor)", "swd_floor_mean"),
        ("SWD x1e3, image channels alone, generated vs real", "swd_image_mean"),
        ("SWD x1e3, image channels alone, real vs real (floor)", "swd_image_floor_mean"))),
    Metric("ms_ssim", _ms_ssim, status="MS-SSIM diversity", rows=(
        ("MS-SSIM of generated pairs (lower = more diverse)", "ms_ssim_generated"),
        ("MS-SSIM of real pairs", "ms_ssim_real"))),
    Metric("neighbours", _neighbours, status="nearest neighbours in the training set", rows=(
        ("NN distance to training set, generated (median)", "nn_distance_generated_median"),
        ("NN distance to training set, held-out real (median)",
         "nn_distance_heldout_median"))),
    Metric("memorisation", _memorisation, status="memorisation, image by image", rows=(
        ("generated images flagged as near-copies of a training image (share)",
         "memorised_share"),
        ("held-out real images flagged the same way (share)", "memorised_heldout_share"),
        ("training images flagged when left out in turn (share)", "memorised_unseen_share"))),
    # the anatomy, read from the generated label channels
    Metric("domain_stats", _anatomy, needs_segmentation=True, status="domain statistics"),
):
    register_metric(_metric)


def evaluate_run(run_dir: str | Path, seed: int = 0, progress: bool = True,
                 precision: str | None = None) -> dict[str, Any]:
    """Every registered metric (``registry.metrics_for``) of the run in ``run_dir``, written to
    ``metrics.json`` and returned. The generator draws in ``precision`` (default: the run's
    ``train.precision``; see ``precision.py``); every metric is computed in fp32 on its images."""
    run = open_run(run_dir)
    run_dir, G, config, data = run.path, run.G, run.config, run.data
    resolution, dataset = run.resolution, run.info.dataset
    keep = len(run.channels)  # without segmentation only the image channels were trained
    train_idx, heldout_idx = data.split_indices("train"), data.split_indices("heldout")
    # every piece of code that runs from here on is part of what the numbers derive from
    with code_that_ran() as ran:
        rng = np.random.default_rng(seed)
        n = min(config.eval.n_generated, len(train_idx))
        with autocast(precision or config.train.precision, next(G.parameters()).device):
            fake = sample_images(G, n, resolution, config.model.latent_dim, seed)
        real = data.batch(rng.choice(train_idx, n, replace=False), resolution)[:, :keep]
        samples = Samples(config=config, dataset=dataset, data=data, fake=fake, real=real,
                          heldout_idx=heldout_idx,
                          # read a block at a time: at 512 px the training set would not fit
                          heldout=data.view(heldout_idx, resolution, keep),
                          train_all=data.view(train_idx, resolution, keep), seed=seed,
                          with_segmentation=keep > dataset_spec(dataset).image_channels,
                          draw=lambda count: _draw(G, count, resolution, config, seed, precision))
        metrics = metrics_for(dataset, samples.with_segmentation)
        stages = Progress(len(metrics), f"evaluate {run_dir.name}", unit="stage",
                          enabled=progress, every=0)
        result: dict[str, Any] = {
            "run": str(run_dir), "dataset": dataset, "profile": config.profile,
            "with_segmentation": run.info.with_segmentation, "resolution": resolution,
            "n_generated": n, "seed": seed,
            "precision": resolve(precision or config.train.precision, next(G.parameters()).device),
            "metrics": [m.name for m in metrics],
        }
        for metric in metrics:
            result |= metric.compute(samples)
            stages.update(1, status=metric.status or metric.name)
    result["derivation"] = derivation("metrics", weights_fingerprint(G), config, ran)
    write_text_atomic(run_dir / "metrics.json", json.dumps(result, indent=2, default=float))
    if progress:
        print(metrics_table(result).to_string(index=False))
    return result


def memorisation_pairs(result: dict[str, Any], run: Any) -> tuple[np.ndarray, np.ndarray]:
    """The images of the memorisation report's closest pairs (``metrics.json``'s
    ``memorisation["closest"]``) of the opened run: generated (drawn again, same seed) and their
    nearest training images, image channels at the generator's size."""
    closest = result["memorisation"]["closest"]
    image = dataset_spec(run.info.dataset).image_channels
    n = max(p["generated"] for p in closest) + 1
    generated = _draw(run.G, n, run.resolution, run.config, result["seed"], None)
    train_idx = run.data.split_indices("train")
    train = run.data.batch(train_idx[[p["train"] for p in closest]], run.resolution)
    return (generated[[p["generated"] for p in closest], :image], train[:, :image])


def _draw(G: Any, n: int, resolution: int, config: Any, seed: int, precision: str | None
          ) -> np.ndarray:
    """``n`` images of seed ``seed`` in the run's precision (the first ``eval.n_generated`` are the
    ones every other metric reads)."""
    with autocast(precision or config.train.precision, next(G.parameters()).device):
        return sample_images(G, n, resolution, config.model.latent_dim, seed)


def metrics_table(result: dict[str, Any]) -> pd.DataFrame:
    """The headline numbers of ``metrics.json`` as a two-column table: every registered metric's
    rows, in registration order."""
    rows = [row for metric in METRICS.values() for row in metric.rows]
    return pd.DataFrame([(label, result[key]) for label, key in rows
                         if result.get(key) is not None], columns=["metric", "value"])


def ensure_evaluated(run_dir: str | Path, seed: int = 0, progress: bool = True
                     ) -> dict[str, Any]:
    """``metrics.json`` of the run while it holds (the generator now in the run, the evaluation code
    and the run's settings as they are now: ``provenance.stale_reason``; the same ``seed`` and
    registered metrics), else evaluate again, saying why when ``progress``."""
    run_dir = Path(run_dir)
    saved = run_dir / "metrics.json"
    if saved.is_file():
        result = json.loads(saved.read_text())
        G, info = load_generator(run_dir)
        reason = stale_reason(result.get("derivation"), "metrics", weights_fingerprint(G),
                              info["config"])
        if reason is None and result.get("seed") != seed:
            reason = f"it was computed with seed {result.get('seed')}, not {seed}"
        registered = [m.name for m in metrics_for(result["dataset"], result["with_segmentation"])]
        if reason is None and result.get("metrics") != registered:
            reason = f"the registered metrics are now {', '.join(registered)}"
        if reason is None:
            return result
        if progress:
            print(f"{saved}: evaluating again: {reason}", flush=True)
    return evaluate_run(run_dir, seed=seed, progress=progress)
