"""Quality against compute: candidate demo configurations, each trained at its own budget and
scored with the project's own metrics (not a test; it takes hours).

    python benchmarks/quality_study.py --candidates demo_v1 demo --datasets rop brats
    python benchmarks/quality_study.py --candidates q_base q_wide --datasets rop \
        --variants seg noseg --seeds 0 1 --no-encoder
    python benchmarks/quality_study.py --list
    python benchmarks/quality_study.py --table        # print what results/ holds

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
resolved config of each candidate and the machine it ran on, and a table is printed.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import multiprocessing as mp
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "quality_study.json"
BASE_PROFILE = "demo"

# The demo profile before this study (commit 77746b3), spelt out so the row stays comparable
# however demo.yaml changes: 64 px, 8 maps at 64 px, 400 + 400 iterations everywhere.
DEMO_V1 = {
    "model": {"latent_dim": 128,
              "feature_maps": {4: 32, 8: 32, 16: 32, 32: 16, 64: 8, 128: 8, 256: 8, 512: 8}},
    "schedule": {"fade_iterations": 400, "stable_iterations": 400,
                 "iterations": {}, "batch_size": {4: 16, 8: 16, 16: 16, 32: 16, 64: 16,
                                                  128: 8, 256: 8, 512: 8}},
    "train": {"lr": 0.001, "ema_beta": 0.99},
    "encoder": {"iterations": 500, "lr": 0.003, "betas": [0.0, 0.99]},
}


@dataclass(frozen=True)
class Candidate:
    """A demo configuration: what it tries, and its overrides on the demo profile."""

    why: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


def _merge(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            out.setdefault(section, {}).update(values)
    return out


def budget(factor: int) -> dict[str, dict[str, Any]]:
    """DEMO_V1's schedule with ``factor`` times its iterations at every resolution."""
    n = 400 * factor
    return {"schedule": {"iterations": {4: (0, n), **{r: (n, n) for r in (8, 16, 32, 64)}}}}


LR3 = _merge(DEMO_V1, {"train": {"lr": 0.003}})

CANDIDATES: dict[str, Candidate] = {
    "demo_v1": Candidate("the demo before this study", DEMO_V1),
    "lr3_x1": Candidate("Adam step 3e-3 instead of 1e-3 (NVIDIA's value is for 40x longer "
                        "phases)", LR3),
    "lr3_x2": Candidate("lr3, twice the iterations", _merge(LR3, budget(2))),
    "lr3_x4": Candidate("lr3, four times the iterations", _merge(LR3, budget(4))),
    "lr3_z32_x2": Candidate("lr3 x2 with a 32-d latent (does a smaller z help the encoder?)",
                            _merge(LR3, budget(2), {"model": {"latent_dim": 32}})),
    "demo": Candidate("the demo profile as it is now (no overrides)"),
}

# The Figures 3-5 round: what buys quality at a sixth of a 90-minute run, fundus first. Every
# candidate keeps the demo profile (32-d latent, lr 3e-3, EMA 0.99, batch 16) except what its
# name changes, on one shortened schedule (7,600 steps; the demo: 16,000). Widths are spelt
# out: the demo profile's fundus section took q_wide's after this round, so "the demo's" no
# longer names q_base's.
STUDY_SCHEDULE = {"schedule": {"iterations": {4: (0, 400), 8: (400, 600), 16: (600, 800),
                                              32: (800, 800), 64: (1000, 1000)}}}
BASE = _merge(STUDY_SCHEDULE, {"model": {"feature_maps": {
    4: 32, 8: 32, 16: 32, 32: 16, 64: 8, 128: 8, 256: 8, 512: 8}}})
WIDE = _merge(STUDY_SCHEDULE, {"model": {"feature_maps": {
    4: 32, 8: 32, 16: 32, 32: 32, 64: 16, 128: 8, 256: 8, 512: 8}}})
CANDIDATES |= {
    "q_base": Candidate("the demo's widths then (16 maps at 32 px, 8 at 64 px), short schedule",
                        BASE),
    "q_wide": Candidate("twice the maps at 32 and 64 px (32, 16): each 64 px step 2x slower",
                        WIDE),
    "q_lr1": Candidate("Adam step 1e-3 (NVIDIA's) instead of 3e-3",
                       _merge(BASE, {"train": {"lr": 0.001}})),
    "q_ema999": Candidate("generator EMA 0.999 (NVIDIA's) instead of 0.99",
                          _merge(BASE, {"train": {"ema_beta": 0.999}})),
}
# Two more of the levers, on q_wide (the widths the book's fundus runs took from this
# round, and a configuration with two seeds to read a difference against). Batch per
# resolution: NVIDIA's code (progressive_growing_of_gans, config.py, one-GPU preset) takes 128
# images a step at 4-16 px, 64 at 32 px and 32 at 64 px, i.e. 4x / 2x its top batch below the
# top; q_batch keeps that shape over the demo's 16 and q_wide's steps, so it sees 4x / 2x the
# images there and pays for them. 128 px at the top: q_wide plus a 128 px phase of the same
# length (8 maps, the demo's batch of 8 at 128 px), so the vessel U-Net reads its photographs
# at their own scale.
CANDIDATES |= {
    "q_batch": Candidate("q_wide with NVIDIA's batch shape: 64 images a step at 4-16 px, 32 at "
                         "32 px, 16 at 64 px (same steps, so 4x / 2x the images there)",
                         _merge(WIDE, {"schedule": {
                             "batch_size": {4: 64, 8: 64, 16: 64, 32: 32, 64: 16, 128: 8,
                                            256: 8, 512: 8}}})),
    "q_128": Candidate("q_wide grown one more step, to 128 px (1,000 + 1,000 steps of 8 "
                       "images, 8 maps)",
                       _merge(WIDE, {"schedule": {
                           "max_resolution": 128,
                           "iterations": {**STUDY_SCHEDULE["schedule"]["iterations"],
                                          128: (1000, 1000)}}})),
}
VARIANTS = {"seg": True, "noseg": False}  # variant -> with_segmentation


# ---------------------------------------------------------------------------------------------
# one job: train, evaluate, encode, score the latent space


Job = tuple[str, str, str, int]  # (candidate, dataset, variant, seed)


def study_config(candidate: str, dataset: str, seed: int = 0):
    """The resolved Config of ``candidate`` for ``dataset``, trained with ``seed`` (the data
    keep seed 0: every seed of a candidate sees the same images)."""
    from pggan_core.config import load_config

    overrides = _merge(CANDIDATES[candidate].overrides, {"train": {"seed": seed}} if seed else {})
    return load_config(BASE_PROFILE, dataset, overrides)


def data_dir(config) -> Path:
    """A prepared dataset per distinct data configuration, shared by candidates."""
    data = json.dumps(config.to_dict()["data"], sort_keys=True)
    digest = hashlib.sha1(data.encode()).hexdigest()[:8]
    return REPO / "data" / "prepared" / f"study-{config.data.dataset}-{digest}"


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
    from pggan_core.runs.folder import is_finished
    from pggan_core.runs.reuse import ensure_run
    from pggan_core.runs.shipped import hardware
    from pggan_core.training.trainer import train

    torch.set_num_threads(1)
    candidate, dataset, variant, seed = job
    config = study_config(candidate, dataset, seed)
    out = run_folder(candidate, dataset, variant, seed)
    with_segmentation = VARIANTS[variant]
    if candidate == "demo":  # the book's run: installed from the shipped one when there is one
        ensure_run(dataset, BASE_PROFILE, with_segmentation, progress=False)
    elif not is_finished(out, config, with_segmentation):
        train(config, data_dir(config), out, with_segmentation,
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
                **{k: v for k, v in latent_space.items() if k != "details"}}
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


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU, its vector extensions, the ISA caps in force."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = re.search(r"model name\s*:\s*(.*)", flags)
    import torch

    return {
        "cpu": model.group(1) if model else platform.processor(),
        "cores": len(os.sched_getaffinity(0)),
        "avx512": sorted(set(re.findall(r"\b(avx512\w*)", flags))),
        "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"),
        "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "torch": torch.__version__, "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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
            if candidate == "demo":  # the book's own data, which its runs are checked against
                ensure_prepared(run_config(dataset, BASE_PROFILE),
                                prepared_dir(dataset, BASE_PROFILE, REPO), progress=False)
            hook(dataset_spec(dataset).structure)(config)  # the vessel U-Net, trained once


def load_results() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"rows": []}


def row_job(row: dict[str, Any]) -> Job:
    """The job a row measured (rows from before variants and seeds: with segmentation, 0)."""
    return row["candidate"], row["dataset"], row.get("variant", "seg"), row.get("seed", 0)


def save_rows(rows: list[dict[str, Any]]) -> None:
    """Merge ``rows`` into the results file, replacing rows of the same job; under a lock, so
    that two studies run side by side do not lose each other's rows."""
    import fcntl

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = load_results()
        done = {row_job(r) for r in rows}
        kept = [r for r in results["rows"] if row_job(r) not in done]
        stamp = machine()
        results["rows"] = kept + [{**r, "machine": stamp} for r in rows]
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=float))
        tmp.replace(RESULTS)


def table(rows: list[dict[str, Any]]) -> str:
    """One line per row: budget and every goal of the study."""
    head = (f"{'candidate':<12} {'data':<5} {'var':<5} {'s':>1} {'train s':>7} "
            f"{'SWD/fl':>6} {'img/fl':>6} {'MS-SSIM':>7} {'AUC':>6} {'dens':>5} {'soft':>5} "
            f"{'junc':>5} {'z-probe':>7} {'share':>5} {'PR':>4} {'enc R2':>6} {'k-NN':>6}")
    lines = [head, "-" * len(head)]
    for r in sorted(rows, key=lambda r: (r["dataset"], r["candidate"], r.get("variant", "seg"),
                                         r.get("seed", 0))):
        knn = r.get("knn_laterality_accuracy", r.get("knn_tumour_accuracy"))
        image = r.get("swd_image_over_floor")
        density = r.get("structure_vessel_density_ratio",
                        r.get("structure_flair_hyperintense_fraction_ratio"))
        share = r.get("generated_label_share") or {}
        lines.append(
            f"{r['candidate']:<12} {r['dataset']:<5} {r.get('variant', 'seg'):<5} "
            f"{r.get('seed', 0):>1} {r['train_seconds']:>7.0f} {r['swd_over_floor']:>6.2f} "
            f"{_num(image, 2):>6} {r['ms_ssim_gap']:>+7.3f} {_num(r['vessel_agreement_auc']):>6} "
            f"{_num(density, 2):>5} {_num(r.get('structure_vessel_density_soft_ratio'), 2):>5} "
            f"{_num(r.get('structure_branch_points_ratio'), 2):>5} "
            f"{_num(r.get('generated_z_probe')):>7} "
            f"{_num(min(share.values()) if len(share) > 1 else 0.0, 2):>5} "
            f"{_num(r.get('participation_ratio'), 1):>4} {_num(r.get('encoder_r2')):>6} "
            f"{_num(knn):>6}")
    return "\n".join(lines)


def _cost(job: Job) -> float:
    """Roughly the training work of a job: images x pixels x feature maps squared."""
    from pggan_core.training.schedule import build_phases

    config = study_config(job[0], job[1], job[3])
    return sum(p.iterations * config.schedule.batch_size[p.resolution] * p.resolution ** 2
               * config.model.feature_maps[p.resolution] ** 2 for p in build_phases(config))


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


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
        print(table(load_results()["rows"]))
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
    print(table(rows))
    print(f"-> {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
