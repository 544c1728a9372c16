"""In-domain inversion: an encoder that also learns to reconstruct real images (Figures 4-5).

The paper's encoder (``latent.encoder``) learns ``E(G(z)) ≈ z`` on generated images and meets
real photographs first in Figure 4. The field has since trained the encoder on real images too,
so that ``G(E(x))`` reconstructs ``x``, and refined each latent with the encoder as a regulariser
that keeps it where the generator was trained (Zhu et al. 2020, "In-Domain GAN Inversion for Real
Image Editing", ECCV; arXiv:2004.00049). A run folder has no critic or perceptual network, so two
of their three losses remain (held-out images, which Figure 4 reconstructs, are never trained on):

* **training** (``train_indomain_encoder``): pixel error of ``G(E(x))`` on real *training* images
  plus ``latent_weight`` times the paper's ``|E(G(z)) − z|²``, which keeps the encoder an inverse
  of the generator (Zhu et al. use an adversarial loss on ``G(E(x))`` for that role);
* **refinement** (``encoder.refine_latents`` given the encoder): from ``z = E(x)``, Adam steps on
  ``|G(z) − x|² + domain_weight · |E(G(z)) − z|²``, the second term pulling z back from unlikely
  latents to ones the encoder would give the picture it draws.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pggan_core.atomic import atomic_file, write_text_atomic
from pggan_core.config import with_current_study_settings
from pggan_core.data.store import PreparedDataset, sha256_of
from pggan_core.device import pick_device
from pggan_core.generate import images_from_latents
from pggan_core.latent.encoder import (
    BATCH,
    FIGURE4_COLUMNS,
    INDOMAIN_LATENTS_FILE,
    encode,
    latent_r2,
    load_encoder,
    reconstruction_mse,
    refine_latents,
    save_latents,
    thin,
)
from pggan_core.latent.reconstruction import ReconstructionScores
from pggan_core.progress import Progress
from pggan_core.provenance import code_that_ran, derivation, reusable
from pggan_core.runs.folder import require_generator, run_data_dir
from pggan_core.settings import Config, InversionConfig
from pggan_core.training.architectures import EncoderNet, build_network
from pggan_core.training.checkpoint import load_generator, weights_fingerprint

INVERSION_FILE = "inversion.json"
WEIGHTS_FILE = "indomain_encoder.pt"
VARIANTS = ("indomain", "indomain_refined")  # Figure 4's two new rows, as in inversion.json


def train_indomain_encoder(G: nn.Module, start: EncoderNet, images: Any, config: Config,
                           resolution: int, alpha: float = 1.0, progress: bool = True
                           ) -> tuple[EncoderNet, dict[str, list[float]]]:
    """Fine-tune a copy of ``start`` (the paper's encoder) on real ``images`` (N, C, R, R) in
    [-1, 1] (array or ``PreparedDataset.view``) by the module's training loss, one Adam step per
    ``inversion.batch_size`` images (drawn with ``train.seed``); freezes ``G``. Returns the encoder
    (eval mode) and both losses per iteration."""
    inv: InversionConfig = config.inversion
    device = next(G.parameters()).device
    G.requires_grad_(False)
    encoder = copy.deepcopy(start).to(device).train().requires_grad_(True)
    opt = torch.optim.Adam(encoder.parameters(), lr=inv.lr, betas=inv.betas,
                           eps=config.train.eps)
    rng = np.random.default_rng(config.train.seed)
    z_stream = torch.Generator(device="cpu").manual_seed(config.train.seed)
    losses: dict[str, list[float]] = {"reconstruction": [], "latent": []}
    bar = Progress(inv.iterations, "in-domain encoder", enabled=progress)
    for _ in range(inv.iterations):
        picked = np.sort(rng.choice(len(images), min(inv.batch_size, len(images)),
                                    replace=False))
        x = torch.from_numpy(np.ascontiguousarray(images[picked])).to(device)
        reconstruction = F.mse_loss(G(encoder(x), resolution, alpha).float(), x)
        z = torch.randn(inv.batch_size, G.latent_dim, generator=z_stream).to(device)
        with torch.no_grad():
            generated = G(z, resolution, alpha)
        latent = F.mse_loss(encoder(generated).float(), z)
        loss = reconstruction + inv.latent_weight * latent
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses["reconstruction"].append(reconstruction.item())
        losses["latent"].append(latent.item())
        bar.update(1, detail=f"pixels {losses['reconstruction'][-1]:.4f} "
                             f"latent {losses['latent'][-1]:.3f}")
    bar.close()
    return encoder.eval().requires_grad_(False), losses


def invert_run(run_dir: str | Path, progress: bool = True, reuse: bool = True
               ) -> dict[str, Any]:
    """Train (with ``reuse``, load where ``inversion.json`` records the same derivation and
    settings) the in-domain encoder of a run with a paper encoder, by the profile's current
    ``inversion`` settings (``config.with_current_study_settings``); measure it as ``encode_run``
    does, from its latent (``indomain``) and after regularised refinement (``indomain_refined``).
    Writes ``indomain_encoder.pt``, ``latents_indomain.npz``, ``inversion.json`` (returned) and
    ``figures/indomain_reconstructions.npz``."""
    run_dir = require_generator(run_dir)
    started = time.perf_counter()
    G, info = load_generator(run_dir)
    config: Config = with_current_study_settings(info["config"])
    device = pick_device(config.train.device)
    G = G.to(device).eval()
    paper_encoder = load_encoder(run_dir, device)
    data = PreparedDataset(run_data_dir(run_dir, config))
    resolution, alpha = int(info["resolution"]), float(info["alpha"])
    n_channels = len(info["channels"])
    inv = config.inversion
    settings = {**{k: (list(v) if isinstance(v, tuple) else v)
                   for k, v in vars(inv).items()}, "generator_step": int(info["step"])}
    # the paper's encoder it starts from is an input, by SHA-256
    sha, inputs = weights_fingerprint(G), {"encoder.pt": sha256_of(run_dir / "encoder.pt")}
    previous = (reusable(run_dir / INVERSION_FILE, run_dir / WEIGHTS_FILE, settings,
                         "inversion", sha, config, inputs) if reuse else None)
    with code_that_ran() as ran:
        train_view = data.view(data.split_indices("train"), resolution, n_channels)
        if previous is not None:
            encoder = build_network("encoder", config.model, n_channels, resolution)
            encoder.load_state_dict(torch.load(run_dir / WEIGHTS_FILE, map_location=device,
                                               weights_only=True))
            encoder, losses = encoder.to(device).eval().requires_grad_(False), previous["losses"]
        else:
            encoder, losses = train_indomain_encoder(G, paper_encoder, train_view, config,
                                                     resolution, alpha, progress)
            with atomic_file(run_dir / WEIGHTS_FILE) as fh:
                torch.save(encoder.state_dict(), fh)

        heldout = data.split_indices("heldout")
        heldout_view = data.view(heldout, resolution, n_channels)
        scores = ReconstructionScores(heldout_view, config.data)
        errors: dict[str, list[np.ndarray]] = {v: [] for v in VARIANTS}
        for start in range(0, len(heldout), BATCH):
            reals = heldout_view[start:start + BATCH]
            z = encode(encoder, reals)
            refined = refine_latents(G, z, reals, resolution, alpha, inv.refine_steps,
                                     inv.refine_lr, encoder, inv.domain_weight)
            drawn = {VARIANTS[0]: images_from_latents(G, z, resolution, alpha),
                     VARIANTS[1]: images_from_latents(G, refined, resolution, alpha)}
            for variant, images in drawn.items():
                scores.add(variant, start, images)
                errors[variant].append(reconstruction_mse(reals, images))
            if start == 0:
                shown = slice(0, FIGURE4_COLUMNS)
                with atomic_file(run_dir / "figures" / "indomain_reconstructions.npz") as fh:
                    np.savez_compressed(fh, reals=reals[shown],
                                        **{v: images[shown] for v, images in drawn.items()},
                                        manifest_index=heldout[shown])
        train_latents = encode(encoder, train_view)
        save_latents(run_dir / INDOMAIN_LATENTS_FILE, train_latents,
                     data.manifest.iloc[data.split_indices("train")])
        summary = {
            "method": "in-domain inversion after Zhu et al. (2020): the paper's encoder "
                      "fine-tuned to reconstruct real training images (pixel error, every "
                      f"channel) plus {inv.latent_weight} x its latent error on generated images; "
                      f"then {inv.refine_steps} Adam steps per image on the pixel error plus "
                      f"{inv.domain_weight} x the encoder's latent error of the redrawn image",
            "r2": latent_r2(encoder, G, resolution, alpha),
            **scores.summary(VARIANTS),
            "heldout_images": len(heldout),
            **{f"heldout_mse_{v}": float(np.concatenate(e).mean()) if e else None
               for v, e in errors.items()},
            "settings": settings, "reused": previous is not None,
            "losses": {k: thin(v, 200) for k, v in losses.items()},
            "loss_last": {k: float(np.mean(v[-20:])) if v else None for k, v in losses.items()},
            "train_images_encoded": len(train_latents), "resolution": resolution,
        }
    # the code that trained reused weights is part of what they derive from
    trained_by = previous["derivation"]["code"] if previous is not None else {}
    summary["derivation"] = derivation("inversion", sha, config, ran | set(trained_by), inputs)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_text_atomic(run_dir / INVERSION_FILE, json.dumps(summary, indent=2))
    return summary


# ---------------------------------------------------------------------------------------------
# What the page shows
