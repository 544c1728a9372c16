"""A run folder's ``run.json`` as a type: what was trained, on which data, how far, whether it
finished. The trainer writes it, ``runs.shipped.install_run`` rewrites where a shipped run's data
is and adds where it came from, everything else reads it (``read_run_info``, most through
``runs.folder.open_run``)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pggan_core.atomic import write_text_atomic
from pggan_core.errors import CheckpointError, RunNotFoundError

RUN_INFO_FILE = "run.json"


@dataclass
class RunInfo:
    """The facts of one training run (``run.json``)."""

    dataset: str
    data_dir: str  # the prepared dataset it was trained on, as an absolute path
    with_segmentation: bool
    channels: list[str]
    total_steps: int
    step: int
    images_seen: int
    train_seconds: float  # time in training steps, summed over resumes
    world_size: int = 1
    threads: int | None = None
    device: str = "cpu"
    finished: bool = False
    # ``PreparedDataset.data_record``; None (not recorded) is never trusted to match any data
    data: dict[str, Any] | None = None
    precision: str | None = None  # None: not recorded
    # a shipped run installed from data/pretrained: its export record
    pretrained: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``run.json`` (keys that are None are left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: Path) -> RunInfo:
        """``raw`` (the ``run.json`` at ``path``) as a RunInfo; CheckpointError naming the file
        when a field is missing or unknown."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(raw))
        if unknown or missing:
            raise CheckpointError(
                f"{path}: not a run.json this version reads (missing {missing or 'nothing'}, "
                f"unknown {unknown or 'nothing'}); train the run again with `pggan train`")
        return cls(**raw)


def read_run_info(run_dir: str | Path) -> RunInfo:
    """The ``run.json`` of ``run_dir``: RunNotFoundError naming the command that makes it when
    there is none, CheckpointError when it cannot be read."""
    path = Path(run_dir) / RUN_INFO_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise RunNotFoundError(f"{run_dir} is not a training run (no {RUN_INFO_FILE}): run "
                               f"`pggan train --out {run_dir}` or notebooks/03_train.md first"
                               ) from error
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable ({error}); train the run again with "
                              "`pggan train`, or restore the file") from error
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object; train the run again")
    return RunInfo.from_dict(raw, path)


def write_run_info(run_dir: str | Path, info: RunInfo) -> None:
    """Write ``info`` as ``run_dir/run.json`` (atomically: a reader never sees half a file)."""
    write_text_atomic(Path(run_dir) / RUN_INFO_FILE, json.dumps(info.to_dict(), indent=2))

