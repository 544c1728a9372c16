"""Training speed side by side with pytorch_GAN_zoo's PGGAN (not a test; zoo is not shipped).

Fetch facebookresearch/pytorch_GAN_zoo anywhere and point ``--zoo`` at its root; its code is
imported from there at run time and never copied into this repository. Both trainers run the
configuration of ``bench_train.py`` (batch 16, 4 channels: ours is the project's own
``Trainer.train_step`` reading phantom fundus data, zoo's a fixed batch; WGAN-GP with lambda
10 and drift 0.001, equalized LR, minibatch stddev, a stable phase) at the widths of
``--widths``: ``paper``
(latent 128, 128 filters, where convolutions dominate) or ``demo`` (the demo profile's narrow
layers and latent, where per-operation overhead weighs more), each in its own worker process,
and the driver alternates their steps one by one so that a busy machine slows both alike.
Separate processes let each have its own malloc settings:

- ``system``: both on glibc's defaults;
- ``kept``: both with ``allocator.keep_freed_memory()``;
- ``shipped``: each as it ships: this project keeps freed memory (``pggan train`` calls it),
  zoo runs on the defaults.

    python benchmarks/bench_vs_zoo.py --zoo /path/to/pytorch_GAN_zoo --resolutions 16 32 64
    python benchmarks/bench_vs_zoo.py --zoo /path/to/pytorch_GAN_zoo --widths demo

Prints one row per resolution and allocator setting (medians of the step times and their
ratio) and writes ``benchmarks/results/bench_vs_zoo.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import bench_train
import torch

from pggan_core.atomic import write_text_atomic
from pggan_core.config import load_config
from pggan_core.training.allocator import keep_freed_memory

RESULTS = Path(__file__).parent / "results" / "bench_vs_zoo.json"
BATCH, CHANNELS = 16, 4
SETTINGS = {"system": (False, False), "kept": (True, True), "shipped": (True, False)}


def _zoo_step(zoo_root: str, resolution: int, widths: str) -> Callable[[], None]:
    """One ``optimizeParameters`` call of zoo's ProgressiveGAN grown to ``resolution`` with
    the feature maps and latent size of profile ``widths``."""
    sys.path.insert(0, zoo_root)
    warnings.filterwarnings("ignore", message="This overload of add_")  # zoo's EMA update
    from models.progressive_gan import ProgressiveGAN  # imported from the user's checkout

    class Zoo(ProgressiveGAN):
        # zoo passes betas=[0, 0.99]; torch 2.13's Adam rejects the int 0, so same as floats
        def getOptimizerD(self) -> torch.optim.Adam:
            return torch.optim.Adam([p for p in self.netD.parameters() if p.requires_grad],
                                    betas=(0.0, 0.99), lr=self.config.learningRate)

        def getOptimizerG(self) -> torch.optim.Adam:
            return torch.optim.Adam([p for p in self.netG.parameters() if p.requires_grad],
                                    betas=(0.0, 0.99), lr=self.config.learningRate)

    model = load_config(widths, "rop").model
    torch.manual_seed(0)
    zoo = Zoo(dimLatentVector=model.latent_dim, depthScale0=model.feature_maps[4],
              miniBatchStdDev=True, equalizedlR=True, lossMode="WGANGP", lambdaGP=10.0,
              epsilonD=0.001, dimOutput=CHANNELS, useGPU=False, baseLearningRate=1e-3)
    res = 4
    while res < resolution:
        res *= 2
        zoo.addScale(model.feature_maps[res])
    # zoo's alpha counts the other way: 0 (what addScale leaves) is the newest block alone
    if zoo.getOriginalG().alpha != 0:
        raise RuntimeError("zoo's generator is mid-fade; this benchmark times a stable phase")
    reals = torch.rand(BATCH, CHANNELS, resolution, resolution) * 2 - 1
    return lambda: zoo.optimizeParameters(reals)


def _ours_step(resolution: int, widths: str, data_dir: Path, compiled: bool
               ) -> Callable[[], None]:
    """One ``Trainer.train_step`` (reading its reals from phantom fundus data, 4 channels),
    with ``train.compile`` where ``compiled``."""
    setup = bench_train.build(resolution, BATCH, data_dir, alpha=1.0, profile=widths,
                              options=frozenset({"compile"} if compiled else ()))
    return lambda: bench_train.train_step(setup)


def _worker(trainer: str, zoo_root: str, resolution: int, widths: str, data_dir: Path,
            keep_memory: bool, threads: int, compiled: bool, conn: Connection) -> None:
    """Build one trainer, then time one step per request until told to stop."""
    if keep_memory:
        keep_freed_memory()
    torch.set_num_threads(threads)
    step = (_zoo_step(zoo_root, resolution, widths) if trainer == "zoo"
            else _ours_step(resolution, widths, data_dir, compiled))
    conn.send("ready")
    while conn.recv() == "step":
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        seconds = bench_train.timed(step)
        conn.send((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults))


def compare(zoo_root: str, resolution: int, widths: str, data_dir: Path, setting: str,
            threads: int, warmup: int, iters: int, compiled: bool = False) -> dict:
    """Alternate ours and zoo's steps in two worker processes; medians and their ratio."""
    context = mp.get_context("spawn")
    keep = dict(zip(("ours", "zoo"), SETTINGS[setting], strict=True))
    pipes, workers = {}, []
    for trainer in ("ours", "zoo"):
        parent, child = context.Pipe()
        worker = context.Process(target=_worker, args=(trainer, zoo_root, resolution, widths,
                                                       data_dir, keep[trainer], threads,
                                                       compiled, child))
        worker.start()
        child.close()  # so a worker that dies shows up as EOFError here, not a hang
        pipes[trainer] = parent
        workers.append(worker)
    times: dict[str, list[float]] = {"ours": [], "zoo": []}
    faults: dict[str, list[int]] = {"ours": [], "zoo": []}
    try:
        for trainer, conn in pipes.items():
            if conn.recv() != "ready":
                raise RuntimeError(f"the {trainer} worker did not start")
        for i in range(warmup + iters):
            for trainer, conn in pipes.items():
                conn.send("step")
                seconds, page_faults = conn.recv()
                if i >= warmup:
                    times[trainer].append(seconds)
                    faults[trainer].append(page_faults)
    finally:
        for conn in pipes.values():
            with contextlib.suppress(OSError):  # that worker may have died already
                conn.send("stop")
        for worker in workers:
            worker.join()
    medians = {trainer: statistics.median(ts) for trainer, ts in times.items()}
    return {"setting": setting, "ours_compiled": compiled, "ours_keeps_memory": keep["ours"],
            "zoo_keeps_memory": keep["zoo"],
            "ours_img_s": BATCH / medians["ours"], "zoo_img_s": BATCH / medians["zoo"],
            "ratio": medians["zoo"] / medians["ours"],
            "ours_faults_per_step": statistics.median(faults["ours"]),
            "zoo_faults_per_step": statistics.median(faults["zoo"]),
            "ours_step_s": times["ours"], "zoo_step_s": times["zoo"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", required=True, type=Path,
                        help="root of a pytorch_GAN_zoo checkout (holds models/progressive_gan.py)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--widths", choices=["paper", "demo"], default="paper",
                        help="feature maps and latent size of this profile (default paper)")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--ours", nargs="+", choices=["eager", "compiled"], default=["eager"],
                        help="ours as it trains by default, and/or with train.compile")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed steps first (at least 2 for compiled: it compiles then)")
    parser.add_argument("--iters", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not (args.zoo / "models" / "progressive_gan.py").is_file():
        parser.error(f"{args.zoo} has no models/progressive_gan.py: pass the root of a "
                     "pytorch_GAN_zoo checkout")

    print(f"widths={args.widths} threads={args.threads} batch={BATCH} channels={CHANNELS} "
          f"(medians of {args.iters} alternating steps after {args.warmup} warm-up) "
          f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY')}")
    print(f"{'res':>5} {'malloc':>8} {'ours':>8} {'ours img/s':>11} {'zoo img/s':>10} "
          f"{'ratio':>7} {'faults ours/zoo':>16}")
    data_dir = bench_train.prepare_phantoms(
        "rop", max(args.resolutions), 2 * BATCH,
        Path(tempfile.gettempdir()) / "pggan-bench-train" / f"rop-{max(args.resolutions)}px")
    rows = []
    for res in args.resolutions:
        for setting, ours in ((s, o) for s in args.settings for o in args.ours):
            compiled = ours == "compiled"
            row = {"resolution": res, "widths": args.widths,
                   **compare(str(args.zoo.resolve()), res, args.widths, data_dir, setting,
                             args.threads, max(args.warmup, 2) if compiled else args.warmup,
                             args.iters, compiled)}
            rows.append(row)
            print(f"{res:>5} {setting:>8} {ours:>8} {row['ours_img_s']:>11.2f} "
                  f"{row['zoo_img_s']:>10.2f} "
                  f"{row['ratio']:>6.2f}x {row['ours_faults_per_step']:>8.0f}/"
                  f"{row['zoo_faults_per_step']:<7.0f}", flush=True)
    write_text_atomic(args.out, json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                    "torch": torch.__version__, "isa_caps": {
                                        k: os.environ.get(k) for k in ("ATEN_CPU_CAPABILITY",
                                                                       "ONEDNN_MAX_CPU_ISA")},
                                    "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
