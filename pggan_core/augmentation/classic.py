"""Classic augmentation, the practitioner's baseline the GAN is measured against: small random
rotations, left-right flips and a random contrast / brightness change, applied to a batch on the fly
(the same geometry to input and target)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pggan_core.segmentation.tasks import Augment, segmentation_task
from pggan_core.settings import Config


def rotate(x: torch.Tensor, y: torch.Tensor, degrees: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate inputs ``x`` (B, C, H, W) bilinearly and targets ``y`` (B, H, W) by nearest neighbour
    about the centre, each by its ``degrees`` (B,); corners are mirrored in, so no artificial border
    appears."""
    angle = degrees * (math.pi / 180.0)
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    y = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="reflection",
                      align_corners=False)[:, 0].to(y.dtype)
    return x, y


def jitter_intensity(x: torch.Tensor, amount: float, floor: float,
                     generator: torch.Generator) -> torch.Tensor:
    """Scale each image's channels by 1 ± ``amount`` and shift them by ± ``amount`` of the
    [floor, 1] range, as scanners and cameras differ; pixels at ``floor`` (the background outside
    the field of view or the brain) stay there."""
    b, c = x.shape[:2]
    span = 1.0 - floor
    scale = 1.0 + amount * (2.0 * torch.rand(b, c, 1, 1, generator=generator) - 1.0)
    shift = amount * span * (2.0 * torch.rand(b, c, 1, 1, generator=generator) - 1.0)
    jittered = ((x - floor) * scale + floor + shift).clamp(floor, 1.0)
    return torch.where(x <= floor, x, jittered)


def classic_augment(x: torch.Tensor, y: torch.Tensor, max_degrees: float, jitter: float,
                    floor: float, generator: torch.Generator, flip: bool = True
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch (inputs (B, C, H, W), targets (B, H, W)) randomly flipped left-right (probability one
    half, if ``flip``), rotated uniformly in ± ``max_degrees`` and ``jitter_intensity``-ed."""
    if flip:
        mirrored = torch.rand(len(x), generator=generator) < 0.5
        x = torch.where(mirrored[:, None, None, None], x.flip(-1), x)
        y = torch.where(mirrored[:, None, None], y.flip(-1), y)
    degrees = max_degrees * (2.0 * torch.rand(len(x), generator=generator) - 1.0)
    x, y = rotate(x, y, degrees)
    return jitter_intensity(x, jitter, floor, generator), y


def classic_augmenter(dataset: str, cfg: Config, seed: int) -> Augment:
    """The classic arm's augmentation of a segmenter's batches (``classic_augment`` with the
    ``augment`` settings and the task's background and flips), drawn from its own generator seeded
    by ``seed`` so the segmenter's other randomness is unchanged."""
    a, task = cfg.augment, segmentation_task(dataset)
    generator = torch.Generator().manual_seed(seed)

    def augment(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return classic_augment(x, y, a.rotation_degrees, a.intensity_jitter, task.input_floor,
                               generator, flip=task.classic_flips)

    return augment
