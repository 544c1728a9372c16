"""Make or reuse a run: install the shipped one, continue or train it, never mix runs of other
settings or other data; and how many trainings share the cores (``lanes_and_threads``)."""

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
    """The finished run folder of ``RunSpec(dataset, profile, with_segmentation, seed, source)``,
    prepared and trained if needed. A run the profile ships for exactly this configuration and
    phantom data is verified and installed instead, unless ``train_here``; an unfinished one of the
    same configuration and data is continued (``resume``) or moved aside and started over; one
    recording other data than ``source`` now prepares to is refused (DataMismatchError), never
    reused or resumed."""
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
    if recorded is not None:  # a run that records no data is set aside instead
        require_same_data(recorded, record, out,
                          f"move or delete {out} to train on the new data (or restore the "
                          "data it was trained on)")


def _set_aside_if_stale(out: Path, config: Config, keep_same_config: bool = True) -> None:
    """Rename an unfinished run aside (``_move_aside``) so training can start over: when it was made
    with another configuration (resuming would mix two) or records no data (it cannot be shown to
    match), and, unless ``keep_same_config``, with the same configuration too."""
    saved = out / "config.yaml"
    if saved.is_file() and (not keep_same_config or recorded_data(out) is None
                            or not same_config(yaml.safe_load(saved.read_text()), config)):
        _move_aside(out, "the unfinished, differently configured or unrecorded-data run")


def _move_aside(out: Path, what: str) -> None:
    """Rename ``out`` to ``<name>.stale-<time>``, saying so."""
    aside = out.with_name(f"{out.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
    out.rename(aside)
    print(f"moved {what} {out} to {aside}")


def lanes_and_threads(jobs: int, cores: int | None = None) -> tuple[int, int]:
    """Parallel trainings and threads per training for ``jobs`` runs on the cores this process may
    use (``os.sched_getaffinity``): a lane per core up to one per job (at these sizes independent
    single-threaded trainings beat one on several threads), the cores left over as threads."""
    cores = cores or len(os.sched_getaffinity(0))
    lanes = max(1, min(jobs, cores))
    return lanes, max(1, cores // lanes)


