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

import cv2
import numpy as np
import pandas as pd
import torch

from pggan_core import domain_stats, latent, metrics
from pggan_core.atomic import write_text_atomic
from pggan_core.checkpoint import GENERATOR_FILE, LATEST, load_generator
from pggan_core.config import Config, DataConfig
from pggan_core.data.preprocess import fields_of_view
from pggan_core.data.store import IMAGE_CHANNELS, PreparedDataset
from pggan_core.data.vessels import ensure_vessel_unet
from pggan_core.errors import RunNotFoundError
from pggan_core.precision import autocast, resolve


def generate(G: torch.nn.Module, n: int, resolution: int, latent_dim: int, seed: int
             ) -> np.ndarray:
    """``n`` images from fixed-seed latents, float32 (n, C, R, R) clipped to [-1, 1]."""
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    return np.clip(latent.generate(G, z, resolution, 1.0), -1.0, 1.0)


def brain_mask(images: np.ndarray) -> np.ndarray:
    """Brain pixels of MR slices in [-1, 1]: background is -1 in every modality."""
    return (images[:, :4] > -0.95).any(axis=1)


def segment_vessels(segmenter, images: np.ndarray, scale_to: int, fov: np.ndarray
                    ) -> np.ndarray:
    """The U-Net's vessel probability for fundus images (N, >=3, R, R) in [-1, 1].

    ``fov`` (N, R, R) is the field of view at the images' own size
    (``preprocess.fields_of_view``); the probability is 0 outside it. The U-Net learnt vessel
    calibres at ``scale_to`` px (its training resolution), so smaller images are enlarged to it
    (the field of view by nearest neighbour, so it stays the same pixels) before segmenting,
    and the map is reduced back afterwards.
    """
    size = images.shape[-1]
    out = np.empty((len(images), size, size), np.float32)
    for i, image in enumerate(images):
        rgb = np.clip((image[:3].transpose(1, 2, 0) + 1.0) / 2.0, 0.0, 1.0)
        big = np.clip(cv2.resize(rgb, (scale_to, scale_to), interpolation=cv2.INTER_CUBIC),
                      0.0, 1.0)
        big_fov = cv2.resize(fov[i].astype(np.uint8), (scale_to, scale_to),
                             interpolation=cv2.INTER_NEAREST).astype(bool)
        prob = segmenter.segment(big, big_fov)
        out[i] = np.where(fov[i], cv2.resize(prob, (size, size), interpolation=cv2.INTER_AREA),
                          0.0)
    return out


def vessel_agreement(segmenter, images: np.ndarray, vessel_maps: np.ndarray,
                     data_cfg: DataConfig, scale_to: int) -> float | None:
    """The paper's AUC for fundus images (N, >=3, R, R) in [-1, 1] and their vessel maps.

    The label is the U-Net's segmentation of each photograph (probability >
    ``metrics.VESSEL_LABEL_THRESHOLD``), the score the continuous ``vessel_maps`` (N, R, R),
    counted inside the one field of view (``preprocess.fields_of_view``). None when the
    segmentation has one class only (no vessel found at all, or nothing but vessel).
    """
    fov = fields_of_view(images, data_cfg)
    segmentation = segment_vessels(segmenter, images, scale_to, fov)
    labels = segmentation[fov] > metrics.VESSEL_LABEL_THRESHOLD
    if labels.all() or not labels.any():
        return None
    return metrics.vessel_agreement_auc(vessel_maps, segmentation, fov)


def _vessel_agreement_results(segmenter, fake: np.ndarray, data: PreparedDataset,
                              heldout_idx: np.ndarray, config: Config) -> dict[str, Any]:
    """The AUC on generated images and its reference on held-out real ones, with a record of
    what was compared (``metrics.json``)."""
    k, scale = config.eval.n_auc_images, config.vessels.train_resolution
    resolution = fake.shape[-1]
    reals = data.batch(heldout_idx[:k], resolution)
    truth = data.vessel_truth(heldout_idx[:k], resolution)
    label = (f"the vessel U-Net's segmentation of the photograph (trained on "
             f"{config.vessels.train_resolution} px images; probability > "
             f"{metrics.VESSEL_LABEL_THRESHOLD})")
    record: dict[str, Any] = {
        "direction": "score predicts label (the paper's)",
        "score": "the generator's own vessel channel, continuous",
        "label": label,
        "threshold": metrics.VESSEL_LABEL_THRESHOLD,
        "field_of_view": ("red > 20/255, eroded by data.fov_erosion_px scaled from 512 px, the "
                          "same for U-Net training, data preparation and evaluation"),
        "n_images": int(min(k, len(fake))),
        "segmented_at_px": scale,
    }
    result = {"vessel_agreement_auc": vessel_agreement(segmenter, fake[:k], fake[:k, 3],
                                                       config.data, scale)}
    if truth is None:
        # read by the book's claims table in place of the number (any "<metric>_missing" key)
        result["vessel_agreement_auc_reference"] = None
        result["vessel_agreement_auc_reference_missing"] = "none: no ground-truth vessel masks"
        record["reference"] = (
            "none: this dataset has no ground-truth vessel masks, and its vessel channel is the "
            "U-Net's own map, so a reference would score the U-Net against itself")
    else:
        result["vessel_agreement_auc_reference"] = vessel_agreement(
            segmenter, reals, truth, config.data, scale)
        record["reference"] = (
            f"{len(reals)} held-out real images: score = their ground-truth vessel masks "
            f"({data.meta.get('vessel_truth', 'masks')}), label = the same U-Net's segmentation")
    return {**result, "vessel_agreement": record}


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
        fake = generate(G, n, resolution, config.model.latent_dim, seed)
    real = data.batch(rng.choice(train_idx, n, replace=False), resolution)[:, :keep]
    # read a block at a time: at 512 px the training set would not fit in memory
    heldout = data.view(heldout_idx, resolution, keep)
    train_all = data.view(train_idx, resolution, keep)

    swd_kwargs = {"n_descriptors": config.eval.swd_descriptors,
                  "n_projections": config.eval.swd_projections}
    half = n // 2
    swd = metrics.sliced_wasserstein(real[:half], fake[:half], seed=seed, **swd_kwargs)
    floor = metrics.swd_floor(real[:half], real[half:2 * half], seed=seed, **swd_kwargs)
    pairs = config.eval.n_msssim_pairs
    result: dict[str, Any] = {
        "run": str(run_dir), "dataset": dataset, "profile": config.profile,
        "with_segmentation": run_info["with_segmentation"], "resolution": resolution,
        "n_generated": n, "seed": seed,
        "precision": resolve(precision or config.train.precision, next(G.parameters()).device),
        "swd": swd, "swd_mean": swd["swd_mean"],
        "swd_floor": floor, "swd_floor_mean": floor["swd_mean"],
        "ms_ssim_generated": metrics.ms_ssim_diversity(fake, pairs, seed),
        "ms_ssim_real": metrics.ms_ssim_diversity(real, pairs, seed),
        "nn_distance_generated_median": float(np.median(
            metrics.nearest_neighbour_distances(fake, train_all))),
        "nn_distance_heldout_median": float(np.median(
            metrics.nearest_neighbour_distances(heldout, train_all))),
    }
    if keep > IMAGE_CHANNELS[dataset]:  # segmentation channels were generated
        stats = domain_stats.compare_distributions(_domain_stats(real, dataset, config.data),
                                                   _domain_stats(fake, dataset, config.data))
        result["domain_stats"] = stats.reset_index().to_dict(orient="records")
        if dataset == "rop":
            segmenter = ensure_vessel_unet(config, progress=False)
            result |= _vessel_agreement_results(segmenter, fake, data, heldout_idx, config)
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
    """``metrics.json`` of the run if it is newer than the run's generator (its last
    checkpoint, or a shipped run's ``generator.pt``), else evaluate."""
    run_dir = Path(run_dir)
    saved = run_dir / "metrics.json"
    latest = next((path for path in (run_dir / "checkpoints" / LATEST, run_dir / GENERATOR_FILE)
                   if path.is_file()), None)
    if saved.is_file() and latest and saved.stat().st_mtime > latest.stat().st_mtime:
        result = json.loads(saved.read_text())
        if result.get("seed") == seed:
            return result
    return evaluate_run(run_dir, seed=seed, progress=progress)


def structure_stats(images: np.ndarray, dataset: str, data_cfg: DataConfig, segmenter=None,
                    scale_to: int = 256) -> dict[str, np.ndarray]:
    """Anatomy measured from the image channels alone, so runs without segmentation compare.

    Fundus: the vessel U-Net's map of the photograph (probability > 0.5), then vessel density,
    branch points and tortuosity. MRI: the share of the brain that is FLAIR-hyperintense
    (z > 2, oedema-like) and T1c-enhancing (z > 2, enhancing-tumour-like).
    """
    if dataset == "rop":
        fov = fields_of_view(images, data_cfg)
        vessels = segment_vessels(segmenter, images, scale_to, fov) > \
            metrics.VESSEL_LABEL_THRESHOLD
        return domain_stats.fundus_stats(vessels, fov)
    brain = brain_mask(images)
    area = np.maximum(brain.sum(axis=(1, 2)), 1)
    bright = 0.5  # channels are z / z_clip with z_clip 4 by default: 0.5 means z > 2
    return {"flair_hyperintense_fraction": ((images[:, 3] > bright) & brain).sum((1, 2)) / area,
            "t1c_enhancing_fraction": ((images[:, 1] > bright) & brain).sum((1, 2)) / area}


def compare_ablation(seg_run: str | Path, noseg_run: str | Path, seed: int = 0
                     ) -> dict[str, Any]:
    """The paper's Figure 3 as numbers: same budget, with and without segmentation channels.

    Both runs are judged on their image channels only: SWD to the real images and the
    structure statistics of ``structure_stats`` (for the fundus on ``eval.n_auc_images`` of
    them, as the U-Net is slow), each against the same real images. Writes
    ``ablation.json`` into ``seg_run`` and returns it.
    """
    seg_run, noseg_run = Path(seg_run), Path(noseg_run)
    run_info = json.loads((seg_run / "run.json").read_text())
    dataset, data = run_info["dataset"], PreparedDataset(run_info["data_dir"])
    n_image = IMAGE_CHANNELS[dataset]
    runs = {"with segmentation": seg_run, "without segmentation": noseg_run}
    generators = {name: load_generator(path) for name, path in runs.items()}
    info = generators["with segmentation"][1]
    config, resolution = info["config"], info["resolution"]
    train_idx = data.split_indices("train")
    n = min(config.eval.n_generated, len(train_idx))
    real = data.batch(np.random.default_rng(seed).choice(train_idx, n, replace=False),
                      resolution)[:, :n_image]
    segmenter = ensure_vessel_unet(config, progress=False) if dataset == "rop" else None
    scale = config.vessels.train_resolution
    k = config.eval.n_auc_images if dataset == "rop" else n  # U-Net scoring is the slow part
    real_stats = structure_stats(real[:k], dataset, config.data, segmenter, scale)
    swd_kwargs = {"n_descriptors": config.eval.swd_descriptors,
                  "n_projections": config.eval.swd_projections}
    result: dict[str, Any] = {"dataset": dataset, "resolution": resolution, "n": n,
                              "seed": seed, "runs": {}}
    for name, (G, _) in generators.items():
        fake = generate(G, n, resolution, config.model.latent_dim, seed)[:, :n_image]
        table = domain_stats.compare_distributions(
            real_stats, structure_stats(fake[:k], dataset, config.data, segmenter, scale))
        result["runs"][name] = {
            "run": str(runs[name]),
            "swd_mean": metrics.sliced_wasserstein(real, fake, seed=seed,
                                                   **swd_kwargs)["swd_mean"],
            "structure": table.reset_index().to_dict(orient="records"),
        }
    write_text_atomic(seg_run / "ablation.json", json.dumps(result, indent=2, default=float))
    return result


def ablation_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per statistic: real mean, and each run's mean and distance to real."""
    rows: dict[str, dict[str, Any]] = {}
    for name, run in result["runs"].items():
        rows.setdefault("SWD x1e3 to real (image channels)", {})[f"{name} (mean)"] = \
            run["swd_mean"]
        for stat in run["structure"]:
            row = rows.setdefault(stat["statistic"], {"real (mean)": stat["real_mean"]})
            row[f"{name} (mean)"] = stat["fake_mean"]
            row[f"{name}: distance to real"] = stat["wasserstein"]
    columns = ["real (mean)"] + [f"{name}{suffix}" for name in result["runs"]
                                 for suffix in (" (mean)", ": distance to real")]
    return pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns)


def ablation_verdicts(result: dict[str, Any]) -> list[str]:
    """One sentence per measure of ``compare_ablation``: which model is closer to the real
    images, with the numbers, so the page states the direction the data show, either way."""
    runs = result["runs"]
    seg, noseg = runs["with segmentation"], runs["without segmentation"]
    lines = []
    better = "with" if seg["swd_mean"] < noseg["swd_mean"] else "without"
    lines.append(f"SWD to the real images (lower is closer): {seg['swd_mean']:.1f} with "
                 f"segmentation, {noseg['swd_mean']:.1f} without: the model {better} "
                 "segmentation channels is closer.")
    by_name = {row["statistic"]: row for row in noseg["structure"]}
    for row in seg["structure"]:
        other = by_name[row["statistic"]]
        better = "with" if row["wasserstein"] < other["wasserstein"] else "without"
        lines.append(f"{row['statistic'].replace('_', ' ')}: real {row['real_mean']:.3g}, with "
                     f"segmentation {row['fake_mean']:.3g}, without {other['fake_mean']:.3g}: "
                     f"the model {better} segmentation channels is closer to real.")
    return lines
