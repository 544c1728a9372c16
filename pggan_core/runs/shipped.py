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
                               and INVERSION_FILES; the RESULT_FILES shipped with them

``install_run`` checks the manifest against the profile as it is now and every file against its
hash, then copies the run into the usual folder, where every later step reads it like a run
trained here. What does not match is refused with the command that rebuilds it; nothing is
downloaded. ``pggan_book.shipping`` is the other end (``pggan weights``).
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

from pggan_core.atomic import atomic_file
from pggan_core.config import config_from_dict, differing_keys, same_config
from pggan_core.data.store import PreparedDataset, sha256_of
from pggan_core.errors import CheckpointError, PgganError
from pggan_core.paths import repo_root, vessel_model_path
from pggan_core.settings import Config
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
    trained = (read_run_info(folder).data or {}) if (folder / RUN_INFO_FILE).is_file() else {}
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
