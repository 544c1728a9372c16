"""Peak memory of ``pggan evaluate`` and ``pggan encode`` against the size of the dataset.

Both read the prepared images a block at a time (``store.ImageView``), so their peak should
not grow with the number of images. For each dataset size this prepares a phantom fundus set at
``--resolution`` px, trains a tiny GAN to that resolution (a few steps per phase: the weights do
not matter, only what evaluation and encoding read), then runs each command in a fresh process
and records that process's peak resident memory (``VmHWM``).

    python benchmarks/bench_memory.py --resolution 256 --sizes 640 1920

Memory is bounded by the batch (64 images), so both sizes should be multiples of 320 images
(20 % held out: whole batches of held-out images, and of training images) of at least 640
(two full held-out batches). A smaller or ragged size measures a smaller batch, not a smaller
dataset: 400 images (80 held out, a batch of 64 then one of 16) peak lower than 1200.

Each command runs twice: with glibc's default allocator settings, and with its mmap threshold
fixed at 1 MiB (``MALLOC_MMAP_THRESHOLD_``). By default glibc raises the threshold each time a
large block is freed, after which blocks of up to 32 MiB come from the heap, where freed memory
stays resident and fragments a little more with every block processed; the fixed threshold
hands large blocks back to the system on free, so its peak is the memory actually in use.

Prints a table and writes ``benchmarks/results/bench_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pggan_core.atomic import write_text_atomic

RESULTS = Path(__file__).parent / "results" / "bench_memory.json"
# The peak is this process's own VmHWM: ru_maxrss would not do, as Linux carries the parent's
# peak across fork and exec (the driver has just trained a run in memory).
STEP = """
import re, sys, threading, time, torch
torch.set_num_threads(1)
peak_anon = [0]
def sample_anon():  # the kernel keeps no peak of RssAnon: sample it every 5 ms
    while True:
        status = open("/proc/self/status").read()
        peak_anon[0] = max(peak_anon[0], int(re.search(r"RssAnon:\\s+(\\d+) kB", status).group(1)))
        time.sleep(0.005)
threading.Thread(target=sample_anon, daemon=True).start()
from pggan_core.latent import encoder
from pggan_core.evaluation.evaluate import evaluate_run
from pggan_core.latent.encoder import encode_run
encoder.INVERSION_STEPS = 20  # memory per step is the same; 300 steps only take longer
run = sys.argv[2]
if sys.argv[1] == "evaluate":
    evaluate_run(run, progress=False)
else:
    encode_run(run, progress=False, reuse=False)
status = open("/proc/self/status").read()
print(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), peak_anon[0])
"""


def tiny_run(root: Path, n_images: int, resolution: int) -> Path:
    """A phantom fundus dataset of ``n_images`` and a GAN trained a few steps per phase."""
    import torch

    from pggan_core.config import load_config
    from pggan_core.data.prepare import prepare_dataset
    from pggan_core.segmentation.vessels import ensure_vessel_unet
    from pggan_core.training.trainer import train

    torch.set_num_threads(1)
    maps = {r: 8 for r in (4, 8, 16, 32, 64, 128, 256, 512)}
    config = load_config("smoke", "rop", {
        "data": {"n_images": n_images, "resolution": resolution, "heldout_fraction": 0.2},
        "model": {"latent_dim": 16, "feature_maps": maps},
        "schedule": {"max_resolution": resolution, "fade_iterations": 2,
                     "stable_iterations": 2, "batch_size": dict.fromkeys(maps, 4)},
        "train": {"checkpoint_every": 1000},
        "encoder": {"iterations": 20, "batch_size": 4, "refine_steps": 5},
        "eval": {"n_generated": 32, "n_auc_images": 8, "n_msssim_pairs": 16}})
    data = prepare_dataset(config, root / f"data-{n_images}", progress=False)
    # the vessel U-Net is trained once, here: evaluation should only read it
    ensure_vessel_unet(config, progress=False)
    return train(config, data, root / f"run-{n_images}", progress=False)


ALLOCATORS = {"glibc default": {}, "mmap threshold 1 MiB": {"MALLOC_MMAP_THRESHOLD_": "1048576"}}


def peak_mb(command: str, run: Path, allocator: str) -> tuple[float, float, float]:
    """Peak RSS and peak anonymous RSS (MB; the second leaves out pages of mapped files) and
    wall seconds of one command on ``run`` in a fresh process with ``ALLOCATORS[allocator]``."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", STEP, command, str(run)],
                          capture_output=True, text=True,
                          env={**os.environ, **ALLOCATORS[allocator]})
    if done.returncode:
        raise SystemExit(f"`{command}` on {run} failed:\n{done.stderr[-3000:]}")
    rss_kb, anon_kb = done.stdout.split()[-2:]
    return int(rss_kb) / 1024, int(anon_kb) / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="+", default=[640, 1920])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PGGAN_HOME"] = tmp  # the vessel U-Net and every file land here
        for n in args.sizes:
            run = tiny_run(Path(tmp), n, args.resolution)
            for command in ("evaluate", "encode"):
                for allocator in ALLOCATORS:
                    mb, anon, seconds = peak_mb(command, run, allocator)
                    rows.append({"images": n, "resolution": args.resolution,
                                 "command": command, "allocator": allocator,
                                 "peak_rss_mb": round(mb, 1), "peak_anon_mb": round(anon, 1),
                                 "seconds": round(seconds, 1)})
                    print(f"{n:>6} images  {args.resolution} px  pggan {command:<9} "
                          f"{allocator:<21} peak {mb:8.1f} MB (anonymous {anon:7.1f} MB)  "
                          f"({seconds:.0f} s)", flush=True)
    for command in ("evaluate", "encode"):
        for allocator in ALLOCATORS:
            same = [r for r in rows if r["command"] == command and r["allocator"] == allocator]
            rss, anon = (same[-1][key] / same[0][key] for key in ("peak_rss_mb", "peak_anon_mb"))
            print(f"pggan {command:<9} {allocator:<21} peak at {max(args.sizes)} images / at "
                  f"{min(args.sizes)} images: RSS {rss:.3f}, anonymous {anon:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                            "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
