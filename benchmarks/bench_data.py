"""Data benchmark: phantom images per second, and preparing a dataset end to end.

    python benchmarks/bench_data.py                 # full: 2,000 images prepared at 512 px
    python benchmarks/bench_data.py --prepare-n 200 # quicker

Prints a table and writes ``benchmarks/results/bench_data.json``. Goal (issue 2): at least
20 fundus phantom images/s at 512 x 512 on 2 cores. Rates are medians over repeats.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pggan_core.atomic import write_text_atomic
from pggan_core.config import load_config
from pggan_core.data.brain_phantom import BrainPhantom
from pggan_core.data.fundus_phantom import render_fundus
from pggan_core.data.prepare import prepare_dataset

RESULTS = Path(__file__).parent / "results"


def _fundus_512(seed: int) -> None:
    render_fundus(seed, 512)


def _brain_subject(seed: int) -> None:
    BrainPhantom().subject(seed)


def rate(fn, seeds: list[int], workers: int, repeats: int) -> float:
    """Median items/s of ``fn`` over ``seeds`` with ``workers`` processes."""
    rates = []
    for r in range(repeats):
        batch = [s + 10_000 * r for s in seeds]
        start = time.perf_counter()
        if workers == 1:
            for s in batch:
                fn(s)
        else:
            with mp.get_context("fork").Pool(workers) as pool:
                pool.map(fn, batch, chunksize=2)
        rates.append(len(batch) / (time.perf_counter() - start))
    return statistics.median(rates)


def prepare_time(dataset: str, n: int, resolution: int) -> float:
    """Seconds to prepare ``n`` phantom images of ``dataset`` end to end (written to a tmp dir)."""
    config = load_config("demo", dataset, {"data": {"n_images": n, "resolution": resolution,
                                                    "vessel_channel": "mask"}})
    tmp = Path(tempfile.mkdtemp(prefix="bench_data_"))
    try:
        start = time.perf_counter()
        prepare_dataset(config, tmp / "ds", progress=False)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="phantoms per rate measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prepare-n", type=int, default=2000)
    args = parser.parse_args()
    BrainPhantom()  # load the MNI templates once, before forking and timing
    seeds = list(range(args.n))
    brain_seeds = seeds[: max(4, args.n // 8)]
    slices = load_config("demo", "brats").data.slices_per_subject
    rows = [
        ("fundus phantom 512 px, 1 process", "img/s", rate(_fundus_512, seeds, 1, args.repeats)),
        ("fundus phantom 512 px, 2 processes", "img/s",
         rate(_fundus_512, seeds, 2, args.repeats)),
        ("brain phantom subject (240x240x155), 2 processes", "subjects/s",
         rate(_brain_subject, brain_seeds, 2, args.repeats)),
    ]
    rows.append((f"brain phantom slices at 256 px ({slices}/subject), 2 processes", "img/s",
                 rows[-1][2] * slices))
    for dataset, res in (("rop", 512), ("brats", 256)):
        seconds = prepare_time(dataset, args.prepare_n, res)
        rows.append((f"prepare {args.prepare_n} {dataset} images at {res} px end to end",
                     "s", seconds))
    print(f"{'measurement':<62} {'value':>10} unit")
    for name, unit, value in rows:
        print(f"{name:<62} {value:>10.2f} {unit}")
    RESULTS.mkdir(exist_ok=True)
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "args": vars(args),
           "results": [{"name": n, "unit": u, "value": v} for n, u, v in rows]}
    write_text_atomic(RESULTS / "bench_data.json", json.dumps(out, indent=2))
    print(f"-> {RESULTS / 'bench_data.json'}")


if __name__ == "__main__":
    main()
