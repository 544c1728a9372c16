"""Make or reuse the runs a book build shows: install the shipped ones, train the rest in
parallel lanes, never mix runs of other settings or other data.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import yaml

from pggan_core.config import same_config
from pggan_core.data.prepare import ensure_prepared
from pggan_core.data.store import require_same_data
from pggan_core.runs import shipped
from pggan_core.runs.folder import RunSpec, is_finished, recorded_data
from pggan_core.settings import Config
from pggan_core.training.trainer import train


def ensure_run(dataset: str, profile: str, with_segmentation: bool = True, seed: int = 0,
               source: str | Path | None = None, progress: bool = True,
               resume: bool = True, train_here: bool = False,
               position: int | None = None) -> Path:
    """The finished run folder of (dataset, profile, data, variant), preparing and training
    if needed.

    The run's folders are its ``RunSpec``'s: a real ``source`` folder and a seed other than 0
    each get their own, so runs of other data never share one. When the profile ships this run
    (``pretrained``) for exactly this configuration and phantom data, the shipped run is
    verified and installed instead of training, unless ``train_here``. An unfinished run of the
    same configuration and data is continued (``resume=True``) or moved aside and started over
    (``resume=False``). A run that records other data than ``source`` now prepares to is
    refused (DataMismatchError), never reused or resumed.
    """
    spec = RunSpec(dataset, profile, with_segmentation, seed, source)
    config, data_dir, out = spec.config(), spec.data_folder(), spec.folder()
    variant = out.name  # what the profile ships it as: "seg", "noseg", "seg-seed1"...
    if source is None:  # the U-Net that drew the shipped runs' vessel channel, where shipped
        shipped.install_vessel_unet(profile, config)
    data = ensure_prepared(config, data_dir, source=source, progress=progress)
    record = data.data_record()
    _refuse_other_data(out, record)
    problem = shipped.installed_problem(out, profile, dataset, variant)
    if problem is not None:  # installed from the repository, which now ships something else
        _move_aside(out, f"the installed shipped run ({problem})")
    if (not train_here and source is None
            and not is_finished(out, config, with_segmentation, record)
            and shipped.ships(profile, dataset, variant, config)):
        if (out / "checkpoints").is_dir():  # a run trained here: kept, not overwritten
            _move_aside(out, "the run trained here")
        return shipped.install_run(profile, dataset, variant, config, out, data)
    if not is_finished(out, config, with_segmentation, record):
        _set_aside_if_stale(out, config, keep_same_config=resume)
        resume = (out / "checkpoints").is_dir()
        train(config, data_dir, out, with_segmentation=with_segmentation, resume=resume,
              progress=progress, position=position)
    return out


def _refuse_other_data(out: Path, record: dict) -> None:
    """DataMismatchError when the run in ``out`` records data other than ``record``."""
    recorded = recorded_data(out)
    if recorded is not None:  # a run from before runs recorded data is set aside instead
        require_same_data(recorded, record, out,
                          f"move or delete {out} to train on the new data (or restore the "
                          "data it was trained on)")


def _set_aside_if_stale(out: Path, config: Config, keep_same_config: bool = True) -> None:
    """Rename an unfinished run to ``<name>.stale-<time>`` (kept, not lost) so training can
    start over: always when it was made with another configuration (resuming would mix two)
    or records no data (made before runs did: it cannot be shown to match), and also with the
    same configuration unless ``keep_same_config``.
    """
    saved = out / "config.yaml"
    if saved.is_file() and (not keep_same_config or recorded_data(out) is None
                            or not same_config(yaml.safe_load(saved.read_text()), config)):
        _move_aside(out, "the unfinished, differently configured or unrecorded-data run")


def _move_aside(out: Path, what: str) -> None:
    """Rename ``out`` to ``<name>.stale-<time>``, saying so."""
    aside = out.with_name(f"{out.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
    out.rename(aside)
    print(f"moved {what} {out} to {aside}")


def _train_job(job: tuple[str, str, bool, int, bool, str | None, int, int]) -> str:
    """One lane of ``pretrain``: a training in its own process, reporting its progress."""
    import torch

    dataset, profile, with_segmentation, seed, train_here, source, threads, position = job
    torch.set_num_threads(threads)
    return str(ensure_run(dataset, profile, with_segmentation, seed, source=source,
                          progress=True, train_here=train_here, position=position))


def lanes_and_threads(jobs: int, cores: int | None = None) -> tuple[int, int]:
    """Parallel trainings and threads per training for ``jobs`` runs on the cores this
    process may use (``os.sched_getaffinity``): one lane per core up to one per job, the
    cores left over shared out as threads. Independent single-threaded trainings beat one
    training on several threads at these sizes, so lanes come first."""
    cores = cores or len(os.sched_getaffinity(0))
    lanes = max(1, min(jobs, cores))
    return lanes, max(1, cores // lanes)


def pretrain(profile: str, datasets: tuple[str, ...] = ("rop", "brats"), seed: int = 0,
             train_here: bool = False,
             sources: dict[str, str | Path] | None = None) -> list[Path]:
    """Make every run the book needs (with and without segmentation) in parallel lanes:
    shipped runs are installed, the others trained (all of them with ``train_here``).
    ``sources`` maps a dataset to the user's folder to train on instead of its phantom.

    The notebooks then find finished runs and reuse them. Datasets are prepared first, in
    this process, so two lanes never prepare the same folder at once. Each lane is a fresh
    (spawned) process (``lanes_and_threads``); each reports its progress, as a bar in a
    terminal or a line every ~30 s in a log.
    """
    import multiprocessing as mp

    sources = {d: str(s) for d, s in (sources or {}).items()}
    for dataset in datasets:
        spec = RunSpec(dataset, profile, seed=seed, source=sources.get(dataset))
        if spec.source is None:
            shipped.install_vessel_unet(profile, spec.config())
        ensure_prepared(spec.config(), spec.data_folder(), source=spec.source, progress=True)
    runs = [(d, seg) for seg in (True, False) for d in datasets]
    lanes, threads = lanes_and_threads(len(runs))
    jobs = [(d, profile, seg, seed, train_here, sources.get(d), threads, i)
            for i, (d, seg) in enumerate(runs)]
    if lanes == 1:
        return [Path(_train_job(job)) for job in jobs]
    with mp.get_context("spawn").Pool(lanes) as pool:
        return [Path(p) for p in pool.map(_train_job, jobs, chunksize=1)]
