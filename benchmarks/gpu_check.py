"""The GPU check: one command that proves the paper-scale path on one GPU in a few minutes.

    python benchmarks/gpu_check.py --out gpu_check/                 # on a GPU (under 8 min)
    python benchmarks/gpu_check.py --device cpu --quick --out DIR   # toy sizes, any machine

It writes ``DIR/gpu_check.json`` and ``DIR/samples.png`` with:

- ``tests``: the CUDA-relevant tests (the trainer under bf16 and fp32, bit-identical resume,
  the encoder), run by pytest on this device (skipped with ``--quick``, which itself runs
  inside the test suite);
- ``throughput``: the trainer's own training step (WGAN-GP critic step, generator step, Adam,
  EMA) at the paper's widths for every resolution 4 -> 512, in bf16 and fp32: images/s,
  achieved TFLOP/s (counted by torch's FlopCounterMode over one step) and the share of the
  device's dense bf16 peak;
- ``peak_memory``: the largest GPU memory one 512 px step at batch 8 allocates, per precision;
- ``schedule_hours``: the paper's ROP (4 -> 512 px) and BraTS (4 -> 256 px) schedules timed
  from the measured rates (stable-phase rates; fades cost a little more), against the goal of
  2 hours for ROP on one H100-class GPU;
- ``short_training``: a real training on phantoms at the paper's widths, as far up the
  resolutions as ``--train-minutes`` allows, its losses (finite or not) and a sample grid.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, _FlopCounterMode

from pggan_core.atomic import write_text_atomic
from pggan_core.config import load_config
from pggan_core.data.prepare import prepare_dataset
from pggan_core.training.guards import Runtime
from pggan_core.training.schedule import build_phases
from pggan_core.training.trainer import Trainer
from pggan_core.viz import plots

REPO = Path(__file__).resolve().parents[1]
GOAL_ROP_HOURS = 2.0
# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
                    "A10": 125.0, "V100": 125.0}
CUDA_TESTS = ["tests/test_precision.py", "tests/test_latent.py",
              "tests/test_train.py::test_resume_mid_fade_is_bit_identical",
              "tests/test_train.py::test_smoke_run_writes_the_whole_run_folder"]


def settings(quick: bool) -> dict[str, Any]:
    """Sizes of the check: the paper's (``paper`` profile) or toy ones (``smoke``)."""
    if quick:
        return {"profile": "smoke", "resolutions": [4, 8, 16], "memory_resolution": 16,
                "images": 12, "warmup": 1, "steps": 2, "train_iterations": 4}
    return {"profile": "paper", "resolutions": [4, 8, 16, 32, 64, 128, 256, 512],
            "memory_resolution": 512, "images": 64, "warmup": 3, "steps": 10,
            "train_iterations": 300}


def trainer_for(config, data: Path, out: Path, device: torch.device) -> Trainer:
    """The project's own Trainer on one process."""
    return Trainer(config, data, out, True, Runtime(device, 0, 1))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(trainer: Trainer, resolution: int, warmup: int, steps: int) -> dict[str, float]:
    """Images/s and FLOPs of the trainer's stable-phase step at ``resolution``."""
    phase = next(p for p in trainer.phases if p.resolution == resolution and p.kind == "stable")
    batch = trainer.begin_phase(phase)
    for _ in range(warmup):
        trainer.train_step(phase, 1.0, batch)
    times = []
    for _ in range(steps):
        synchronize(trainer.device)
        started = time.perf_counter()
        trainer.train_step(phase, 1.0, batch)
        synchronize(trainer.device)
        times.append(time.perf_counter() - started)
    counter = FlopCounterMode(display=False)
    # the gradient penalty's autograd.grad escapes FlopCounterMode's module tracker: count at
    # the dispatch level only (same totals)
    with _FlopCounterMode(counter):
        trainer.train_step(phase, 1.0, batch)
    step = statistics.median(times)
    return {"batch": batch, "step_s": step, "img_s": batch / step,
            "flops_per_step": counter.get_total_flops(),
            "tflops": counter.get_total_flops() / step / 1e12}


def peak_memory(trainer: Trainer, resolution: int) -> float | None:
    """GB the largest step at ``resolution`` allocates on the GPU (None on a CPU)."""
    if trainer.device.type != "cuda":
        return None
    phase = next(p for p in trainer.phases if p.resolution == resolution and p.kind == "stable")
    batch = trainer.begin_phase(phase)
    torch.cuda.reset_peak_memory_stats(trainer.device)
    trainer.train_step(phase, 1.0, batch)
    synchronize(trainer.device)
    return torch.cuda.max_memory_allocated(trainer.device) / 2**30


def schedule_hours(dataset: str, rates: dict[int, float]) -> float | None:
    """The paper's schedule for ``dataset`` at the measured images/s, in hours."""
    config = load_config("paper", dataset)
    seconds = 0.0
    for phase in build_phases(config):
        if phase.resolution not in rates:
            return None
        seconds += phase.iterations * config.schedule.batch_size[phase.resolution] / \
            rates[phase.resolution]
    return seconds / 3600


def short_training(config, data: Path, out: Path, device: torch.device, minutes: float,
                   iterations: int) -> dict[str, Any]:
    """Train from 4 px up, ``iterations`` per phase, while time is left; losses and samples."""
    trainer = trainer_for(config, data, out, device)
    started, losses, reached = time.perf_counter(), [], 0
    for phase in trainer.phases:
        if time.perf_counter() - started > 60 * minutes:
            break
        batch = trainer.begin_phase(phase)
        for step in range(iterations):
            stats = trainer.train_step(phase, step / iterations if phase.kind == "fade" else 1.0,
                                       batch)
            losses.append({"resolution": phase.resolution, "phase": phase.kind,
                           "d_loss": stats["d_loss"], "g_loss": stats["g_loss"]})
        reached = phase.resolution
    G = trainer.G_ema if trainer.G_ema is not None else trainer.G
    with torch.no_grad():
        images = G(trainer.outputs.fixed_z.to(device), reached, 1.0).float().cpu().numpy()
    grid = plots.sample_grid(images, config.data.dataset, ncols=4, size=max(reached, 64))
    return {"reached_resolution": reached, "iterations_per_phase": iterations,
            "seconds": round(time.perf_counter() - started, 1),
            "losses_finite": all(math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"])
                                 for r in losses),
            "last_losses": losses[-3:], "grid": grid}


def run_tests(device: torch.device) -> dict[str, Any]:
    """pytest on the CUDA-relevant tests (``train.device: auto`` picks the GPU)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *CUDA_TESTS], cwd=REPO, capture_output=True, text=True)
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    return {"device": str(device), "passed": done.returncode == 0, "summary": tail,
            "tests": CUDA_TESTS}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="toy sizes (CPU, the test suite)")
    parser.add_argument("--train-minutes", type=float, default=3.0)
    args = parser.parse_args(argv)
    device, size = torch.device(args.device), settings(args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda, "quick": args.quick,
        "profile": size["profile"], "goal_rop_hours": GOAL_ROP_HOURS}
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in result["device"]), None)
    result["bf16_peak_tflops"] = peak
    result["tests"] = ({"skipped": "--quick runs inside the test suite"} if args.quick
                       else run_tests(device))

    top = max(size["resolutions"])
    overrides = {"data": {"n_images": size["images"], "resolution": top,
                          "vessel_channel": "mask"},
                 "schedule": {"max_resolution": top}, "train": {"device": device.type}}
    config = load_config(size["profile"], "rop", overrides)
    data = prepare_dataset(config, args.out / "data", progress=False)
    result["throughput"], result["peak_memory_gb"], rates = [], {}, {}
    for precision in ("bf16", "fp32"):
        config = load_config(size["profile"], "rop",
                             {**overrides, "train": {**overrides["train"],
                                                     "precision": precision}})
        trainer = trainer_for(config, data, args.out / f"bench-{precision}", device)
        rates[precision] = {}
        for res in size["resolutions"]:
            row = {"precision": precision, "resolution": res,
                   **time_steps(trainer, res, size["warmup"], size["steps"])}
            row["share_of_bf16_peak"] = row["tflops"] / peak if peak else None
            rates[precision][res] = row["img_s"]
            result["throughput"].append(row)
            print(f"{precision} {res:>4} px  {row['img_s']:9.1f} img/s  "
                  f"{row['tflops']:7.2f} TFLOP/s", flush=True)
        result["peak_memory_gb"][precision] = peak_memory(trainer, size["memory_resolution"])
        del trainer
    result["schedule_hours"] = {precision: {d: schedule_hours(d, r) for d in ("rop", "brats")}
                                for precision, r in rates.items()}
    rop = result["schedule_hours"]["bf16"]["rop"]
    result["meets_goal"] = rop is not None and rop <= GOAL_ROP_HOURS
    config = load_config(size["profile"], "rop", overrides)
    training = short_training(config, data, args.out / "train", device, args.train_minutes,
                              size["train_iterations"])
    plots.save_png(training.pop("grid"), args.out / "samples.png")
    result["short_training"] = {**training, "samples": "samples.png"}
    result["seconds"] = round(time.perf_counter() - started, 1)
    write_text_atomic(args.out / "gpu_check.json", json.dumps(result, indent=2, default=float))
    print(f"wrote {args.out / 'gpu_check.json'} in {result['seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()
