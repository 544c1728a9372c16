"""Shipped runs: generators trained longer than a book build can afford, verified before use.

The ``demo`` profile's four GANs (two datasets, with and without segmentation channels) take over an
hour on two CPU cores (each run's minutes are in the manifest), not the minutes a book build has.
So the repository ships each run's EMA generator and training logs as ``pggan train`` wrote them,
with a manifest saying how each was made (commit, machine, date, command, wall time, images seen,
resolved config) and every file's SHA-256::

    data/pretrained/<profile>/
      manifest.json
      vessel_unet/             the U-Net that drew the fundus runs' vessel channel
      <dataset>-<variant>/     generator.pt (EMA weights only; read with weights_only=True),
                               RUN_FILES and the final sample grid; where encoded, ENCODER_FILES
                               and INVERSION_FILES; the RESULT_FILES ``ship_results`` added

``install_run`` checks the manifest against the profile as it is now and every file against its
hash, then copies the run into the usual folder, where every later step reads it like a run
trained here. What does not match is refused with the command that rebuilds it; nothing is
downloaded. ``export_run`` is the other end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from pggan_core.atomic import atomic_file, write_text_atomic
from pggan_core.config import config_from_dict, differing_keys, same_config
from pggan_core.data.store import PreparedDataset, sha256_of
from pggan_core.errors import CheckpointError, PgganError
from pggan_core.paths import home, repo_root, vessel_model_path
from pggan_core.provenance import git_commit, hardware
from pggan_core.runs.folder import marked_finished
from pggan_core.settings import Config
from pggan_core.training import checkpoint as ckpt
from pggan_core.training.run_info import RUN_INFO_FILE, read_run_info, write_run_info

MANIFEST = "manifest.json"
# what a shipped run carries besides its generator (the final sample grid is added by name)
RUN_FILES = ("config.yaml", RUN_INFO_FILE, "metrics.jsonl", "phase_metrics.jsonl",
             "figures/progression.npz", "figures/progression.png")
ENCODER_FILES = ("encoder.pt", "encoder.json")  # shipped too when the run was encoded
INVERSION_FILES = ("indomain_encoder.pt", "inversion.json")  # and its in-domain encoder
# results shipped beside their run (the evaluation and Figure 3's comparison take minutes the book's
# budget cannot spare, the studies hours); each records its derivation, checked before use
RESULT_FILES = ("metrics.json", "ablation.json", "augmentation.json", "ablation_seeds.json")
RESULT_KINDS = {"metrics.json": "metrics", "ablation.json": "ablation",
                "augmentation.json": "augmentation", "ablation_seeds.json": "ablation"}
VESSEL_UNET = "vessel_unet"  # the manifest's key and the folder of the shipped vessel U-Net


def pretrained_dir(profile: str, root: Path | None = None) -> Path:
    """Where the shipped runs of ``profile`` live: ``data/pretrained/<profile>`` of the
    checkout (``PGGAN_HOME`` moves runs, not what the repository ships)."""
    return (root or repo_root()) / "data" / "pretrained" / profile


def read_manifest(profile: str, root: Path | None = None) -> dict[str, Any] | None:
    """The profile's manifest, or None when it ships no runs."""
    path = pretrained_dir(profile, root) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err}); restore it with `git checkout "
                              f"{path}`") from err


def run_key(dataset: str, variant: str) -> str:
    """A shipped run's name in the manifest and its folder: ``<dataset>-<variant>``."""
    return f"{dataset}-{variant}"


def ships(profile: str, dataset: str, variant: str, config: Config,
          root: Path | None = None) -> bool:
    """Whether ``profile`` ships this run, trained with exactly ``config``."""
    manifest = read_manifest(profile, root)
    entry = (manifest or {"runs": {}})["runs"].get(run_key(dataset, variant))
    return entry is not None and same_config(entry["config"], config)


def install_run(profile: str, dataset: str, variant: str, config: Config, out: Path,
                data: PreparedDataset, root: Path | None = None) -> Path:
    """Verify the shipped run and copy it into the run folder ``out`` (staged beside it, then
    renamed); return ``out``. Refused (CheckpointError naming the file and the fix) when the
    manifest's config is not ``config`` (the profile changed since), the prepared dataset ``data``
    is not the one it was trained on (its fingerprint) or a file's hash differs. The installed
    ``run.json`` points at ``data`` and says where the run came from."""
    manifest = read_manifest(profile, root)
    key = run_key(dataset, variant)
    if manifest is None or key not in manifest["runs"]:
        raise CheckpointError(f"the {profile} profile ships no {key} run; train it with "
                              f"`pggan book --profile {profile} --train`")
    entry = manifest["runs"][key]
    folder = pretrained_dir(profile, root) / key
    shipped_config = config_from_dict(entry["config"]).run_dict()  # JSON made int keys strings
    if shipped_config != config.run_dict():
        changed = differing_keys(shipped_config, config.run_dict())
        raise CheckpointError(
            f"{folder}: the shipped {key} run was trained with another {profile} profile "
            f"(differs in {', '.join(changed)}); build with "
            f"`pggan book --profile {profile} --train`, or ship runs of the profile as it is "
            f"with `pggan weights train-and-export --profile {profile}`")
    other_bytes = _phantom_prepared_elsewhere(data, entry, folder, key, profile)
    for name, digest in entry["files"].items():
        path = folder / name
        if not path.is_file() or sha256_of(path) != digest:
            raise CheckpointError(
                f"{path} is missing or does not match its sha256 in {MANIFEST}; restore it with "
                f"`git checkout {folder}`, or build with `pggan book --profile {profile} --train`")
    staging = out.with_name(f".{out.name}.installing")
    shutil.rmtree(staging, ignore_errors=True)
    for name in entry["files"]:
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / name, staging / name)
    info = read_run_info(staging)
    info.data_dir = str(data.path)
    info.data = data.data_record()  # the data verified above (or the same recipe's, noted)
    # each run's own commit, machine and date (a re-export of some runs leaves the others'), else
    # the manifest's (entries that lack them)
    info.pretrained = {k: entry.get(k, manifest.get(k))
                       for k in ("profile", "commit", "hardware", "created")}
    info.pretrained |= {"command": entry["command"], "wall_seconds": entry["wall_seconds"],
                        "verified": "sha256 of every file against " + MANIFEST,
                        "files": entry["files"]}
    if other_bytes:
        info.pretrained["data_prepared_elsewhere"] = other_bytes
    write_run_info(staging, info)
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(out)
    return out


def _phantom_prepared_elsewhere(data: PreparedDataset, entry: dict[str, Any], folder: Path,
                                key: str, profile: str) -> dict[str, str] | None:
    """None when ``data`` is byte for byte what the shipped run trained on (its fingerprint).

    Otherwise the same phantom recipe (the profile's data settings, checked with the config, and
    the preprocessing version) may still have been prepared here along other floating-point
    paths: OpenCV and NumPy pick SIMD kernels by CPU (AVX-512 or not) and library releases
    differ, and a last-bit difference can move a pixel across a rounding or threshold. Such
    data are accepted, and the fingerprints returned for the run's note; real data, or another
    preprocessing version, are refused (CheckpointError)."""
    here = data.fingerprint()
    if here == entry["data_fingerprint"]:
        return None
    trained = (json.loads((folder / RUN_INFO_FILE).read_text()).get("data") or {}) \
        if (folder / RUN_INFO_FILE).is_file() else {}
    version = data.meta.get("preprocessing_version")
    if data.meta.get("source", "phantom") != "phantom" or \
            trained.get("preprocessing_version", version) != version:
        raise CheckpointError(
            f"{data.path} is not the dataset the shipped {key} run was trained on (its "
            "fingerprint differs: the phantom or the preprocessing changed); build with "
            f"`pggan book --profile {profile} --train`")
    print(f"note: {data.path} holds the phantom data the shipped {key} run was trained on, "
          "prepared from the same settings but not byte for byte alike (this machine's "
          "floating-point paths or library releases differ); the run is installed and its "
          "note says so")
    return {"trained_on": entry["data_fingerprint"], "here": here}


def installed_problem(out: Path, profile: str, dataset: str, variant: str,
                      root: Path | None = None) -> str | None:
    """Why the shipped run installed in ``out`` is no longer what the repository ships, or None when
    it still is (or ``out`` is no installed shipped run): its manifest entry must be the one it was
    installed from, and its own files (not the encoders or results, which later steps may rewrite
    and which carry their own derivation) must still match their sha256."""
    try:
        info = read_run_info(out)
    except PgganError:
        return None
    if not info.pretrained:
        return None
    installed = info.pretrained.get("files")
    entry = ((read_manifest(profile, root) or {}).get("runs") or {}).get(run_key(dataset, variant))
    if entry is None:
        return f"the {profile} profile no longer ships {run_key(dataset, variant)}"
    if installed != entry["files"]:
        return f"the shipped {run_key(dataset, variant)} run changed since it was installed"
    for name, digest in entry["files"].items():
        if name == RUN_INFO_FILE or name in (*ENCODER_FILES, *INVERSION_FILES, *RESULT_FILES):
            continue
        if not (out / name).is_file() or sha256_of(out / name) != digest:
            return f"{out / name} no longer matches its sha256 in {MANIFEST}"
    return None


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


NOTE_WIDTH = 76  # what a code cell's output in the book shows without scrolling


def pretrained_note(run_dir: Path) -> str | None:
    """A few lines for a page showing a shipped run ("weights shipped, trained by ..."), wrapped to
    a code cell's output width, or None for a run trained here."""
    try:
        shipped = read_run_info(run_dir).pretrained
    except PgganError:
        return None
    if not shipped:
        return None
    minutes = shipped["wall_seconds"] / 60
    return textwrap.fill(
        f"weights shipped with the repository (data/pretrained/{shipped['profile']}), "
        f"trained by `{shipped['command']}` in {minutes:.0f} min on {shipped['hardware']} "
        f"at commit {shipped['commit']}; verified by sha256. `pggan book --train` trains "
        "them here instead." + _elsewhere_text(shipped.get("data_prepared_elsewhere")),
        NOTE_WIDTH, break_long_words=False, break_on_hyphens=False)


def _elsewhere_text(prepared: dict[str, str] | None) -> str:
    if not prepared:
        return ""
    return (" This machine prepared the phantom data from the same settings, but not byte for "
            f"byte as the training machine did (sha256 {prepared['here'][:12]} here, "
            f"{prepared['trained_on'][:12]} there: CPU code paths or library releases differ), "
            "so numbers computed here against them can differ slightly from the shipped ones.")


# ---------------------------------------------- the other end: a finished run -> shipped files


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


def install_vessel_unet(profile: str, config: Config, root: Path | None = None) -> bool:
    """Install the vessel U-Net ``profile`` ships where ``pggan vessels train`` would write it, when
    none is there and it was trained with ``config``'s settings; whether it did. The shipped fundus
    runs learnt its map of each photograph as their vessel channel: one trained here on another CPU
    (other kernels, other rounding) would draw a slightly different channel, the prepared data would
    get another fingerprint and the shipped runs would be refused. So, like the paper's pre-trained
    U-Net, it is shipped."""
    from pggan_core.segmentation.vessels import unet_settings

    entry = (read_manifest(profile, root) or {}).get(VESSEL_UNET)
    target = vessel_model_path(profile)
    wanted = json.loads(json.dumps(unet_settings(config)))
    if entry is None or target.is_file() or entry["config"] != wanted:
        return False
    folder = pretrained_dir(profile, root) / VESSEL_UNET
    for name, digest in entry["files"].items():
        if not (folder / name).is_file() or sha256_of(folder / name) != digest:
            raise CheckpointError(f"{folder / name} is missing or does not match its sha256 in "
                                  f"{MANIFEST}; restore it with `git checkout {folder}`")
    target.parent.mkdir(parents=True, exist_ok=True)
    for name in sorted(entry["files"], key=lambda n: n.endswith(".pt")):  # the model last
        with atomic_file(target.parent / name) as fh:
            fh.write((folder / name).read_bytes())
    return True


def train_and_export(profile: str, datasets: tuple[str, ...] = ("rop", "brats"),
                     lanes: int = 2, root: Path | None = None) -> dict[str, Any]:
    """Train every run the book needs with ``pggan train`` (one thread per lane, ``lanes`` at a
    time), the encoders of each run with segmentation (``pggan encode``, ``pggan invert``), and
    export each into the shipped runs with its exact commands. An interrupted training is resumed by
    the same command (``--resume``): the recorded training seconds add up over attempts, the wall
    time is the last attempt's."""
    from concurrent.futures import ThreadPoolExecutor

    from pggan_core.data.prepare import ensure_prepared
    from pggan_core.runs.folder import RunSpec

    root = root or home()
    jobs = []
    for dataset in datasets:
        book_run = RunSpec(dataset, profile)
        data = book_run.data_folder(root)
        ensure_prepared(book_run.config(), data, progress=False)
        for with_segmentation in (True, False):
            spec = RunSpec(dataset, profile, with_segmentation)
            out, variant = spec.folder(root), spec.variant
            command = (f"pggan train --data {data.relative_to(root)} --profile {profile} "
                       f"--out {out.relative_to(root)} --threads 1 --resume"
                       + (" --no-segmentation" if variant == "noseg" else
                          f" && pggan encode --run {out.relative_to(root)} --threads 1"
                          f" && pggan invert --run {out.relative_to(root)} --threads 1"))
            jobs.append((dataset, variant, out, command))

    def run(job: tuple[str, str, Path, str]) -> tuple[str, str, Path, str, float]:
        started = time.perf_counter()
        for command in job[3].split(" && "):
            subprocess.run(command.split(), cwd=root, check=True)
        return (*job, time.perf_counter() - started)

    with ThreadPoolExecutor(lanes) as pool:
        done = list(pool.map(run, jobs))
    manifest: dict[str, Any] = {}
    for dataset, variant, out, command, wall in done:
        manifest = export_run(out, profile, dataset, variant, command, wall, root)
    return manifest
