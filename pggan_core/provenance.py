"""Where a result came from: profile, seed, git commit and build time.

Every page, figure and shipped run carries these facts, so a number can be traced to the code
that made it.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

from pggan_core.config import differing_keys
from pggan_core.paths import checkout_root


def provenance(profile: str, seed: int, root: Path | None = None) -> dict[str, str]:
    """Profile, seed, git commit (with ``+dirty`` for local changes) and UTC build time."""
    root = root or checkout_root()
    try:
        commit = _git(root, "rev-parse", "--short", "HEAD")
        if _git(root, "status", "--porcelain", "--untracked-files=no"):
            commit += "+dirty"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    built = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {"profile": profile, "seed": str(seed), "commit": commit, "built": built}


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


# ---------------------------------------------------------------------------------------------
# Derived results: what a number in a run folder was computed from, and whether it still holds
#
# A run folder gains results computed from its generator (metrics.json, encoder.pt/.json,
# latent_space.json, ablation.json, augmentation.json). Each records a *derivation*: the
# generator's weights (SHA-256 of its tensors), the source of the code that computed it, and the
# config sections it read. A result whose derivation differs from the run as it is now is
# recomputed by whoever needs it, or refused with the command that writes it again; a file's
# modification time says nothing (a copied or touched file is newer than anything).

# What each kind of result is computed by ("module" = the whole file, "module:name" = that
# function or class alone, so an unrelated edit elsewhere in the module keeps it valid) and
# which config sections it reads.
DERIVED_RESULTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "metrics": (("pggan_core.evaluation.evaluate", "pggan_core.measures.swd",
                 "pggan_core.measures.ms_ssim", "pggan_core.measures.neighbours",
                 "pggan_core.measures.memorisation",
                 "pggan_core.measures.domain_stats", "pggan_core.evaluation.vessel_agreement",
                 "pggan_core.generate", "pggan_core.segmentation.vessels"),
                ("data", "vessels", "eval")),
    "encoder": (("pggan_core.latent.encoder:train_encoder", "pggan_core.training.networks",
                 "pggan_core.training.architectures"),
                ("model", "encoder")),
    # the paper's encoder it starts from is an input (encoder.pt, by SHA-256)
    "inversion": ((*(f"pggan_core.latent.indomain:{name}" for name in (
                       "train_indomain_encoder", "invert_run")),
                   *(f"pggan_core.latent.encoder:{name}" for name in (
                       "encode", "refine_latents", "_refine_chunk")),
                   "pggan_core.training.networks",
                   "pggan_core.training.architectures"),
                  ("model", "inversion")),
    "latent_space": (("pggan_core.latent.space", "pggan_core.latent.probes",
                      "pggan_core.latent.attributes", "pggan_core.measures.global_structure"),
                     ("eval",)),
    "ablation": (("pggan_core.evaluation.ablation", "pggan_core.measures.domain_stats",
                  "pggan_core.measures.global_structure", "pggan_core.measures.swd",
                  "pggan_core.segmentation.vessels"),
                 ("data", "vessels", "eval")),
    # the study's computing functions, not the wrapper that reads and writes its file
    "augmentation": (("pggan_core.augmentation.classic", "pggan_core.segmentation.pairs",
                      "pggan_core.segmentation.segmenters", "pggan_core.segmentation.tasks",
                      *(f"pggan_core.augmentation.study:{name}" for name in (
                          "study_jobs", "chosen_items", "training_pairs", "run_job",
                          "study_data", "real_pairs", "synthetic_pairs", "_whole_items",
                          "_items", "summarise", "claim_values")),
                      "pggan_core.segmentation.vessels:VesselUNet"),
                     # its augment settings are its own (``--set augment.KEY=V``), recorded
                     # and shown with it, not a property of the run it reads
                     ("data", "vessels")),
}


# Code added from outside the lists above (a metric registered by a user,
# ``evaluation.registry.register_metric``): {kind: {name: its source at registration}}. It
# joins its kind's derivation, so a result is computed again when that code changes.
_ADDED_CODE: dict[str, dict[str, str]] = {}


def add_code(kind: str, name: str, source: str) -> None:
    """Make the code ``name`` ("package.module:object"), whose text is ``source``, part of every
    ``kind`` derivation, unless its module is already listed whole."""
    module_name = name.partition(":")[0]
    if module_name in DERIVED_RESULTS[kind][0] or name in DERIVED_RESULTS[kind][0]:
        return
    _ADDED_CODE.setdefault(kind, {})[name] = source


def code_sha256(names: tuple[str, ...]) -> str:
    """A SHA-256 of the source of ``names`` ("package.module" or "package.module:object")."""
    import hashlib
    import importlib
    import inspect

    digest = hashlib.sha256()
    for name in names:
        module_name, _, attribute = name.partition(":")
        module = importlib.import_module(module_name)
        source = inspect.getsource(getattr(module, attribute) if attribute else module)
        digest.update(name.encode() + b"\0" + source.encode() + b"\0")
    return digest.hexdigest()


def _sections(config: Any, sections: tuple[str, ...]) -> dict[str, Any]:
    """The config ``sections`` as plain JSON values (per-resolution keys as strings)."""
    import json

    return json.loads(json.dumps({s: config.to_dict()[s] for s in sections}, sort_keys=True))


def derivation(kind: str, generator_sha256: str, config: Any,
               inputs: dict[str, str] | None = None) -> dict[str, Any]:
    """What a ``kind`` result (a key of ``DERIVED_RESULTS``) computed now from the generator
    with ``generator_sha256`` under ``config`` is derived from: store it in the result.
    ``inputs`` names other files of the run folder it read, with their SHA-256 (the latents
    the latent-space scores are computed from, say)."""
    import hashlib

    from pggan_core import __version__

    code, sections = DERIVED_RESULTS[kind]
    digest, added = code_sha256(code), _ADDED_CODE.get(kind, {})
    if added:  # without added code the digest is what it always was: saved results hold
        digest = hashlib.sha256("\0".join([digest, *(f"{name}\0{source}" for name, source
                                                     in sorted(added.items()))]).encode()
                                ).hexdigest()
    return {"kind": kind, "generator_sha256": generator_sha256,
            "code": [*code, *sorted(added)], "code_sha256": digest,
            "package_version": __version__, "config": _sections(config, sections),
            "inputs": dict(inputs or {})}


def stale_reason(saved: dict[str, Any] | None, kind: str, generator_sha256: str,
                 config: Any, inputs: dict[str, str] | None = None) -> str | None:
    """Why a result recording ``saved`` (its ``derivation``) does not hold for the generator,
    config and ``inputs`` now, or None when it does. A result that records no derivation is
    stale."""
    return derivation_differs(saved, derivation(kind, generator_sha256, config, inputs))


def derivation_differs(saved: dict[str, Any] | None, now: dict[str, Any]) -> str | None:
    """Why the derivation ``saved`` is not ``now``, in words, or None when they agree."""
    if not saved:
        return "it records no derivation (written before results recorded one)"
    if saved.get("generator_sha256") != now["generator_sha256"]:
        return "the run's generator weights differ from those it was computed from"
    if saved.get("code_sha256") != now["code_sha256"]:
        return f"the code that computes it changed ({', '.join(now['code'])})"
    changed = differing_keys(saved.get("config", {}), now["config"])
    if changed:
        return f"the configuration differs in {', '.join(changed)}"
    other = sorted(name for name, digest in now["inputs"].items()
                   if (saved.get("inputs") or {}).get(name) != digest)
    if other:
        return f"{', '.join(other)} changed since"
    return None
