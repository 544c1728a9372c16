"""The networks a run is made of, chosen by name: ``model.architecture``.

``build_network`` builds every network in the package (the trainer's generator and critic, a
checkpoint's generator, the paper's encoder and the in-domain one) from ``ARCHITECTURES``, where
the paper's progressive GAN is ``"pggan"`` (``training/networks.py``). One added with
``register_architecture("name", Architecture(description, generator=..., critic=...,
encoder=...))`` is trained, checkpointed, evaluated, encoded and sampled by the same code, with
``--set model.architecture=NAME``. ``GeneratorNet``, ``CriticNet`` and ``EncoderNet`` write down
what the rest of the package assumes of each network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from torch import Tensor, nn

from pggan_core.errors import ConfigError
from pggan_core.settings import ModelConfig
from pggan_core.training.networks import Discriminator, Encoder, Generator


class GeneratorNet(Protocol):
    """``G(z, resolution, alpha)``: latents ``(B, latent_dim)`` -> images ``(B, channels,
    resolution, resolution)`` in about [-1, 1]; ``alpha`` < 1 fades the top block in. Every
    resolution's layers exist from the start (state dicts never change shape) and
    ``active_layers`` names those a phase trains."""

    latent_dim: int
    channels: int
    max_resolution: int

    def __call__(self, z: Tensor, resolution: int, alpha: float = 1.0) -> Tensor: ...

    def active_layers(self, resolution: int, fading: bool) -> list[nn.Module]: ...


class CriticNet(Protocol):
    """``D(x, resolution, alpha)``: images -> one unbounded WGAN score each, ``(B,)``;
    ``mbstd_group`` (0: none) is the only way one image's score sees another's."""

    channels: int
    max_resolution: int
    mbstd_group: int

    def __call__(self, x: Tensor, resolution: int, alpha: float = 1.0) -> Tensor: ...

    def active_layers(self, resolution: int, fading: bool) -> list[nn.Module]: ...


class EncoderNet(Protocol):
    """``E(x)``: images at one ``resolution`` -> latents ``(B, latent_dim)``, each independent of
    the rest of its batch."""

    resolution: int
    latent_dim: int

    def __call__(self, x: Tensor) -> Tensor: ...


# (model config, channels, resolution) -> network; for the generator and the critic the
# resolution is the highest they grow to, for the encoder the one it reads
Builder = Callable[[ModelConfig, int, int], nn.Module]
Role = Literal["generator", "critic", "encoder"]


@dataclass(frozen=True)
class Architecture:
    """A generator, its critic and the encoder that inverts the generator, built alike."""

    description: str
    generator: Builder
    critic: Builder
    encoder: Builder


ARCHITECTURES: dict[str, Architecture] = {
    "pggan": Architecture("the progressive GAN of Beers et al. (2018) after Karras et al. "
                          "(2018): training/networks.py", Generator, Discriminator, Encoder),
}


def register_architecture(name: str, architecture: Architecture) -> Architecture:
    """Make ``architecture`` the one ``model.architecture: <name>`` builds. An encoder trained
    with it records the encoder code that ran (``provenance.code_that_ran``), so is retrained
    when that code changes."""
    if not name.isidentifier():
        raise ConfigError(f"architecture name {name!r}: use letters, digits and underscores")
    ARCHITECTURES[name] = architecture
    return architecture


def build_network(role: Role, model: ModelConfig, channels: int, resolution: int) -> nn.Module:
    """The ``role`` network of ``model.architecture`` for ``channels`` image channels: the
    generator or critic growing to ``resolution``, or the encoder reading it."""
    try:
        architecture = ARCHITECTURES[model.architecture]
    except KeyError:
        raise ConfigError(f"model.architecture={model.architecture!r}: choose one of "
                          f"{', '.join(ARCHITECTURES)} (register_architecture adds one)"
                          ) from None
    return getattr(architecture, role)(model, channels, resolution)
