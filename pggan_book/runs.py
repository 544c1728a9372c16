"""The runs a book build shows: every (dataset, with or without segmentation) run made or
installed in parallel lanes before the notebooks execute. Its own module, light to import: each
lane is a spawned process that imports it, and needs neither papermill nor jupyter-book."""

from __future__ import annotations

from pathlib import Path

from pggan_core.data.prepare import ensure_prepared
from pggan_core.runs.folder import RunSpec
from pggan_core.runs.reuse import ensure_run, lanes_and_threads
from pggan_core.runs.shipped import install_vessel_unet


def _train_job(job: tuple[str, str, bool, int, bool, str | None, int, int]) -> str:
    """One lane of ``pretrain``: a training in its own process, reporting its progress."""
    import torch

    dataset, profile, with_segmentation, seed, train_here, source, threads, position = job
    torch.set_num_threads(threads)
    return str(ensure_run(dataset, profile, with_segmentation, seed, source=source,
                          progress=True, train_here=train_here, position=position))


def pretrain(profile: str, datasets: tuple[str, ...] = ("rop", "brats"), seed: int = 0,
             train_here: bool = False,
             sources: dict[str, str | Path] | None = None) -> list[Path]:
    """Make every run the book needs (with and without segmentation) in parallel lanes, so the
    notebooks find them finished: shipped runs installed, the others trained (all with
    ``train_here``); ``sources`` maps a dataset to the user's folder to train on instead of its
    phantom. Datasets are prepared first, here, so two lanes never prepare one folder at once; each
    lane is a fresh (spawned) process reporting its progress (a bar in a terminal, a line every
    ~30 s in a log)."""
    import multiprocessing as mp

    sources = {d: str(s) for d, s in (sources or {}).items()}
    for dataset in datasets:
        spec = RunSpec(dataset, profile, seed=seed, source=sources.get(dataset))
        if spec.source is None:
            install_vessel_unet(profile, spec.config())
        ensure_prepared(spec.config(), spec.data_folder(), source=spec.source, progress=True)
    runs = [(d, seg) for seg in (True, False) for d in datasets]
    lanes, threads = lanes_and_threads(len(runs))
    jobs = [(d, profile, seg, seed, train_here, sources.get(d), threads, i)
            for i, (d, seg) in enumerate(runs)]
    if lanes == 1:
        return [Path(_train_job(job)) for job in jobs]
    with mp.get_context("spawn").Pool(lanes) as pool:
        return [Path(p) for p in pool.map(_train_job, jobs, chunksize=1)]
