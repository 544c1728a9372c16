"""Drawing images from a trained generator: from given latents, or ``n`` from a seed."""

from __future__ import annotations

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
