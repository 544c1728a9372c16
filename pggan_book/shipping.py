"""Shipping runs: a finished run's generator, logs, encoders and slow results copied into
``data/pretrained/<profile>`` with their SHA-256 in the manifest, for ``pggan_core.runs.shipped``
to verify and install in a book build (``pggan weights train-and-export | ship-results``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from pggan_core.atomic import atomic_file, write_text_atomic
from pggan_core.data.store import PreparedDataset, sha256_of
from pggan_core.errors import CheckpointError
from pggan_core.paths import home, vessel_model_path
from pggan_core.provenance import git_commit, hardware
from pggan_core.runs.folder import marked_finished
from pggan_core.runs.shipped import (
    ENCODER_FILES,
    INVERSION_FILES,
    MANIFEST,
    RESULT_FILES,
    RESULT_KINDS,
    RUN_FILES,
    VESSEL_UNET,
    pretrained_dir,
    read_manifest,
    run_key,
)
from pggan_core.training import checkpoint as ckpt
from pggan_core.training.run_info import read_run_info


def ship_results(run_dir: Path, profile: str, dataset: str, variant: str,
                 names: tuple[str, ...], root: Path | None = None) -> dict[str, Any]:
    """Add the files ``names`` of a run installed from the shipped ``profile`` runs (its encoders, a
    slow study's results) to what the repository ships for it, with their sha256 in the manifest.
    Each ``.json`` must record its derivation (``provenance``), which lets a later build tell
    whether it still holds; CheckpointError otherwise."""
    manifest = read_manifest(profile, root)
    key = run_key(dataset, variant)
    if manifest is None or key not in manifest["runs"]:
        raise CheckpointError(f"the {profile} profile ships no {key} run to add results to")
    folder = pretrained_dir(profile, root) / key
    entry = manifest["runs"][key]
    for record in (run_dir / name for name in names if name.endswith(".json")):
        if "derivation" not in json.loads(record.read_text()):  # a .pt ships with its .json
            raise CheckpointError(f"{record} records no derivation; compute it again with "
                                  "this version before shipping it")
    for name in names:
        shutil.copy2(run_dir / name, folder / name)
        entry["files"][name] = sha256_of(folder / name)
    write_text_atomic(pretrained_dir(profile, root) / MANIFEST,
                      json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def ship_current_results(profile: str, datasets: tuple[str, ...] = ("rop", "brats"),
                         root: Path | None = None) -> list[str]:
    """``pggan weights ship-results``: for each dataset's installed shipped run with
    segmentation, ship its encoders and its results (``RESULT_FILES``) when they hold for it
    (``runs.folder.stale_result``); return what was shipped, refuse what no longer holds."""
    from pggan_core.runs.folder import RunSpec, stale_result

    # every record checked before anything is shipped: a refusal leaves the manifest as it was
    to_ship = []
    for dataset in datasets:
        out = RunSpec(dataset, profile).folder(root)
        for kind, names in (("encoder", ENCODER_FILES), ("inversion", INVERSION_FILES),
                            *((RESULT_KINDS[name], (name,)) for name in RESULT_FILES)):
            record = out / names[-1]
            if not record.is_file():
                continue
            derived_from = json.loads(record.read_text()).get("derivation")
            reason = stale_result(out, kind, derived_from)
            if reason is not None:
                raise CheckpointError(f"{record} does not hold for the run in {out}: {reason}")
            if not _already_shipped(out, profile, dataset, kind, names, root):
                to_ship.append((out, dataset, names))
    for out, _, names in to_ship:  # computed against the data the run was trained on?
        prepared = (read_run_info(out).pretrained or {}).get("data_prepared_elsewhere")
        if prepared:
            raise CheckpointError(
                f"{out / names[-1]} was computed here against phantom data not byte for byte "
                f"those the shipped run was trained on (sha256 {prepared['here'][:12]} here, "
                f"{prepared['trained_on'][:12]} there); ship results from a machine that "
                "prepares them alike, or train and export the runs here")
    for out, dataset, names in to_ship:
        ship_results(out, profile, dataset, "seg", names, root)
    return [f"{run_key(dataset, 'seg')}/{name}" for _, dataset, names in to_ship
            for name in names]


def _already_shipped(run: Path, profile: str, dataset: str, kind: str,
                     names: tuple[str, ...], root: Path | None) -> bool:
    """Whether the encoder weights ``names[0]`` in ``run`` are the shipped ones and the record
    ``names[-1]`` shipped beside them still holds: then it stays, not replaced by a copy written
    from the same weights (changed code ships them again: the old record names the old code)."""
    from pggan_core.runs.folder import stale_result

    weights, record = names[0], names[-1]
    if not weights.endswith(".pt"):
        return False
    key = run_key(dataset, "seg")
    entry = ((read_manifest(profile, root) or {}).get("runs") or {}).get(key)
    shipped = (entry or {}).get("files", {}).get(weights)
    if shipped is None or not (run / weights).is_file() or sha256_of(run / weights) != shipped:
        return False
    shipped_record = pretrained_dir(profile, root) / key / record
    return shipped_record.is_file() and stale_result(
        run, kind, json.loads(shipped_record.read_text()).get("derivation")) is None


def save_generator(run_dir: Path, path: Path) -> None:
    """The run's EMA generator and the facts ``checkpoint.load_generator`` returns, alone."""
    state = ckpt.load_latest(run_dir / "checkpoints")
    weights = state["G_ema"] if state["G_ema"] is not None else state["G"]
    slim = {"format": ckpt.GENERATOR_FORMAT, "ema": state["G_ema"] is not None,
            **{k: state[k] for k in ("config", "channels", "step", "resolution", "alpha",
                                     "images_seen", "finished")},
            "G": weights}
    with atomic_file(path) as fh:
        torch.save(slim, fh)


def export_run(run_dir: str | Path, profile: str, dataset: str, variant: str, command: str,
               wall_seconds: float, root: Path | None = None,
               commit: str | None = None) -> dict[str, Any]:
    """Copy a finished run into ``data/pretrained/<profile>`` and record it in the manifest, with
    ``commit`` (default: the checkout's) as the code that trained it; CheckpointError for an
    unfinished run or one of another profile."""
    run_dir = Path(run_dir)
    if not marked_finished(run_dir):
        raise CheckpointError(f"{run_dir} is not a finished run; train it to the end first")
    info = read_run_info(run_dir)
    data = PreparedDataset(info.data_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    if config["profile"] != profile:
        raise CheckpointError(f"{run_dir} was trained with profile {config['profile']!r}, "
                              f"not {profile!r}")
    key = run_key(dataset, variant)
    folder = pretrained_dir(profile, root) / key
    shutil.rmtree(folder, ignore_errors=True)
    final_grid = sorted((run_dir / "samples").glob("*_stable.png"))[-1]
    names = [*RUN_FILES, f"samples/{final_grid.name}",
             *[name for name in (*ENCODER_FILES, *INVERSION_FILES) if (run_dir / name).is_file()]]
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run_dir / name, folder / name)
    save_generator(run_dir, folder / ckpt.GENERATOR_FILE)
    names.append(ckpt.GENERATOR_FILE)
    if data.meta.get("vessel_channel") == "unet":  # the U-Net that drew the run's channel
        ship_vessel_unet(profile, data.meta.get("vessel_model_sha256"), commit, root)
    manifest = read_manifest(profile, root) or {"runs": {}}
    made = _made(commit, root)
    manifest |= {"profile": profile, **made}  # the latest export's
    manifest["runs"][key] = {**made,
        "command": command, "wall_seconds": round(wall_seconds, 1),
        "train_seconds": info.train_seconds, "images_seen": info.images_seen,
        "threads": info.threads, "config": config,
        "data_fingerprint": data.fingerprint(),
        "files": {name: sha256_of(folder / name) for name in sorted(names)},
    }
    write_text_atomic(pretrained_dir(profile, root) / MANIFEST,
                      json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _made(commit: str | None, root: Path | None) -> dict[str, str]:
    """Where and when something shipped was made: commit, machine, torch, date."""
    return {"commit": commit or git_commit(root, dirty=False), "hardware": hardware(),
            "torch": torch.__version__, "created": time.strftime("%Y-%m-%d")}


def ship_vessel_unet(profile: str, sha256: str | None = None, commit: str | None = None,
                     root: Path | None = None) -> None:
    """Ship the profile's vessel U-Net (``paths.vessel_model_path``) and its metrics beside the
    runs; CheckpointError unless it is the one whose ``sha256`` the prepared data records."""
    from pggan_core.segmentation.vessels import metrics_path

    model = vessel_model_path(profile, root)
    if not model.is_file() or (sha256 is not None and sha256_of(model) != sha256):
        raise CheckpointError(f"{model} is missing or is not the U-Net that drew the data's "
                              "vessel channel; prepare the data again with it before exporting")
    folder = pretrained_dir(profile, root) / VESSEL_UNET
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for path in (model, metrics_path(model)):
        shutil.copy2(path, folder / path.name)
    manifest = read_manifest(profile, root) or {"runs": {}}
    saved = torch.load(model, map_location="cpu", weights_only=True)["config"]
    manifest[VESSEL_UNET] = {**_made(commit, root),
                             "config": {k: saved[k] for k in ("vessels", "data")},
                             "files": {p.name: sha256_of(p) for p in sorted(folder.iterdir())}}
    write_text_atomic(pretrained_dir(profile, root) / MANIFEST,
                      json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def train_and_export(profile: str, datasets: tuple[str, ...] = ("rop", "brats"),
                     lanes: int = 2, root: Path | None = None) -> dict[str, Any]:
    """Train every run the book needs with ``pggan train`` (one thread per lane, ``lanes`` at a
    time), the encoders of each run with segmentation (``pggan encode``, ``pggan invert``), and
    export each into the shipped runs with its exact commands. An interrupted training is resumed by
    the same command (``--resume``): the recorded training seconds add up over attempts, the wall
    time is the last attempt's. ``root`` is where the runs are trained and exported (default:
    runs under ``PGGAN_HOME``, exported into the checkout's ``data/pretrained``)."""
    from concurrent.futures import ThreadPoolExecutor

    from pggan_core.data.prepare import ensure_prepared
    from pggan_core.runs.folder import RunSpec

    where = root or home()  # the runs' home; the shipped files go to root or the checkout
    jobs = []
    for dataset in datasets:
        book_run = RunSpec(dataset, profile)
        data = book_run.data_folder(where)
        ensure_prepared(book_run.config(), data, progress=False)
        for with_segmentation in (True, False):
            spec = RunSpec(dataset, profile, with_segmentation)
            out, variant = spec.folder(where), spec.variant
            command = (f"pggan train --data {data.relative_to(where)} --profile {profile} "
                       f"--out {out.relative_to(where)} --threads 1 --resume"
                       + (" --no-segmentation" if variant == "noseg" else
                          f" && pggan encode --run {out.relative_to(where)} --threads 1"
                          f" && pggan invert --run {out.relative_to(where)} --threads 1"))
            jobs.append((dataset, variant, out, command))

    def run(job: tuple[str, str, Path, str]) -> tuple[str, str, Path, str, float]:
        started = time.perf_counter()
        for command in job[3].split(" && "):
            subprocess.run(command.split(), cwd=where, check=True)
        return (*job, time.perf_counter() - started)

    with ThreadPoolExecutor(lanes) as pool:
        done = list(pool.map(run, jobs))
    manifest: dict[str, Any] = {}
    for dataset, variant, out, command, wall in done:
        manifest = export_run(out, profile, dataset, variant, command, wall, root)
    return manifest
