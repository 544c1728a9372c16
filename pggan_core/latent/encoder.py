"""The latent encoder and GAN inversion: images back to latents (Figure 4, and Figure 5's input).

Beers et al. (2018, "Network Architectures") trained "a network for encoding images using the
same network architecture as the discriminator, with the exception of terminating in a
128-vector output with a mean-squared error cost function" on images the trained PGGAN
generates, "in a non-progressive manner for 20,000 iterations under the same training
conditions as the primary PGGAN". Regenerating encoded held-out images gives Figure 4; the
t-SNE of the encoded training set, Figure 5 (``latent.space``). The generator pixel-normalises
z, so an image cannot tell its length: for a 128-vector that costs at most about 0.5/128 of each
dimension's variance (R² up to ~0.996).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import r2_score
from torch import nn

from pggan_core.atomic import atomic_file, write_text_atomic
from pggan_core.data.store import PreparedDataset
from pggan_core.datasets import dataset_spec
from pggan_core.device import pick_device
from pggan_core.errors import RunNotFoundError
from pggan_core.generate import images_from_latents, latent_usage
from pggan_core.latent.probes import draw_latents
from pggan_core.latent.reconstruction import (
    ReconstructionScores,
    coarse_label_maps,
    coarse_label_retrieval,
    fixed_derangement,
)
from pggan_core.precision import autocast, resolve
from pggan_core.progress import Progress
from pggan_core.provenance import code_that_ran, derivation, reusable
from pggan_core.runs.folder import open_run
from pggan_core.settings import Config
from pggan_core.training.architectures import EncoderNet, build_network
from pggan_core.training.checkpoint import load_generator, weights_fingerprint
from pggan_core.viz import plots

LATENTS_FILE = "latents.npz"  # every training image's latent (``save_latents``)
INDOMAIN_LATENTS_FILE = "latents_indomain.npz"  # the same from the in-domain encoder
R2_SAMPLES = 256  # generated images the latent-recovery R² is measured on (never trained on)
R2_SEED = 1_000_003  # their latents come from their own stream, apart from the training draws
INVERSION_SAMPLES = 32  # generated images inverted by optimisation (``inversion_r2``)
INVERSION_STEPS = 300  # Adam steps per latent: enough for R² to level off on the demo's GANs
REDRAW_GAIN = 10.0  # an optimised redraw this much closer to its image than the encoder's: exact
HELD_R2 = 0.6  # R² above which the images are said to hold their latents (the encoder goal)
RECOVERY_IMAGES = 256  # generated images whose regeneration is scored
REFINE_LR = 0.05  # Adam step size for per-image latent refinement
FIGURE4_COLUMNS = 8  # held-out images shown in the Figure 4 grid
BATCH = 64  # images per forward pass when only inferring
REFINE_BATCH = 16  # images per forward and backward pass when refining latents


def train_encoder(G: nn.Module, config: Config, resolution: int, alpha: float = 1.0,
                  iterations: int | None = None, progress: bool = True,
                  after_step: Callable[[int, EncoderNet], None] | None = None
                  ) -> tuple[EncoderNet, list[float]]:
    """Train an encoder (``model.architecture``'s) to map ``G``'s images back to their latents:
    seeds torch with ``train.seed``, then per iteration one Adam step on MSE(E(G(z)), z) for fresh
    z ~ N(0, I) (lr, betas ``config.encoder``; eps the GAN's). ``after_step(i, encoder)`` runs
    after update i (1-based), e.g. to score it (``benchmarks/quality/encoder_sweep.py``), and must
    leave it in train mode. Returns the encoder (eval mode) and every iteration's loss."""
    device = next(G.parameters()).device
    iterations = config.encoder.iterations if iterations is None else iterations
    batch = config.encoder.batch_size
    torch.manual_seed(config.train.seed)
    encoder = build_network("encoder", config.model, G.channels, resolution).to(device)
    opt = torch.optim.Adam(encoder.parameters(), lr=config.encoder.lr,
                           betas=config.encoder.betas, eps=config.train.eps)
    losses = []
    bar = Progress(iterations, "encoder", enabled=progress)
    for step in range(1, iterations + 1):
        z = torch.randn(batch, G.latent_dim, device=device)
        with torch.no_grad():
            images = G(z, resolution, alpha)
        loss = F.mse_loss(encoder(images).float(), z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        bar.update(1, detail=f"MSE {losses[-1]:.3f}")
        if after_step is not None:
            after_step(step, encoder)
    bar.close()
    return encoder.eval().requires_grad_(False), losses


@torch.no_grad()
def encode(encoder: EncoderNet, images: np.ndarray) -> np.ndarray:
    """Latents ``(N, latent_dim)`` float32 for images ``(N, C, R, R)`` in [-1, 1]."""
    device = next(encoder.parameters()).device
    out = [encoder(torch.from_numpy(np.ascontiguousarray(images[i:i + BATCH])).to(device))
           .float().cpu() for i in range(0, len(images), BATCH)]
    return torch.cat(out).numpy() if out else np.zeros((0, encoder.latent_dim), np.float32)


def latent_r2(encoder: EncoderNet, G: nn.Module, resolution: int, alpha: float = 1.0) -> float:
    """R² of predicted vs true latents on ``R2_SAMPLES`` fresh generated images, every dimension
    weighted equally (all have unit variance); 0 is always predicting the mean latent: chance."""
    z = torch.randn(R2_SAMPLES, G.latent_dim, generator=torch.Generator().manual_seed(R2_SEED))
    # a batch at a time: all the images at once would be 1 GB at 512 px
    predicted = np.concatenate([
        encode(encoder, images_from_latents(G, z[i:i + BATCH], resolution, alpha))
        for i in range(0, R2_SAMPLES, BATCH)])
    return float(r2_score(z.numpy(), predicted, multioutput="uniform_average"))


def inversion_r2(G: nn.Module, encoder: EncoderNet, resolution: int, alpha: float = 1.0
                 ) -> dict[str, float]:
    """Is a weak encoder R² the encoder's fault or the generator's? ``INVERSION_SAMPLES``
    generated images inverted by ``INVERSION_STEPS`` of ``refine_latents`` from its guess: if the
    optimised latents match far better (R² near 1, image error ~0), the encoder falls short; if
    the image error falls but R² does not rise, different latents draw the same image and no
    encoder could tell them apart. Both R² values, both pixel errors, ``steps``, ``samples``."""
    n, steps = INVERSION_SAMPLES, INVERSION_STEPS  # read now: a benchmark sets fewer steps
    z = torch.randn(n, G.latent_dim, generator=torch.Generator().manual_seed(R2_SEED + 1))
    images = images_from_latents(G, z, resolution, alpha)
    guessed = encode(encoder, images)
    optimised = refine_latents(G, guessed, images, resolution, alpha, steps)
    truth = z.numpy()
    return {
        "r2_encoder": float(r2_score(truth, guessed, multioutput="uniform_average")),
        "r2_optimised": float(r2_score(truth, optimised, multioutput="uniform_average")),
        "image_mse_encoder": _mean(reconstruction_mse(
            images, images_from_latents(G, guessed, resolution, alpha))),
        "image_mse_optimised": _mean(reconstruction_mse(
            images, images_from_latents(G, optimised, resolution, alpha))),
        "steps": steps, "samples": n,
    }


def refine_latents(G: nn.Module, z: np.ndarray, images: np.ndarray, resolution: int,
                   alpha: float = 1.0, steps: int = 50, lr: float = REFINE_LR,
                   encoder: nn.Module | None = None, domain_weight: float = 0.0) -> np.ndarray:
    """Each latent after ``steps`` Adam steps on the MSE between G(z) and its image, over every
    channel (the vessel tree or tumour labels pull as much as the photograph). With an
    ``encoder`` the loss adds ``domain_weight · |E(G(z)) − z|²``, in-domain inversion's
    regulariser (``latent.indomain``), pulling z towards the encoder's latent for its picture."""
    # REFINE_BATCH at a time bounds memory at 512 px. Chunks change no result: a latent's steps
    # depend on its own image only (element-wise Adam, loss summed, no batch statistics in G).
    if not len(z):
        return z.astype(np.float32)
    return np.concatenate([_refine_chunk(G, z[i:i + REFINE_BATCH], images[i:i + REFINE_BATCH],
                                         resolution, alpha, steps, lr, encoder, domain_weight)
                           for i in range(0, len(z), REFINE_BATCH)])


def _refine_chunk(G: nn.Module, z: np.ndarray, images: np.ndarray, resolution: int,
                  alpha: float, steps: int, lr: float, encoder: nn.Module | None,
                  domain_weight: float) -> np.ndarray:
    device = next(G.parameters()).device
    z = torch.tensor(z, dtype=torch.float32, device=device, requires_grad=True)
    target = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        drawn = G(z, resolution, alpha)
        per_image = F.mse_loss(drawn, target, reduction="none").mean(dim=(1, 2, 3))
        if encoder is not None:
            per_image = per_image + domain_weight * F.mse_loss(
                encoder(drawn).float(), z, reduction="none").mean(dim=1)
        # summed over images so each image's step size does not depend on the batch size
        loss = per_image.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return z.detach().cpu().numpy()


def reconstruction_mse(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Per-image mean squared error over all channels and pixels (values in [-1, 1])."""
    return ((images - reconstructions) ** 2).mean(axis=(1, 2, 3))


def encode_run(run_dir: str | Path, iterations: int | None = None, progress: bool = True,
               reuse: bool = True, precision: str | None = None) -> dict[str, Any]:
    """Train (with ``reuse``, load where ``encoder.json`` records this generator and settings, as
    shipped runs do) a run's encoder in ``precision`` (default ``train.precision``), measure it and
    encode the training images. Writes ``encoder.pt``, ``encoder.json`` (returned), ``latents.npz``
    and ``figures/encoder_reconstructions.{png,npz,json}`` (Figure 4: held-out reals redrawn from
    the encoder's latent and, with ``encoder.refine_steps``, the refined one)."""
    started = time.perf_counter()
    run = open_run(run_dir)
    run_dir, info, config, data = run.path, run.facts, run.config, run.data
    device = pick_device(config.train.device)
    G = run.G.to(device)
    with autocast(precision or config.train.precision, device):
        summary = _encode(run_dir, G, info, data, iterations, progress, reuse)
    summary["precision"] = resolve(precision or config.train.precision, device)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_text_atomic(run_dir / "encoder.json", json.dumps(summary, indent=2))
    return summary


def _encode(run_dir: Path, G: nn.Module, info: dict[str, Any], data: PreparedDataset,
            iterations: int | None, progress: bool, reuse: bool) -> dict[str, Any]:
    """``encode_run``'s work, under its autocast: the summary, without timing."""
    config: Config = info["config"]
    device = next(G.parameters()).device
    resolution, alpha = int(info["resolution"]), float(info["alpha"])
    n_channels = len(info["channels"])
    settings = {**dataclasses.asdict(config.encoder), "generator_step": int(info["step"])}
    if iterations is not None:
        settings["iterations"] = iterations
    sha = weights_fingerprint(G)
    previous = (reusable(run_dir / "encoder.json", run_dir / "encoder.pt", settings, "encoder",
                         sha, config) if reuse else None)
    with code_that_ran() as ran:
        if previous is not None:
            encoder, losses = load_encoder(run_dir, device), previous["losses"]
        else:
            encoder, losses = train_encoder(G, config, resolution, alpha, iterations, progress)
            with atomic_file(run_dir / "encoder.pt") as fh:
                torch.save(encoder.state_dict(), fh)
        r2 = latent_r2(encoder, G, resolution, alpha)
        inversion = inversion_r2(G, encoder, resolution, alpha)

        # Figure 4 over every held-out image, a batch at a time: bounded memory at 512 px
        heldout = data.split_indices("heldout")
        heldout_view = data.view(heldout, resolution, n_channels)
        steps = config.encoder.refine_steps
        spec = dataset_spec(config.data.dataset)
        label, n_image = spec.latent_label, spec.image_channels
        classes = (data.manifest[label.column].to_numpy()[heldout]
                   if label is not None and label.column in data.manifest else
                   np.zeros(len(heldout)))
        scores = ReconstructionScores(heldout_view, config.data)
        errors: dict[str, list[np.ndarray]] = {"encoder": [], "refined": []}
        coarse: dict[str, list[np.ndarray]] = {"inputs": [], "encoder": [], "refined": []}
        for start in range(0, len(heldout), BATCH):
            reals = heldout_view[start:start + BATCH]
            z_encoded = encode(encoder, reals)
            drawn = {"encoder": images_from_latents(G, z_encoded, resolution, alpha)}
            if steps > 0:
                refined = refine_latents(G, z_encoded, reals, resolution, alpha, steps)
                drawn["refined"] = images_from_latents(G, refined, resolution, alpha)
            coarse["inputs"].append(coarse_label_maps(reals, n_image))
            for name, images in drawn.items():
                errors[name].append(reconstruction_mse(reals, images))
                scores.add(name, start, images)
                coarse[name].append(coarse_label_maps(images, n_image))
            if start == 0:
                _save_figure4(run_dir, config, reals, drawn, heldout)
        mse = {name: _mean(np.concatenate(values)) if values else None
               for name, values in errors.items()}
        maps = {name: np.concatenate(values) for name, values in coarse.items() if values}
        layout = {name: coarse_label_retrieval(maps["inputs"], maps[name], classes)
                  for name in ("encoder", "refined") if name in maps}

        train_idx = data.split_indices("train")
        train_latents = encode(encoder, data.view(train_idx, resolution, n_channels))
        save_latents(run_dir / LATENTS_FILE, train_latents, data.manifest.iloc[train_idx])

        summary = {
            "r2": r2, "r2_multioutput": "uniform_average", "r2_samples": R2_SAMPLES,
            # z recovered by optimisation from the encoder's guess: how much of z the images hold
            "r2_optimised": inversion["r2_optimised"], "inversion": inversion,
            "settings": settings, "reused": previous is not None,
            "iterations": settings["iterations"], "batch_size": config.encoder.batch_size,
            "lr": config.encoder.lr, "loss_first": losses[0] if losses else None,
            "loss_last": float(np.mean(losses[-10:])) if losses else None,
            "losses": thin(losses, 200),
            "heldout_images": len(heldout),
            "heldout_mse_encoder": mse["encoder"],
            "refine_steps": steps if mse["refined"] is not None else 0,
            "heldout_mse_refined": mse["refined"],
            # does a regeneration resemble its own input more than the others? (reconstruction.py)
            **scores.summary(),
            # the paper's words, "approximate the global vessel structure", at the layout's scale
            "coarse_label_retrieval": layout,
            "generated_recovery": generated_recovery(G, encoder, resolution, alpha),
            # how many directions of z move the generator's image: what any encoder can recover
            "latent_spectrum": latent_usage(G, resolution, alpha),
            "train_images_encoded": len(train_latents), "resolution": resolution, "alpha": alpha,
            "generator_step": int(info["step"]), "generator_ema": bool(info["ema"]),
            "channels": list(info["channels"]), "device": str(device),
        }
    # the code that trained reused weights is part of what they derive from
    trained_by = previous["derivation"]["code"] if previous is not None else {}
    summary["derivation"] = derivation("encoder", sha, config, ran | set(trained_by))
    return summary


def generated_recovery(G: nn.Module, encoder: EncoderNet, resolution: int, alpha: float
                       ) -> dict[str, Any]:
    """How much of a generated image its encoding redraws: 1 - MSE(G(E(G(z))), G(z)) / MSE of
    random pairs (1: exactly; 0: no closer than another image), ``RECOVERY_IMAGES`` images of seed
    0. The encoder's training distribution, so a ceiling for real images; unlike R² on z it
    ignores directions of z the generator barely uses."""
    n, seed = RECOVERY_IMAGES, 0
    z = draw_latents(n, G.latent_dim, seed)
    images = np.clip(images_from_latents(G, z, resolution, alpha), -1.0, 1.0)
    redrawn = np.clip(images_from_latents(G, encode(encoder, images), resolution, alpha),
                      -1.0, 1.0)
    own = float(((redrawn - images) ** 2).mean())
    pairs = float(((images - images[fixed_derangement(n, seed)]) ** 2).mean())
    return {"recovery": 1.0 - own / pairs, "mse": own, "mse_random_pairs": pairs, "n": n,
            "seed": seed}


def load_encoder(run_dir: str | Path, map_location: str | torch.device = "cpu") -> EncoderNet:
    """The run's encoder (``weights_only``: the file runs no code); RunNotFoundError if absent."""
    run_dir = Path(run_dir)
    path = run_dir / "encoder.pt"
    if not path.is_file():
        raise RunNotFoundError(f"{path} is missing: run `pggan encode --run {run_dir}` or "
                               "notebooks/06_encoder.md first")
    _, info = load_generator(run_dir, map_location=map_location)
    encoder = build_network("encoder", info["config"].model, len(info["channels"]),
                            int(info["resolution"]))
    encoder.load_state_dict(torch.load(path, map_location=map_location, weights_only=True))
    return encoder.eval().requires_grad_(False)


def save_latents(path: str | Path, latents: np.ndarray, manifest: pd.DataFrame) -> None:
    """Write ``latents.npz`` atomically: ``latents`` (N, D), ``index`` (manifest row) and each
    manifest column as ``label_<column>`` (strings as unicode, no pickles)."""
    arrays = {"latents": latents.astype(np.float32),
              "index": manifest["index"].to_numpy() if "index" in manifest else
              manifest.index.to_numpy()}
    for column in manifest.columns.drop("index", errors="ignore"):
        values = manifest[column].to_numpy()
        arrays[f"label_{column}"] = values.astype(str) if values.dtype == object else values
    with atomic_file(path) as fh:
        np.savez(fh, **arrays)


def load_latents(run_dir: str | Path, name: str = LATENTS_FILE
                 ) -> tuple[np.ndarray, pd.DataFrame]:
    """A run's ``latents.npz`` (or ``INDOMAIN_LATENTS_FILE``) as (latents (N, D), labels with an
    ``index`` column); RunNotFoundError if absent."""
    path = Path(run_dir) / name
    if not path.is_file():
        command = "pggan invert" if name == INDOMAIN_LATENTS_FILE else "pggan encode"
        raise RunNotFoundError(f"{path} is missing: run `{command} --run {run_dir}` or "
                               "notebooks/06_encoder.md first")
    with np.load(path, allow_pickle=False) as npz:
        labels = pd.DataFrame({"index": npz["index"],
                               **{k[len("label_"):]: npz[k] for k in npz.files
                                  if k.startswith("label_")}})
        return npz["latents"], labels


def _save_figure4(run_dir: Path, config: Config, reals: np.ndarray,
                  drawn: dict[str, np.ndarray], heldout: np.ndarray) -> None:
    """Figure 4's grid (reals, from the encoder[, refined]) and its arrays for notebooks."""
    shown = slice(0, FIGURE4_COLUMNS)
    rows = [reals[shown], *(images[shown] for images in drawn.values())]
    grid = plots.sample_grid(np.concatenate(rows), config.data.dataset, ncols=len(rows[0]),
                             size=max(64, reals.shape[-1]))
    plots.save_figure(grid, run_dir, "encoder_reconstructions", config.profile,
                      config.train.seed, config.data.dataset)
    refined = drawn["refined"][shown] if "refined" in drawn else np.zeros((0,), np.float32)
    with atomic_file(run_dir / "figures" / "encoder_reconstructions.npz") as fh:
        np.savez_compressed(fh, reals=reals[shown], from_encoder=drawn["encoder"][shown],
                            from_refined=refined, manifest_index=heldout[shown])


def thin(values: list[float], keep: int) -> list[float]:
    """At most ``keep`` evenly spaced values (a loss curve for a JSON file, not a log)."""
    if len(values) <= keep:
        return [float(v) for v in values]
    return [float(values[i]) for i in np.linspace(0, len(values) - 1, keep).astype(int)]


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None
