"""What a run is made of: ``Config``, one frozen dataclass per concern (``SECTIONS``), and
``resolutions``, the one resolution ladder of a run.

The defaults are a starting point, not the paper (Beers et al. 2018), whose numbers live in
``profiles/paper.yaml`` (``pggan_core.config`` resolves profiles into these dataclasses); comments
cite the paper where a field is one of its choices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DataConfig:
    """What goes into a prepared dataset (``pggan data prepare``)."""

    dataset: str = "rop"
    n_images: int = 256
    resolution: int = 64  # largest stored resolution; the pyramid goes from 4 px up to it
    seed: int = 0
    source: str | None = None  # a real-data folder; None means the built-in phantom
    heldout_fraction: float = 0.1  # rows marked split="heldout" are never used in GAN training
    # ROP preprocessing (paper, "Retinopathy of Prematurity Dataset"; QTIM retina-unet values)
    gamma: float = 1.2
    clahe_clip: float = 2.0
    clahe_tiles: int = 8
    fov_erosion_px: int = 10
    # "mask": the phantom's exact vessels or the folder's manual masks; "unet": the paper's way,
    # the vessel U-Net's map; "auto": masks where they exist, the U-Net elsewhere.
    vessel_channel: str = "auto"
    # BraTS preprocessing (paper, "Brain Tumor Magnetic Resonance Imaging Dataset")
    min_brain_fraction: float = 0.05  # skip slices with less brain than this
    slices_per_subject: int = 16
    z_clip: float = 4.0  # z-scores are clipped to +-z_clip, then scaled to [-1, 1]
    pad_to: int = 256


@dataclass(frozen=True)
class VesselConfig:
    """The vessel U-Net (paper: 48x48 patches, 8-pixel stride)."""

    patch: int = 48
    stride: int = 8
    base_channels: int = 16
    n_train_images: int = 16
    n_heldout_images: int = 4
    train_resolution: int = 256
    iterations: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """Generator / discriminator architecture (paper, "Network Architectures")."""

    latent_dim: int = 128
    # feature maps per resolution, a table (paper: 128 below 256 px, 64 at 256, 16 at 512)
    feature_maps: dict[int, int] = field(
        default_factory=lambda: {4: 128, 8: 128, 16: 128, 32: 128, 64: 128, 128: 128,
                                 256: 64, 512: 16}
    )
    mbstd_group: int = 4  # minibatch-stddev group size (0: no minibatch-stddev layer)
    kernel_size: int = 3  # odd: convolutions pad "same" with kernel_size // 2
    # Karras et al.'s run-time weight scaling; False: plain He init (the "authors" overlay)
    equalized_lr: bool = True
    # the run's networks (training/architectures.py: "pggan", the paper's, or one registered)
    architecture: str = "pggan"


@dataclass(frozen=True)
class ScheduleConfig:
    """The progressive schedule: per resolution, fade and stable iterations and batch size."""

    start_resolution: int = 4
    max_resolution: int = 16
    fade_iterations: int = 20  # paper: 20,000 (interpolation phase)
    stable_iterations: int = 20  # paper: 20,000 (without interpolation)
    # per-resolution [fade, stable] overriding the two above (a short run spends its budget
    # at the top resolutions: 4-16 px are learnt in a few hundred steps)
    iterations: dict[int, tuple[int, int]] = field(default_factory=dict)
    batch_size: dict[int, int] = field(default_factory=lambda: {4: 16, 8: 16, 16: 16})

    def phase_iterations(self, resolution: int) -> tuple[int, int]:
        """(fade, stable) iterations at ``resolution``."""
        return self.iterations.get(resolution, (self.fade_iterations, self.stable_iterations))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping for the GAN trainer."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    gp_lambda: float = 10.0
    drift: float = 0.001
    # samples and evaluation use an EMA of G's weights; False: G itself (the "authors" overlay)
    use_ema: bool = True
    ema_beta: float = 0.999
    d_steps_per_g_step: int = 1
    log_every: int = 10
    checkpoint_every: int = 100
    sample_grid: int = 16  # images in the fixed-latent sample grid
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    # "auto" (bf16 autocast on CUDA, fp32 on CPU) | "fp32" | "bf16" (CPU too: see precision.py)
    precision: str = "auto"
    compile: bool = False
    seed: int = 0


@dataclass(frozen=True)
class EncoderConfig:
    """The latent encoder (paper: D's architecture ending in a 128-vector, MSE, 20,000 its)."""

    iterations: int = 100
    batch_size: int = 16
    lr: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)  # the GAN's ("the same training conditions")
    refine_steps: int = 0  # optional per-image latent refinement by gradient descent


@dataclass(frozen=True)
class InversionConfig:
    """The in-domain encoder (``latent.indomain``; Zhu et al. 2020, not in the paper): the
    paper's, fine-tuned on real training images, then per-image refinement it regularises."""

    iterations: int = 50
    batch_size: int = 16
    lr: float = 1e-4  # a fine-tuning step: it starts from the paper's trained encoder
    betas: tuple[float, float] = (0.9, 0.99)
    latent_weight: float = 1.0  # x MSE(E(G(z)), z) on generated images beside the pixel error
    refine_steps: int = 0
    refine_lr: float = 0.05
    domain_weight: float = 0.1  # x MSE(E(G(z)), z) beside the pixel error while refining


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation sizes."""

    n_generated: int = 64
    n_auc_images: int = 32  # U-Net inference at stride 8 is the slow part of evaluation
    # generated images checked for copies of training images (measures.memorisation): a 1 %
    # flag rate needs hundreds to be told from 0
    n_memorisation: int = 1024
    n_msssim_pairs: int = 32
    swd_descriptors: int = 128
    swd_projections: int = 512
    tsne_perplexity: float = 30.0


@dataclass(frozen=True)
class AugmentConfig:
    """The augmentation study (``pggan augment-study``, ``notebooks/08_augmentation.md``; not
    in the paper, which argues for this use without measuring it): segmenters trained on real
    labelled images, on those plus the GAN's (image, mask) pairs, on the pairs only, and with
    classic augmentation; all scored on held-out real images."""

    label_counts: tuple[int, ...] = (2, 5, 10)  # the scarce regimes: k real labelled items
    n_synthetic: int = 256  # M synthetic pairs added to the real ones (and the synthetic arm)
    seeds: int = 3  # repetitions of every arm: new k items, latents, init and batches
    iterations: int = 300  # segmenter updates, the same in every arm
    batch_size: int = 32
    lr: float = 1e-3
    n_test: int = 60  # held-out real images (fundus) or slices (glioma) scored, at most
    base_channels: int = 16  # the glioma segmenter's width (the fundus one is vessels')
    # classic augmentation, the practitioner's baseline: rotations up to this many degrees
    # and a random contrast / brightness change of up to this fraction
    rotation_degrees: float = 15.0
    intensity_jitter: float = 0.1
    # True: every `pggan book` build runs the study (it fits the book's time budget); else the
    # book shows current `pggan augment-study` results and runs it only with --augmentation
    in_book: bool = False


@dataclass(frozen=True)
class Config:
    """Everything a run needs, resolved for one (profile, dataset)."""

    profile: str
    data: DataConfig = field(default_factory=DataConfig)
    vessels: VesselConfig = field(default_factory=VesselConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    inversion: InversionConfig = field(default_factory=InversionConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        """A plain, YAML-serialisable dict of every section."""
        return _plain(dataclasses.asdict(self))

    def run_dict(self) -> dict[str, Any]:
        """``to_dict`` without ``STUDY_SECTIONS``: what a trained run is (its ``config.yaml``,
        checkpoints, a shipped run's manifest), compared to tell if it was trained with this."""
        return {k: v for k, v in self.to_dict().items() if k not in STUDY_SECTIONS}


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "vessels": VesselConfig,
    "model": ModelConfig,
    "schedule": ScheduleConfig,
    "train": TrainConfig,
    "encoder": EncoderConfig,
    "inversion": InversionConfig,
    "eval": EvalConfig,
    "augment": AugmentConfig,
}
# Sections that configure studies made with a finished GAN, not the GAN: changing them must
# not make a trained (or shipped) run look stale, so a run's identity leaves them out.
STUDY_SECTIONS = ("augment", "inversion")


def resolutions(start: int, stop: int) -> list[int]:
    """``start``, 2·``start``, ... up to ``stop`` (px): the one list of resolutions that the
    schedule, the networks and the prepared pyramid all use."""
    out, r = [], start
    while r <= stop:
        out.append(r)
        r *= 2
    return out


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
