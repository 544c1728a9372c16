"""Drawing images from a trained generator: from given latents, or ``n`` from a seed; and how
many directions of its latent the drawing actually moves along (``latent_usage``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

GENERATE_BATCH = 64  # images per forward pass when only inferring


@torch.no_grad()
def images_from_latents(G: nn.Module, z: Tensor | np.ndarray, resolution: int,
                        alpha: float = 1.0, batch: int = GENERATE_BATCH) -> np.ndarray:
    """Images ``(N, C, R, R)`` float32 for latents ``z`` ``(N, latent_dim)``, in batches."""
    device = next(G.parameters()).device
    z = torch.as_tensor(np.asarray(z, dtype=np.float32) if isinstance(z, np.ndarray) else z)
    chunks = [G(z[i:i + batch].to(device), resolution, alpha).float().cpu()
              for i in range(0, len(z), batch)]
    return torch.cat(chunks).numpy()


def sample_images(G: nn.Module, n: int, resolution: int, latent_dim: int, seed: int
                  ) -> np.ndarray:
    """``n`` images from fixed-seed latents, float32 (n, C, R, R) clipped to [-1, 1]."""
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    return np.clip(images_from_latents(G, z, resolution, 1.0), -1.0, 1.0)


LATENT_USAGE_SEED = 1_000_003  # its own latent stream, apart from any training draw
LATENT_USAGE_SAMPLES = 4  # latents the generator's Jacobian is taken at (``latent_usage``)


LATENT_USAGE_STEP = 0.05  # central-difference step along each latent axis


@torch.no_grad()
def latent_usage(G: nn.Module, resolution: int, alpha: float = 1.0,
                 latent_dim: int | None = None, n: int = LATENT_USAGE_SAMPLES,
                 seed: int = LATENT_USAGE_SEED, step: float = LATENT_USAGE_STEP) -> dict[str, Any]:
    """How many latent directions the generator's image actually moves along.

    The singular values of the image's Jacobian with respect to z (central differences of
    ``step`` along each of ``latent_dim`` axes, default ``G.latent_dim``, at ``n`` random
    latents). Returns ``spectrum`` (their mean, each latent's largest scaled to 1), its
    ``participation_ratio`` ``(sum s²)² / sum s⁴`` (the effective number of directions:
    ``latent_dim`` if all are used equally, 1 for a single one) and ``top_decile_share`` (of the
    squared values, in the top tenth of directions). An encoder can only recover what changes
    the image, so a low ratio bounds its R² from the generator's side. Runs in fp32 whatever the
    caller's autocast: a difference of two bf16 images at this step would be mostly rounding.
    """
    dim = G.latent_dim if latent_dim is None else latent_dim
    device = next(G.parameters()).device
    offsets = torch.eye(dim) * step
    spectra = []
    with torch.autocast(device.type, enabled=False):
        for z in torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)):
            plus = images_from_latents(G, z + offsets, resolution, alpha).reshape(dim, -1)
            minus = images_from_latents(G, z - offsets, resolution, alpha).reshape(dim, -1)
            jacobian = torch.from_numpy((plus - minus) / (2 * step)).to(torch.float64)
            # singular values from the (dim, dim) Gram matrix: an SVD of the (dim, pixels)
            # Jacobian itself would be slow and large at 512 px
            squared = torch.linalg.eigvalsh(jacobian @ jacobian.T).flip(0).clamp(min=0)
            spectra.append(squared.sqrt().numpy())
    relative = np.mean([values / values[0] for values in spectra], axis=0)
    power = relative ** 2
    top = max(1, dim // 10)
    return {"participation_ratio": float(power.sum() ** 2 / (power ** 2).sum()),
            "latent_dim": dim, "top_decile_share": float(power[:top].sum() / power.sum()),
            "spectrum": [round(float(v), 5) for v in relative], "n_latents": n, "step": step}
