"""Quality against compute: candidate demo configurations, each trained at its own budget and
scored with the project's own metrics (not a test; it takes hours).

    python -m benchmarks.quality.run --candidates demo_v1 demo --datasets rop brats
    python -m benchmarks.quality.run --candidates q_base q_wide --datasets rop \
        --variants seg noseg --seeds 0 1 --no-encoder
    python -m benchmarks.quality.run --list
    python -m benchmarks.quality.run --table        # print what results/ holds

Each (candidate, dataset, variant, seed) trains one run (``seg``: with the segmentation
channels, ``noseg``: the image channels only, Figure 3's ablation; ``seed``: the training
seed, the data stay the same) in its own one-thread process, two lanes on two cores as
``pggan book`` trains, then scores it as the book does: ``pggan evaluate`` (SWD and its floor,
of all channels and of the image channels alone, MS-SSIM, vessel-agreement AUC), the vessel
U-Net's reading of the generated photographs at its own scale against real photographs read
the same way (the dataset's ``structure``, ``ablation.FundusStructure``: vessel density,
junctions, tortuosity as ratios to real), what the generator encodes in z (the linear probe of
laterality / tumour presence from the true z of generated images,
``probes.generated_z_probe``; the participation ratio of its Jacobian,
``generate.latent_usage``) and, unless ``--no-encoder``, ``pggan encode`` (encoder
R²) and ``pggan latent`` (k-NN and linear probe of encoded real images). The run's
``phase_metrics.jsonl`` (SWD at the end of every phase) gives its quality curve against images
seen and training seconds.

Runs live in ``runs/quality_study/<candidate>/<dataset>[-noseg][-s<seed>]`` (git-ignored; a
finished run is reused, so an interrupted study resumes). Rows merge into
``benchmarks/results/quality_study.json`` (rerunning a job replaces its row), with the
resolved config of each candidate and the machine it ran on, and a table is printed. The
candidates are ``candidates.py``'s; ``results.py`` reads and writes the rows.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

from .candidates import BASE_PROFILE, CANDIDATES, VARIANTS, study_config
from .levers import DATA_LEVERS
from .results import REPO, RESULTS, Job, load_results, row_job, save_rows
from .tables import text_table

# ---------------------------------------------------------------------------------------------
# one job: train, evaluate, encode, score the latent space


def data_dir(config, data_lever: str | None = None) -> Path:
    """A prepared dataset per distinct data configuration, shared by candidates; a candidate's
    ``data_lever`` (``levers.DATA_LEVERS``) gets its own copy of it, changed."""
    data = json.dumps(config.to_dict()["data"], sort_keys=True)
    digest = hashlib.sha1(data.encode()).hexdigest()[:8]
    lever = f"-{data_lever}" if data_lever else ""
    return REPO / "data" / "prepared" / f"study-{config.data.dataset}-{digest}{lever}"


def run_folder(candidate: str, dataset: str, variant: str = "seg", seed: int = 0) -> Path:
    """Where a job's run lives; ``demo`` is the book's own run (shipped or trained)."""
    if candidate == "demo":
        from pggan_core.runs.folder import RunSpec

        return RunSpec(dataset, BASE_PROFILE, VARIANTS[variant]).folder(REPO)
    name = dataset + ("-noseg" if variant == "noseg" else "") + (f"-s{seed}" if seed else "")
    return REPO / "runs" / "quality_study" / candidate / name


def run_job(job: Job, with_encoder: bool = True) -> dict[str, Any]:
    """Train (or reuse), then score, one job in this process."""
    import torch

    from pggan_core.evaluation.evaluate import evaluate_run
    from pggan_core.provenance import hardware
    from pggan_core.runs.folder import is_finished
    from pggan_core.runs.reuse import ensure_run
    from pggan_core.training.trainer import train

    torch.set_num_threads(1)
    candidate, dataset, variant, seed = job
    config = study_config(candidate, dataset, seed)
    out = run_folder(candidate, dataset, variant, seed)
    with_segmentation = VARIANTS[variant]
    if candidate == "demo":  # the book's run: installed from the shipped one when there is one
        ensure_run(dataset, BASE_PROFILE, with_segmentation, progress=False)
    elif not is_finished(out, config, with_segmentation):
        train(config, data_dir(config, CANDIDATES[candidate].data_lever), out, with_segmentation,
              resume=(out / "checkpoints").is_dir(), progress=False)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    metrics = evaluate_run(out, progress=False)
    seconds["evaluate"] = time.perf_counter() - started
    started = time.perf_counter()
    generator_scores = score_generator(out, dataset)
    seconds["generator"] = time.perf_counter() - started
    info = json.loads((out / "run.json").read_text())
    curve = [json.loads(line) for line in (out / "phase_metrics.jsonl").read_text().splitlines()]
    row = {
        "candidate": candidate, "dataset": dataset, "variant": variant, "seed": seed,
        "why": CANDIDATES[candidate].why,
        "overrides": CANDIDATES[candidate].overrides, "config": config.to_dict(),
        "train_seconds": info["train_seconds"], "threads": info.get("threads", 1),
        # a shipped run trained elsewhere; the row's ``machine`` is where it was scored
        "trained_on": (info.get("pretrained") or {}).get("hardware") or hardware(),
        "images_seen": info["images_seen"], "steps": info["step"],
        "swd_mean": metrics["swd_mean"], "swd_floor_mean": metrics["swd_floor_mean"],
        "swd_over_floor": metrics["swd_mean"] / metrics["swd_floor_mean"],
        "swd_image_mean": metrics["swd_image_mean"],
        "swd_image_floor_mean": metrics["swd_image_floor_mean"],
        "swd_image_over_floor": metrics["swd_image_mean"] / metrics["swd_image_floor_mean"],
        "ms_ssim_generated": metrics["ms_ssim_generated"],
        "ms_ssim_real": metrics["ms_ssim_real"],
        "ms_ssim_gap": metrics["ms_ssim_generated"] - metrics["ms_ssim_real"],
        "vessel_agreement_auc": metrics.get("vessel_agreement_auc"),
        "vessel_agreement_auc_reference": metrics.get("vessel_agreement_auc_reference"),
        **generator_scores,
        "phase_curve": curve,
    }
    if with_encoder and with_segmentation:
        from pggan_core.latent.encoder import encode_run
        from pggan_core.latent.space import score_latent_space

        started = time.perf_counter()
        encoder = encode_run(out, progress=False)
        seconds["encode"] = time.perf_counter() - started
        started = time.perf_counter()
        latent_space = score_latent_space(out)
        seconds["latent"] = time.perf_counter() - started
        row |= {"encoder_r2": encoder["r2"], "encoder_loss_last": encoder["loss_last"],
                "encoder_r2_optimised": encoder["r2_optimised"],
                "heldout_mse_encoder": encoder["heldout_mse_encoder"],
                "heldout_mse_refined": encoder["heldout_mse_refined"],
                # Figure 4 as numbers, for the encoder's own reconstructions and refined ones
                **figure4_scores(encoder),
                **{k: v for k, v in latent_space.items() if k not in ("details", "attributes")}}
        if latent_space.get("attributes"):  # Figure 5's table; its plane is the run's own
            row["attributes"] = {k: v for k, v in latent_space["attributes"].items()
                                 if k not in ("plane", "values")}
    row["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    return row


def figure4_scores(encoder: dict[str, Any]) -> dict[str, Any]:
    """Nearest-input retrieval and detail correlation of held-out reconstructions (an
    ``encoder.json``), by the encoder alone and refined by optimisation."""
    return {f"{measure}{suffix}": encoder[measure][variant]
            for measure in ("reconstruction_retrieval", "reconstruction_detail_correlation")
            for variant, suffix in (("encoder", ""), ("refined", "_refined"))}


def score_generator(run: Path, dataset: str, seed: int = 0) -> dict[str, Any]:
    """What the figures need of a generator, from its images alone (no encoder): the U-Net's
    reading of its photographs against real ones at the U-Net's scale (fundus) or the tumour
    shares of the brain (MRI), as ratios of means to real; what z encodes (linear probe of the
    label from the true z, and each label's share); the participation ratio of z."""
    import numpy as np

    from pggan_core.data.store import PreparedDataset
    from pggan_core.datasets import dataset_spec, hook
    from pggan_core.generate import latent_usage, sample_images
    from pggan_core.latent.probes import generated_z_probe
    from pggan_core.training.checkpoint import load_generator

    G, info = load_generator(run)
    config, resolution = info["config"], info["resolution"]
    data = PreparedDataset(json.loads((run / "run.json").read_text())["data_dir"])
    spec = dataset_spec(dataset)
    n_image = spec.image_channels
    reader = hook(spec.structure)(config)
    k = config.eval.n_generated if reader.max_images is None else reader.max_images
    train_idx = data.split_indices("train")
    real = data.batch(np.random.default_rng(seed).choice(train_idx, k, replace=False),
                      resolution)[:, :n_image]
    fake = sample_images(G, k, resolution, config.model.latent_dim, seed)[:, :n_image]
    real_stats, fake_stats = reader(real), reader(fake)
    ratios = {f"structure_{m}_ratio": float(np.nanmean(fake_stats[m]) / np.nanmean(real_stats[m]))
              for m in real_stats}
    probe = generated_z_probe(G, dataset, resolution, config.model.latent_dim, seed=seed)
    usage = latent_usage(G, resolution)
    return {**ratios, "structure_n": k,
            "generated_z_probe": probe.get("accuracy"),
            "generated_label_share": probe.get("label_share"),
            "participation_ratio": usage["participation_ratio"]}


# ---------------------------------------------------------------------------------------------
# the study


def prepare(candidates: list[str], datasets: list[str]) -> None:
    """Prepared datasets and the vessel U-Net, made once before the lanes start."""
    from pggan_core.data.prepare import ensure_prepared
    from pggan_core.datasets import dataset_spec, hook
    from pggan_core.paths import prepared_dir
    from pggan_core.runs.folder import run_config

    for candidate in candidates:
        for dataset in datasets:
            config = study_config(candidate, dataset)
            ensure_prepared(config, data_dir(config), progress=False)
            lever = CANDIDATES[candidate].data_lever
            made = data_dir(config, lever) / "dataset.json"
            # made again when the data it changes were prepared again since
            if lever and (not made.is_file() or made.stat().st_mtime
                          < (data_dir(config) / "dataset.json").stat().st_mtime):
                DATA_LEVERS[lever](data_dir(config), data_dir(config, lever))
            if candidate == "demo":  # the book's own data, which its runs are checked against
                ensure_prepared(run_config(dataset, BASE_PROFILE),
                                prepared_dir(dataset, BASE_PROFILE, REPO), progress=False)
            hook(dataset_spec(dataset).structure)(config)  # the vessel U-Net, trained once


def _cost(job: Job) -> float:
    """Roughly the training work of a job: images x pixels x feature maps squared."""
    from pggan_core.training.schedule import build_phases

    config = study_config(job[0], job[1], job[3])
    return sum(p.iterations * config.schedule.batch_size[p.resolution] * p.resolution ** 2
               * config.model.feature_maps[p.resolution] ** 2 for p in build_phases(config))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", nargs="+", default=["demo"])
    parser.add_argument("--datasets", nargs="+", default=["rop", "brats"])
    parser.add_argument("--variants", nargs="+", default=["seg"], choices=sorted(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--no-encoder", action="store_true",
                        help="skip the encoder and the latent-space scores (minutes per run)")
    parser.add_argument("--rescore", action="store_true",
                        help="score again jobs whose row is saved with the same config")
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--list", action="store_true", help="list the candidates")
    parser.add_argument("--table", action="store_true", help="print the saved results")
    args = parser.parse_args()
    if args.list:
        for name, candidate in CANDIDATES.items():
            print(f"{name:<16} {candidate.why}\n{'':<16} {candidate.overrides}")
        return
    if args.table:
        print(text_table(load_results()["rows"]))
        return
    unknown = [c for c in args.candidates if c not in CANDIDATES]
    if unknown:
        sys.exit(f"unknown candidate(s) {unknown}; --list shows them")
    os.environ.setdefault("PGGAN_HOME", str(REPO))
    from pggan_core.config import same_config

    prepare(args.candidates, args.datasets)
    # longest first, so the two lanes finish close together
    saved = {row_job(r): r["config"] for r in load_results()["rows"]}
    # same_config: a row saved before a config field existed holds for that field's default
    jobs = sorted(((c, d, v, s) for c in args.candidates for d in args.datasets
                   for v in args.variants for s in args.seeds
                   if args.rescore or (c, d, v, s) not in saved
                   or not same_config(saved[(c, d, v, s)], study_config(c, d, s))),
                  key=_cost, reverse=True)
    print(f"{len(jobs)} job(s) to run: " + ", ".join(" ".join(map(str, j)) for j in jobs),
          flush=True)
    job = functools.partial(run_job, with_encoder=not args.no_encoder)
    rows: list[dict[str, Any]] = []
    with mp.get_context("spawn").Pool(args.lanes) as pool:
        for row in pool.imap_unordered(job, jobs):
            rows.append(row)
            save_rows([row])
            print(f"done: {' '.join(map(str, row_job(row)))} "
                  f"({row['train_seconds']:.0f} s training)", flush=True)
    print(text_table(rows))
    print(f"-> {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
