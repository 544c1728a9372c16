"""One training run's folder: which folder a run is (``RunSpec``), is it finished, does it hold a
generator, which data it was trained on.

    runs/<dataset>/<profile>/[<data name>/]<seg|noseg>[-seed<N>]/
        run.json, config.yaml   what was trained, on which data, and whether it finished
        checkpoints/            latest.pt, previous.pt (``training.checkpoint``)
        generator.pt            a shipped run's weights instead of checkpoints
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from pggan_core.config import load_config, same_config, seed_overrides, with_current_study_settings
from pggan_core.data.store import PreparedDataset, same_data, sha256_of
from pggan_core.errors import DataError, PgganError, RunNotFoundError
from pggan_core.paths import PHANTOM, data_name, home, prepared_dir, seed_suffix
from pggan_core.provenance import stale_reason
from pggan_core.settings import Config
from pggan_core.training.checkpoint import has_generator, load_generator, weights_fingerprint
from pggan_core.training.run_info import RUN_INFO_FILE, RunInfo, read_run_info


@dataclass(frozen=True)
class RunSpec:
    """What names a run: the dataset, the profile, with or without segmentation channels, the seed
    (``config.seed_overrides``: the data's and the training's) and the data (``source``: a folder,
    None for the built-in phantom). Its folders are named here and nowhere else, so the CLI, the
    book and the notebooks find the same run."""

    dataset: str
    profile: str
    with_segmentation: bool = True
    seed: int = 0
    source: str | Path | None = None

    @property
    def variant(self) -> str:
        """"seg" (the paper's model) or "noseg" (Figure 3's ablation): the run folder's name."""
        return "seg" if self.with_segmentation else "noseg"

    def folder(self, root: Path | None = None) -> Path:
        """``runs/<dataset>/<profile>/[<data name>/]<variant>[-seed<N>]``: the data name
        (``paths.data_name``) for a real ``source``, the suffix for a seed other than 0."""
        name = data_name(self.source)
        folder = (root or home()) / "runs" / self.dataset / self.profile
        return ((folder if name == PHANTOM else folder / name)
                / f"{self.variant}{seed_suffix(self.seed)}")

    def data_folder(self, root: Path | None = None) -> Path:
        """The prepared dataset the run learns from (``paths.prepared_dir``)."""
        return prepared_dir(self.dataset, self.profile, root, self.source, self.seed)

    def config(self) -> Config:
        """The run's configuration (``run_config``)."""
        return run_config(self.dataset, self.profile, self.seed)


def run_config(dataset: str, profile: str, seed: int = 0,
               augment: dict[str, Any] | None = None) -> Config:
    """A book run's configuration: the profile, with ``seed`` as ``pggan train --seed`` sets it
    (``config.seed_overrides``) and ``augment`` overriding keys of the augmentation study's section
    (no trained run depends on it: ``settings.STUDY_SECTIONS``)."""
    return load_config(profile, dataset, {**seed_overrides(seed), "augment": augment or {}})


def require_generator(run_dir: str | Path) -> Path:
    """``run_dir`` if it holds a trained generator, else a RunNotFoundError naming the fix."""
    run_dir = Path(run_dir)
    if not has_generator(run_dir):
        raise RunNotFoundError(
            f"{run_dir} has no trained generator: train it first with `pggan train --out "
            f"{run_dir}` (or papermill notebooks/03_train.md)")
    return run_dir


def run_data_dir(run_dir: str | Path, config: Config, info: RunInfo | None = None) -> Path:
    """The prepared dataset the run was trained on (from ``run.json``, or ``info``), else the
    profile's default folder for the data the run records (the phantom's when none): the one rule
    for finding a run's data. DataError when that folder holds no prepared dataset."""
    if info is None and (Path(run_dir) / RUN_INFO_FILE).is_file():
        info = read_run_info(run_dir)
    source = None
    if info is not None:
        if info.data_dir and Path(info.data_dir).is_dir():
            return Path(info.data_dir)
        source = (info.data or {}).get("source")
    seed = config.data.seed
    folder = prepared_dir(config.data.dataset, config.profile,
                          source=None if source == PHANTOM else source, seed=seed)
    if not (folder / "dataset.json").is_file():
        raise DataError(f"{folder}: the prepared dataset of {run_dir} is missing; run "
                        f"`pggan data prepare --dataset {config.data.dataset} --profile "
                        f"{config.profile}{f' --seed {seed}' if seed else ''} --out {folder}` "
                        "first")
    return folder


@dataclass(frozen=True)
class OpenRun:
    """A trained run opened for reading: what every command that reads a run starts from."""

    path: Path
    info: RunInfo  # run.json
    G: nn.Module  # the trained generator (its EMA copy when there is one), in eval mode
    facts: dict[str, Any]  # checkpoint.load_generator's: config, channels, resolution, alpha...
    data: PreparedDataset  # the prepared dataset it was trained on (``run_data_dir``)

    @property
    def config(self) -> Config:
        """The configuration the run was trained with."""
        return self.facts["config"]

    @property
    def resolution(self) -> int:
        """The highest resolution the generator has trained at."""
        return int(self.facts["resolution"])

    @property
    def channels(self) -> list[str]:
        """The generated channels' names (the image channels alone without segmentation)."""
        return list(self.facts["channels"])


def open_run(run_dir: str | Path) -> OpenRun:
    """The run in ``run_dir`` (its ``run.json``, generator, config and prepared data, each found by
    one rule); RunNotFoundError naming the command that makes it when there is none."""
    run_dir = require_generator(run_dir)
    info = read_run_info(run_dir)
    G, facts = load_generator(run_dir)
    return OpenRun(run_dir, info, G, facts,
                   PreparedDataset(run_data_dir(run_dir, facts["config"], info)))


def marked_finished(run_dir: str | Path) -> bool:
    """Whether ``run_dir``'s ``run.json`` says it finished and it holds a generator: the one test of
    "a finished run is here" (``is_finished`` adds the config and the data)."""
    return _finished_info(Path(run_dir)) is not None


def _finished_info(run_dir: Path) -> RunInfo | None:
    """``run.json`` of a run that finished and holds a generator, else None."""
    try:
        info = read_run_info(run_dir)
    except PgganError:
        return None
    return info if info.finished is True and has_generator(run_dir) else None


def require_trained_run(spec: RunSpec, root: Path | None = None) -> Path:
    """The finished run folder of ``spec``, or a RunNotFoundError naming the command that trains it
    (the notebooks that read a run stop here when it is missing)."""
    folder = spec.folder(root)
    if not marked_finished(folder):
        flag = "" if spec.with_segmentation else " -p with_segmentation False"
        flag += "" if spec.seed == 0 else f" -p seed {spec.seed}"
        flag += "" if spec.source is None else f" -p source '{spec.source}'"
        raise RunNotFoundError(
            f"no finished {spec.variant} run of {spec.dataset} on profile {spec.profile} at "
            f"{folder}: run `papermill notebooks/03_train.md out.ipynb -p dataset "
            f"{spec.dataset} -p profile {spec.profile}{flag}` first")
    return folder


def is_finished(run_dir: str | Path, config: Config, with_segmentation: bool = True,
                data: dict[str, Any] | None = None) -> bool:
    """Whether ``run_dir`` holds a finished run of exactly this config and channel choice (and,
    given ``data``, a ``PreparedDataset.data_record``, trained on that data)."""
    run_dir = Path(run_dir)
    info = _finished_info(run_dir)  # run.json read once
    if info is None:
        return False
    try:
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return (info.with_segmentation == with_segmentation and same_config(saved, config)
            and (data is None or same_data(info.data, data)))


def recorded_data(run: Path) -> dict | None:
    """The data the run in ``run`` records (None: no run, or one that records none)."""
    try:
        return read_run_info(run).data
    except PgganError:
        return None


def stale_result(run_dir: str | Path, kind: str, saved: dict[str, Any] | None,
                 generator: tuple[str, Config] | None = None) -> str | None:
    """Why a ``kind`` result in ``run_dir`` recording the derivation ``saved`` no longer holds for
    the run (its generator, the code, the run's config: ``provenance.stale_reason``), or None.
    ``generator=run_generator(run_dir)`` hashes the weights once for several results."""
    sha, config = generator or run_generator(run_dir)
    inputs = {name: _file_sha256(Path(run_dir) / name) for name in (saved or {}).get("inputs", {})}
    return stale_reason(saved, kind, sha, config, inputs)


def run_generator(run_dir: str | Path) -> tuple[str, Config]:
    """The SHA-256 of the run's generator weights and the config it was trained with."""
    G, info = load_generator(run_dir)
    # study settings as the profile sets them now: what the run's results are computed with
    return weights_fingerprint(G), with_current_study_settings(info["config"])


def _file_sha256(path: Path) -> str:
    """A file's SHA-256, or "missing"."""
    return sha256_of(path) if path.is_file() else "missing"
