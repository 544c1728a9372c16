"""``pggan evaluate``: every offline metric of a trained run, written to ``metrics.json``.

The paper reports one number, the vessel-agreement AUC (0.97): a vessel segmenter trained only
on real(istic) images is run on the GAN's synthetic photographs and compared with the GAN's own
vessel channel. Beside it this module measures what the paper shows as pictures: distance to
the real distribution (SWD, with its real-vs-real floor), diversity (MS-SSIM of pairs),
memorisation (nearest-neighbour distances), and domain statistics (vessel density, branching
and tortuosity; tumour area and label composition), generated against real.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pggan_core.atomic import write_text_atomic
from pggan_core.config import Config, DataConfig
from pggan_core.data.preprocess import brain_mask, fields_of_view
from pggan_core.data.store import IMAGE_CHANNELS, PreparedDataset
from pggan_core.data.vessels import ensure_vessel_unet
from pggan_core.errors import RunNotFoundError
from pggan_core.evaluation.vessel_agreement import vessel_agreement_results
from pggan_core.generate import sample_images
from pggan_core.measures import domain_stats
from pggan_core.measures.ms_ssim import ms_ssim_diversity
from pggan_core.measures.neighbours import nearest_neighbour_distances
from pggan_core.measures.swd import sliced_wasserstein, swd_floor, swd_options
from pggan_core.precision import autocast, resolve
from pggan_core.progress import Progress
from pggan_core.provenance import derivation, stale_reason
from pggan_core.training.checkpoint import load_generator, weights_fingerprint


def _domain_stats(images: np.ndarray, dataset: str, data_cfg: DataConfig
                  ) -> dict[str, np.ndarray]:
    if dataset == "rop":
        return domain_stats.fundus_stats(images[:, 3], fields_of_view(images, data_cfg))
    return domain_stats.mri_stats(images[:, 4:7], brain_mask(images))


def evaluate_run(run_dir: str | Path, seed: int = 0, progress: bool = True,
                 precision: str | None = None) -> dict[str, Any]:
    """Compute every metric for the run in ``run_dir``; write ``metrics.json`` and return it.

    The generator draws in ``precision`` (default: the run's ``train.precision``; see
    ``precision.py``); every metric is computed in fp32 on its images.
    """
    run_dir = Path(run_dir)
    run_info_path = run_dir / "run.json"
    if not run_info_path.is_file():
        raise RunNotFoundError(f"{run_dir} is not a training run: run `pggan train --out "
                               f"{run_dir}` or notebooks/03_train.md first")
    run_info = json.loads(run_info_path.read_text())
    G, info = load_generator(run_dir)
    config: Config = info["config"]
    resolution, dataset = info["resolution"], run_info["dataset"]
    data = PreparedDataset(run_info["data_dir"])
    keep = len(info["channels"])  # without segmentation only the image channels were trained
    train_idx, heldout_idx = data.split_indices("train"), data.split_indices("heldout")
    rng = np.random.default_rng(seed)
    n = min(config.eval.n_generated, len(train_idx))
    with autocast(precision or config.train.precision, next(G.parameters()).device):
        fake = sample_images(G, n, resolution, config.model.latent_dim, seed)
    real = data.batch(rng.choice(train_idx, n, replace=False), resolution)[:, :keep]
    # read a block at a time: at 512 px the training set would not fit in memory
    heldout = data.view(heldout_idx, resolution, keep)
    train_all = data.view(train_idx, resolution, keep)

    stages = Progress(5 if dataset == "rop" and keep > IMAGE_CHANNELS[dataset] else 4,
                      f"evaluate {run_dir.name}", unit="stage", enabled=progress, every=0)
    swd_settings = swd_options(config.eval)
    half = n // 2
    swd = sliced_wasserstein(real[:half], fake[:half], seed=seed, **swd_settings)
    floor = swd_floor(real[:half], real[half:2 * half], seed=seed, **swd_settings)
    # the image channels alone: an all-channel SWD can average away artefacts of the photograph
    # (or the MR slice) behind a well-drawn label channel
    image = slice(0, IMAGE_CHANNELS[dataset])
    swd_image = sliced_wasserstein(real[:half, image], fake[:half, image], seed=seed,
                                   **swd_settings)
    floor_image = swd_floor(real[:half, image], real[half:2 * half, image], seed=seed,
                            **swd_settings)
    stages.update(1, status="SWD and its floor")
    pairs = config.eval.n_msssim_pairs
    result: dict[str, Any] = {
        "run": str(run_dir), "dataset": dataset, "profile": config.profile,
        "with_segmentation": run_info["with_segmentation"], "resolution": resolution,
        "n_generated": n, "seed": seed,
        "precision": resolve(precision or config.train.precision, next(G.parameters()).device),
        "swd": swd, "swd_mean": swd["swd_mean"],
        "swd_floor": floor, "swd_floor_mean": floor["swd_mean"],
        "swd_image_mean": swd_image["swd_mean"], "swd_image_floor_mean": floor_image["swd_mean"],
        "ms_ssim_generated": ms_ssim_diversity(fake, pairs, seed),
        "ms_ssim_real": ms_ssim_diversity(real, pairs, seed),
    }
    stages.update(1, status="MS-SSIM diversity")
    result["nn_distance_generated_median"] = float(np.median(
        nearest_neighbour_distances(fake, train_all)))
    result["nn_distance_heldout_median"] = float(np.median(
        nearest_neighbour_distances(heldout, train_all)))
    stages.update(1, status="nearest neighbours in the training set")
    if keep > IMAGE_CHANNELS[dataset]:  # segmentation channels were generated
        stats = domain_stats.compare_distributions(_domain_stats(real, dataset, config.data),
                                                   _domain_stats(fake, dataset, config.data))
        result["domain_stats"] = stats.reset_index().to_dict(orient="records")
        stages.update(1, status="domain statistics")
        if dataset == "rop":
            segmenter = ensure_vessel_unet(config, progress=False)
            result |= vessel_agreement_results(segmenter, fake, data, heldout_idx, config)
            stages.update(1, status="vessel agreement AUC")
    else:
        stages.update(1, status="(no segmentation channels: no domain statistics)")
    result["derivation"] = derivation("metrics", weights_fingerprint(G), config)
    write_text_atomic(run_dir / "metrics.json", json.dumps(result, indent=2, default=float))
    if progress:
        print(metrics_table(result).to_string(index=False))
    return result


def metrics_table(result: dict[str, Any]) -> pd.DataFrame:
    """The headline numbers of ``metrics.json`` as a two-column table."""
    rows = [
        ("vessel-agreement AUC, generated (paper: 0.97)", result.get("vessel_agreement_auc")),
        ("vessel-agreement AUC, held-out real with ground-truth masks (reference)",
         result.get("vessel_agreement_auc_reference")),
        ("SWD x1e3, generated vs real (mean over levels)", result["swd_mean"]),
        ("SWD x1e3, real vs real (floor)", result["swd_floor_mean"]),
        ("SWD x1e3, image channels alone, generated vs real", result.get("swd_image_mean")),
        ("SWD x1e3, image channels alone, real vs real (floor)",
         result.get("swd_image_floor_mean")),
        ("MS-SSIM of generated pairs (lower = more diverse)", result["ms_ssim_generated"]),
        ("MS-SSIM of real pairs", result["ms_ssim_real"]),
        ("NN distance to training set, generated (median)",
         result["nn_distance_generated_median"]),
        ("NN distance to training set, held-out real (median)",
         result["nn_distance_heldout_median"]),
    ]
    return pd.DataFrame([(k, v) for k, v in rows if v is not None],
                        columns=["metric", "value"])


def ensure_evaluated(run_dir: str | Path, seed: int = 0, progress: bool = True
                     ) -> dict[str, Any]:
    """``metrics.json`` of the run if it was computed from the generator now in the run, by
    the evaluation code as it is now, with the run's settings and ``seed``
    (``provenance.stale_reason``); else evaluate again (saying why when ``progress``)."""
    run_dir = Path(run_dir)
    saved = run_dir / "metrics.json"
    if saved.is_file():
        result = json.loads(saved.read_text())
        G, info = load_generator(run_dir)
        reason = stale_reason(result.get("derivation"), "metrics", weights_fingerprint(G),
                              info["config"])
        if reason is None and result.get("seed") != seed:
            reason = f"it was computed with seed {result.get('seed')}, not {seed}"
        if reason is None:
            return result
        if progress:
            print(f"{saved}: evaluating again: {reason}", flush=True)
    return evaluate_run(run_dir, seed=seed, progress=progress)
