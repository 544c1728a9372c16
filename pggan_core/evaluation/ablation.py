"""The paper's Figure 3 as numbers: the same budget trained with and without segmentation
channels, both judged on their image channels only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pggan_core.atomic import write_text_atomic
from pggan_core.config import DataConfig
from pggan_core.data.preprocess import brain_mask, fields_of_view
from pggan_core.data.store import IMAGE_CHANNELS, PreparedDataset
from pggan_core.data.vessels import ensure_vessel_unet, segment_vessels
from pggan_core.evaluation import domain_stats
from pggan_core.evaluation.swd import sliced_wasserstein, swd_options
from pggan_core.evaluation.vessel_agreement import VESSEL_LABEL_THRESHOLD
from pggan_core.generate import sample_images
from pggan_core.training.checkpoint import load_generator


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
            VESSEL_LABEL_THRESHOLD
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
    swd_settings = swd_options(config.eval)
    result: dict[str, Any] = {"dataset": dataset, "resolution": resolution, "n": n,
                              "seed": seed, "runs": {}}
    for name, (G, _) in generators.items():
        fake = sample_images(G, n, resolution, config.model.latent_dim, seed)[:, :n_image]
        table = domain_stats.compare_distributions(
            real_stats, structure_stats(fake[:k], dataset, config.data, segmenter, scale))
        result["runs"][name] = {
            "run": str(runs[name]),
            "swd_mean": sliced_wasserstein(real, fake, seed=seed,
                                                   **swd_settings)["swd_mean"],
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
