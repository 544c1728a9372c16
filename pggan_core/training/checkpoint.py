"""Training checkpoints: written so a kill never corrupts them, read so a file never runs code.

A run's ``checkpoints/`` holds ``latest.pt``, the newest complete checkpoint, and ``previous.pt``,
the one before (the fallback should ``latest.pt`` be unreadable). A save hard-links ``latest.pt``
to ``previous.pt``, then writes the new one to a temporary file, fsyncs it and renames it over
``latest.pt`` (``atomic_file``): every step is a rename, so both names always point at complete
files and a SIGKILL at any moment leaves a readable ``latest.pt``.

A checkpoint is a plain dict of tensors, numbers, strings, lists, tuples and dicts, read with
``torch.load(weights_only=True)``: RNG states are tensors (torch) or plain ints (numpy's
bit-generator dict, Python's ``random`` tuple), and a file carrying a pickled object is refused
(CheckpointError). Each records its ``format`` and the ``package_version`` that wrote it; another
format version is refused with a message naming both and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pggan_core import __version__
from pggan_core.atomic import atomic_file
from pggan_core.config import config_from_dict
from pggan_core.errors import CheckpointError, RunNotFoundError, StorageError
from pggan_core.settings import Config

FORMAT = "pggan-medsynth/checkpoint/1"
LATEST = "latest.pt"
PREVIOUS = "previous.pt"
# a shipped run's generator alone (``pretrained``): the EMA weights and the facts
# ``load_generator`` returns, no critic, optimizers or RNG states (it cannot be resumed)
GENERATOR_FILE = "generator.pt"
GENERATOR_FORMAT = "pggan-medsynth/generator/1"
GENERATOR_KEYS = ("format", "config", "channels", "step", "resolution", "alpha", "images_seen",
                  "finished", "ema", "G")
REQUIRED_KEYS = ("format", "config", "channels", "step", "phase_index", "resolution", "alpha",
                 "images_seen", "G", "G_ema", "D", "opt_G", "opt_D", "ranks")


def save_checkpoint(folder: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (with ``package_version``) as ``folder/latest.pt``, keeping the former
    latest as ``previous.pt``. StorageError when the folder cannot be written (a full disk, a
    read-only folder); both files are then still complete, with no temporary left."""
    folder = Path(folder)
    latest = folder / LATEST
    had_latest = latest.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # a temporary found now is a killed writer's leftover: one process writes (run_lock)
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        if had_latest:
            _replace_with_link(latest, folder / PREVIOUS)
        with atomic_file(latest) as fh:
            torch.save({"format": FORMAT, "package_version": __version__, **state}, fh)
    except (OSError, RuntimeError) as err:
        cause = _os_error_in(err)
        if cause is None:
            raise
        raise StorageError(_write_failure(folder, cause, had_latest)) from err
    return latest


def _os_error_in(err: BaseException) -> OSError | None:
    """The OSError behind ``err``, if any. torch.save reports a failed ``write`` of the file
    it is given as a RuntimeError ("unexpected pos ..."), with the OSError as its context."""
    while err is not None:
        if isinstance(err, OSError):
            return err
        err = err.__cause__ or err.__context__
    return None


def _write_failure(folder: Path, err: OSError, had_latest: bool) -> str:
    """One line for a checkpoint that could not be written: where, why, what is kept, the fix."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = f"free space on the disk holding {folder}"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = f"make {folder} writable"
    else:
        fix = f"check the disk holding {folder}"
    reason = err.strerror or str(err)
    if err.errno in errno.errorcode:
        reason += f" ({errno.errorcode[err.errno]})"
    kept = (f"{LATEST} still holds the previous checkpoint" if had_latest
            else "no checkpoint was written yet")
    return (f"cannot write a checkpoint in {folder}: {reason}; {kept}: {fix} and resume "
            "with --resume")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    fmt: str = FORMAT) -> dict[str, Any]:
    """Read one checkpoint file safely (``weights_only=True``); CheckpointError if unusable or
    not of format ``fmt`` (a training checkpoint's, or ``GENERATOR_FORMAT``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint; train first with `pggan train`")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        if "Weights only load failed" in str(err):
            raise CheckpointError(
                f"{path} holds pickled Python objects, which could run code when loaded; "
                "refusing it: only load checkpoints written by `pggan train`") from None
        raise CheckpointError(f"{path} is unreadable ({type(err).__name__}); delete it to "
                              f"fall back to {PREVIOUS}, or retrain") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise CheckpointError(_format_mismatch(path, state, fmt))
    required = REQUIRED_KEYS if fmt == FORMAT else GENERATOR_KEYS
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}: it is incomplete; retrain")
    return state


def _format_mismatch(path: Path, state: Any, fmt: str) -> str:
    """Why ``state`` is not a checkpoint of format ``fmt``: another version of this format
    (naming the package version that wrote it, when recorded), or not ours at all."""
    found = state.get("format") if isinstance(state, dict) else None
    kind, _, reads = fmt.rpartition("/")
    if not (isinstance(found, str) and found.startswith(f"{kind}/")):
        return f"{path} is not a pggan-medsynth checkpoint (format {found!r}, expected {fmt!r})"
    version = found.removeprefix(f"{kind}/")
    writer = state.get("package_version")  # absent from checkpoints of 0.1.0 and before
    by = f" by pggan-medsynth {writer}" if writer is not None else ""
    use = f"pggan-medsynth {writer}" if writer is not None else \
        "the version of pggan-medsynth that wrote it"
    what, fix = (("checkpoint", f"resume it with {use}, or start a new run with another --out")
                 if fmt == FORMAT else
                 ("generator", f"load it with {use}, or train the run anew"))
    return (f"{path} was written{by} in {what} format version {version} (this code, "
            f"pggan-medsynth {__version__}, reads version {reads}): {fix}")


def load_latest(folder: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The newest readable checkpoint in ``folder``: ``latest.pt``, else ``previous.pt`` (only
    for a damaged ``latest.pt``; an unsafe one, holding pickled objects, is refused)."""
    folder = Path(folder)
    try:
        return load_checkpoint(folder / LATEST, map_location)
    except CheckpointError as err:
        if "pickled" in str(err) or not (folder / PREVIOUS).is_file():
            raise
        return load_checkpoint(folder / PREVIOUS, map_location)


def has_checkpoint(folder: str | Path) -> bool:
    """Whether ``folder`` holds a checkpoint to resume from."""
    folder = Path(folder)
    return (folder / LATEST).is_file() or (folder / PREVIOUS).is_file()


def has_generator(run_dir: str | Path) -> bool:
    """Whether a run folder holds a trained generator: a checkpoint, or a shipped one."""
    run_dir = Path(run_dir)
    return has_checkpoint(run_dir / "checkpoints") or (run_dir / GENERATOR_FILE).is_file()


def capture_rng() -> dict[str, Any]:
    """Every global RNG this process draws from: torch CPU, CUDA (if any), Python ``random``."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what ``capture_rng`` recorded."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def numpy_rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A numpy Generator's state as a plain dict of strings and ints."""
    return rng.bit_generator.state


def numpy_rng_from_state(state: dict[str, Any]) -> np.random.Generator:
    """Rebuild a numpy Generator from ``numpy_rng_state`` output."""
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def weights_fingerprint(*modules: nn.Module | dict[str, torch.Tensor]) -> str:
    """A SHA-256 of every tensor in the modules (or state dicts): equal iff bit-identical."""
    digest = hashlib.sha256()
    for module in modules:
        state = module.state_dict() if isinstance(module, nn.Module) else module
        for name, tensor in state.items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def load_generator(run_dir: str | Path, ema: bool = True,
                   map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """``(G, info)``: a run's trained generator (its EMA copy when there is one and ``ema``),
    frozen in eval mode, and ``config`` (Config), ``channels`` (names), ``resolution`` (the
    highest trained so far), ``alpha``, ``step``, ``finished`` and ``ema`` (the copy used).
    RunNotFoundError when the run has no checkpoint or shipped generator."""
    # here, so checkpoint.py stays light to import
    from pggan_core.training.architectures import build_network

    folder = Path(run_dir) / "checkpoints"
    shipped = Path(run_dir) / GENERATOR_FILE
    if has_checkpoint(folder):
        state = load_latest(folder, map_location)
        use_ema = ema and state["G_ema"] is not None
        weights = state["G_ema"] if use_ema else state["G"]
    elif shipped.is_file():  # a shipped run (``pretrained``): its EMA generator only
        state = load_checkpoint(shipped, map_location, GENERATOR_FORMAT)
        use_ema, weights = state["ema"], state["G"]
    else:
        raise RunNotFoundError(f"{run_dir} has no checkpoint: run `pggan train --out {run_dir}` "
                               "or notebooks/03_train.md first")
    config: Config = config_from_dict(state["config"])
    G = build_network("generator", config.model, len(state["channels"]),
                      config.schedule.max_resolution)
    G.load_state_dict(weights)
    G.eval().requires_grad_(False)
    info = {"config": config, "channels": list(state["channels"]),
            "resolution": state["resolution"], "alpha": state["alpha"], "step": state["step"],
            "finished": state.get("finished", False), "ema": use_ema}
    return G.to(map_location), info


def _replace_with_link(source: Path, target: Path) -> None:
    """Make ``target`` another name for ``source``'s current file, atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        try:
            os.link(source, tmp)
        except OSError:  # file systems without hard links: a copy is as safe, only slower
            shutil.copy2(source, tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
