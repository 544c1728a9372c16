"""The progressive GAN's generator, discriminator and latent encoder.

Beers et al. (2018, "Network Architectures") grow a generator and a symmetric discriminator from
4 px to 512 px, one pair of convolutions per resolution, with nearest-neighbour upsampling and a
fade-in of each new block; feature maps come from a table (``ModelConfig.feature_maps``). The
layers follow Karras et al. (2018), whose scheme the paper says it follows: equalized learning
rate, pixel norm after every generator convolution, minibatch standard deviation before the
discriminator's last block, a linear ``toRGB``. ``ModelConfig.equalized_lr`` and ``kernel_size``
hold the two choices the authors' own code made differently (plain He-initialised weights, 5x5
convolutions: the "authors" overlay sets both). Every resolution's layers are built in
``__init__``, so state dicts and optimizers never change shape as the network grows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pggan_core.config import check_resolution
from pggan_core.errors import ConfigError
from pggan_core.settings import ModelConfig, resolutions
from pggan_core.training import conv

LEAKY_SLOPE = 0.2
RELU_GAIN = math.sqrt(2.0)  # He et al.; Karras et al. keep it for leaky ReLU too


def kernel_size(model_cfg: ModelConfig) -> int:
    """``model_cfg.kernel_size``: 3 in NVIDIA's PGGAN, 5 in the authors' code."""
    return model_cfg.kernel_size


def uses_equalized_lr(model_cfg: ModelConfig) -> bool:
    """``model_cfg.equalized_lr``: NVIDIA's PGGAN scales weights at run time, the authors' not."""
    return model_cfg.equalized_lr


def level_of(resolution: int, max_resolution: int) -> int:
    """The block index of ``resolution`` (4 px -> 0), checked against the built range."""
    check_resolution(resolution, "resolution")
    if resolution > max_resolution:
        raise ValueError(f"resolution {resolution} is above the network's {max_resolution} px")
    return int(math.log2(resolution)) - 2


def _feature_table(model_cfg: ModelConfig, max_resolution: int) -> list[int]:
    """Feature maps per level, with a ConfigError naming the first missing resolution."""
    table = []
    for res in resolutions(4, check_resolution(max_resolution, "max_resolution")):
        if res not in model_cfg.feature_maps:
            raise ConfigError(f"model.feature_maps has no entry for {res} px: add {res}: <n>")
        table.append(model_cfg.feature_maps[res])
    return table


class _Equalized(nn.Module):
    """Equalized learning rate (Karras et al. 2018, section 4.1): weights start N(0, 1) and are
    multiplied at run time by ``gain / sqrt(fan_in)``, so every layer learns at the same speed
    under Adam (the weight, far smaller than a feature map, is scaled, not the activation).
    Without equalization the same scale is applied once, at initialisation (He init)."""

    def __init__(self, shape: tuple[int, ...], gain: float, equalized: bool) -> None:
        super().__init__()
        fan_in = math.prod(shape[1:])
        he_std = gain / math.sqrt(fan_in)
        self.weight = nn.Parameter(torch.randn(*shape))
        self.bias = nn.Parameter(torch.zeros(shape[0]))
        if equalized:
            self.scale = he_std
        else:
            self.scale = 1.0
            with torch.no_grad():
                self.weight.mul_(he_std)

    def scaled_weight(self) -> Tensor:
        """The weight as applied: times the equalized-LR scale (1 without equalization)."""
        return self.weight * self.scale if self.scale != 1.0 else self.weight


class Conv2d(_Equalized):
    """A k x k same-padded convolution, equalized or He-initialised; through ``conv.conv2d``,
    as the critic's gradient penalty differentiates it twice."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, gain: float = RELU_GAIN,
                 equalized: bool = True) -> None:
        super().__init__((out_ch, in_ch, kernel, kernel), gain, equalized)
        self.padding = kernel // 2

    def forward(self, x: Tensor) -> Tensor:
        return conv.conv2d(x, self.scaled_weight(), self.bias, padding=self.padding)


class Linear(_Equalized):
    """A dense layer with equalized learning rate or He init."""

    def __init__(self, in_features: int, out_features: int, gain: float = RELU_GAIN,
                 equalized: bool = True) -> None:
        super().__init__((out_features, in_features), gain, equalized)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.scaled_weight(), self.bias)


def two_by_two_taps(kernel: int) -> Tensor:
    """Which k x k tap feeds which (k+1) x (k+1) tap, a 0/1 tensor ``(k, k, k+1, k+1)``: a k x k
    convolution of a 2x nearest-upsampled image, and 2x2 pooling of a k x k convolution's output,
    are each one stride-2 convolution whose taps sum the up-to-four k x k weights overlapping
    them (Karras et al.'s ``upscale2d_conv2d``, ``conv2d_downscale2d``); one einsum with this
    builds that kernel (a little faster than adding four shifted copies; benchmarks/README.md)."""
    basis = F.pad(torch.eye(kernel * kernel).view(kernel, kernel, kernel, kernel), (1, 1, 1, 1))
    return (basis[..., 1:, 1:] + basis[..., :-1, 1:] + basis[..., 1:, :-1]
            + basis[..., :-1, :-1])


class UpsampleConv2d(Conv2d):
    """Nearest-neighbour 2x upsampling then a ``Conv2d``, as one transposed convolution: the
    same result up to float rounding (``two_by_two_taps``), 4/9 of the multiply-adds for k = 3,
    no upsampled copy in memory. Its parameters are ``Conv2d``'s: checkpoints do not see this."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, equalized: bool = True) -> None:
        super().__init__(in_ch, out_ch, kernel, equalized=equalized)
        # conv_transpose2d is the adjoint of a correlation: its taps are flipped
        self.register_buffer("taps", two_by_two_taps(kernel).flip(2, 3), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        # (out, in) swapped to (in, out): conv_transpose2d's weight layout
        weight = torch.einsum("oipq,pqab->ioab", self.scaled_weight(), self.taps)
        return F.conv_transpose2d(x, weight, self.bias, stride=2, padding=self.padding)


class DownsampleConv2d(Conv2d):
    """A ``Conv2d`` then 2x2 average pooling, as one stride-2 convolution: the same result up to
    float rounding, 4/9 of the multiply-adds for k = 3. Karras et al. (``conv2d_downscale2d``)
    use it in the discriminator from 128 px up, activating after the pooling, as
    ``DiscriminatorBlock`` does."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, equalized: bool = True) -> None:
        super().__init__(in_ch, out_ch, kernel, equalized=equalized)
        self.register_buffer("taps", two_by_two_taps(kernel) * 0.25, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        weight = torch.einsum("oipq,pqab->oiab", self.scaled_weight(), self.taps)
        return conv.conv2d(x, weight, self.bias, stride=2, padding=self.padding)


def leaky_relu(x: Tensor) -> Tensor:
    """Leaky ReLU with slope 0.2, in place: every caller passes a fresh layer output that
    nothing else reads, and skipping the copy saves ~2 % of a training step."""
    return F.leaky_relu(x, LEAKY_SLOPE, inplace=True)


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Normalise each pixel's feature vector to unit mean square (Karras et al., section 4.2);
    the mean of squares is taken in fp32 whatever ``x``'s dtype."""
    return x * torch.rsqrt(x.float().square().mean(dim=1, keepdim=True) + eps).to(x.dtype)


def mbstd_group_size(batch: int, group: int) -> int:
    """The largest divisor of ``batch`` that is at most ``group`` (1 for a batch of 1)."""
    return next(g for g in range(min(group, batch), 0, -1) if batch % g == 0)


def minibatch_stddev(x: Tensor, group: int) -> Tensor:
    """Append one feature map: the mean over features of the per-group standard deviation.
    Groups are runs of consecutive samples, not Karras et al.'s (section 3) strided ones: the
    same statistic for a shuffled batch, and batches joined for one forward pass (multiples of
    the group size) do not mix."""
    b, c, h, w = x.shape
    g = mbstd_group_size(b, group)
    groups = x.float().view(b // g, g, c, h, w)
    # the biased variance written out: same value as var(unbiased=False), but its double
    # backward (the gradient penalty differentiates through it) is ~4x cheaper on CPU
    centred = groups - groups.mean(dim=1, keepdim=True)
    std = (centred.square().mean(dim=1) + 1e-8).sqrt().mean(dim=(1, 2, 3))
    feature = std.to(x.dtype).repeat_interleave(g).view(b, 1, 1, 1).expand(b, 1, h, w)
    return torch.cat([x, feature], dim=1)


def upsample(x: Tensor) -> Tensor:
    """Nearest-neighbour 2x upsampling (the paper's choice)."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def downsample(x: Tensor) -> Tensor:
    """2x2 average pooling."""
    return F.avg_pool2d(x, 2)


class GeneratorBlock(nn.Module):
    """Upsample, then two convolutions, each followed by leaky ReLU and pixel norm."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, equalized: bool) -> None:
        super().__init__()
        self.conv0 = UpsampleConv2d(in_ch, out_ch, kernel, equalized=equalized)
        self.conv1 = Conv2d(out_ch, out_ch, kernel, equalized=equalized)

    def forward(self, x: Tensor) -> Tensor:
        x = pixel_norm(leaky_relu(self.conv0(x)))
        return pixel_norm(leaky_relu(self.conv1(x)))


class GeneratorInput(nn.Module):
    """The 4 px block: latent -> dense 4x4 map -> convolution (Karras et al., Table 2)."""

    def __init__(self, latent_dim: int, out_ch: int, kernel: int, equalized: bool) -> None:
        super().__init__()
        # NVIDIA's gain sqrt(2)/4 keeps each of the 16 pixels at unit scale after the reshape
        self.dense = Linear(latent_dim, out_ch * 16, gain=RELU_GAIN / 4, equalized=equalized)
        self.conv = Conv2d(out_ch, out_ch, kernel, equalized=equalized)

    def forward(self, z: Tensor) -> Tensor:
        x = self.dense(pixel_norm(z)).view(z.shape[0], -1, 4, 4)
        x = pixel_norm(leaky_relu(x))
        return pixel_norm(leaky_relu(self.conv(x)))


def _layer_plan(model_cfg: ModelConfig, channels: int, max_resolution: int,
                network: str) -> tuple[list[int], int, bool]:
    """Feature maps per level, kernel size and equalized LR shared by G and D."""
    if channels < 1:
        raise ConfigError(f"the {network} needs at least one image channel, got {channels}")
    return (_feature_table(model_cfg, max_resolution), kernel_size(model_cfg),
            uses_equalized_lr(model_cfg))


class Generator(nn.Module):
    """Latent ``(B, latent_dim)`` -> image ``(B, channels, res, res)``, linear output ~[-1, 1]."""

    def __init__(self, model_cfg: ModelConfig, channels: int, max_resolution: int) -> None:
        super().__init__()
        features, kernel, equalized = _layer_plan(model_cfg, channels, max_resolution,
                                                  "generator")
        self.latent_dim, self.channels, self.max_resolution = (
            model_cfg.latent_dim, channels, max_resolution)
        self.blocks = nn.ModuleList([GeneratorInput(model_cfg.latent_dim, features[0], kernel,
                                                    equalized)])
        self.blocks.extend(GeneratorBlock(c_in, c_out, kernel, equalized)
                           for c_in, c_out in zip(features[:-1], features[1:], strict=True))
        # toRGB is linear with gain 1: the image is the network's raw output
        self.to_rgb = nn.ModuleList(Conv2d(c, channels, 1, gain=1.0, equalized=equalized)
                                    for c in features)

    def active_layers(self, resolution: int, fading: bool) -> list[nn.Module]:
        """The layers ``forward`` uses at ``resolution`` (the old toRGB too while fading)."""
        level = level_of(resolution, self.max_resolution)
        old_rgb = [self.to_rgb[level - 1]] if fading and level > 0 else []
        return [*self.blocks[:level + 1], self.to_rgb[level], *old_rgb]

    def forward(self, z: Tensor, resolution: int, alpha: float = 1.0) -> Tensor:
        """Images at ``resolution``; ``alpha`` < 1 fades in its block (alpha = 0: exactly the
        previous resolution's image, NN-upsampled)."""
        level = level_of(resolution, self.max_resolution)
        x = self.blocks[0](z)
        for block in self.blocks[1:level]:
            x = block(x)
        if level == 0:
            return self.to_rgb[0](x)
        image = self.to_rgb[level](self.blocks[level](x))
        if alpha >= 1.0:
            return image
        return torch.lerp(upsample(self.to_rgb[level - 1](x)), image, alpha)


FUSED_DOWNSAMPLE_FROM = 128  # Karras et al.'s fused_scale="auto": fused from 128 px up


class DiscriminatorBlock(nn.Module):
    """Two convolutions with leaky ReLU, then 2x2 average pooling; from 128 px up the pooling
    is fused into the second convolution, before its activation, as in Karras et al.'s code."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, equalized: bool,
                 fused: bool) -> None:
        super().__init__()
        self.fused = fused
        self.conv0 = Conv2d(in_ch, in_ch, kernel, equalized=equalized)
        conv1 = DownsampleConv2d if fused else Conv2d
        self.conv1 = conv1(in_ch, out_ch, kernel, equalized=equalized)

    def forward(self, x: Tensor) -> Tensor:
        x = leaky_relu(self.conv0(x))
        if self.fused:
            return leaky_relu(self.conv1(x))
        return downsample(leaky_relu(self.conv1(x)))


class DiscriminatorOutput(nn.Module):
    """The 4 px block: [minibatch stddev], convolution, dense to ``hidden`` (default
    ``in_ch``), dense to ``out_features``."""

    def __init__(self, in_ch: int, out_features: int, kernel: int, equalized: bool,
                 mbstd_group: int, hidden: int | None = None) -> None:
        super().__init__()
        self.mbstd_group = mbstd_group
        extra = 1 if mbstd_group > 0 else 0
        hidden = hidden or in_ch
        self.conv = Conv2d(in_ch + extra, in_ch, kernel, equalized=equalized)
        self.dense = Linear(in_ch * 16, hidden, equalized=equalized)
        self.out = Linear(hidden, out_features, gain=1.0, equalized=equalized)

    def forward(self, x: Tensor) -> Tensor:
        if self.mbstd_group > 0:
            x = minibatch_stddev(x, self.mbstd_group)
        x = leaky_relu(self.conv(x))
        x = leaky_relu(self.dense(x.flatten(1)))
        return self.out(x)


def _discriminator_blocks(features: list[int], kernel: int, equalized: bool
                          ) -> list[DiscriminatorBlock]:
    """Blocks for levels 1.. (8 px up), each taking its features to the level below's."""
    return [DiscriminatorBlock(c_in, c_out, kernel, equalized,
                               fused=4 * 2**level >= FUSED_DOWNSAMPLE_FROM)
            for level, (c_out, c_in) in enumerate(zip(features[:-1], features[1:], strict=True),
                                                  start=1)]


def _from_rgb(channels: int, features: int, equalized: bool) -> nn.Sequential:
    return nn.Sequential(Conv2d(channels, features, 1, equalized=equalized),
                         nn.LeakyReLU(LEAKY_SLOPE, inplace=True))


class Discriminator(nn.Module):
    """Image ``(B, channels, res, res)`` -> critic score ``(B,)`` (WGAN: unbounded)."""

    def __init__(self, model_cfg: ModelConfig, channels: int, max_resolution: int) -> None:
        super().__init__()
        features, kernel, equalized = _layer_plan(model_cfg, channels, max_resolution,
                                                  "discriminator")
        self.channels, self.max_resolution = channels, max_resolution
        self.mbstd_group = model_cfg.mbstd_group  # the only way one image's score sees another's
        self.from_rgb = nn.ModuleList(_from_rgb(channels, c, equalized) for c in features)
        # blocks[level] takes level's features down to the level below's; blocks[0] is the head
        self.blocks = nn.ModuleList([DiscriminatorOutput(features[0], 1, kernel, equalized,
                                                         model_cfg.mbstd_group)])
        self.blocks.extend(_discriminator_blocks(features, kernel, equalized))

    def active_layers(self, resolution: int, fading: bool) -> list[nn.Module]:
        """The layers ``forward`` uses at ``resolution`` (the old fromRGB too while fading)."""
        level = level_of(resolution, self.max_resolution)
        old_rgb = [self.from_rgb[level - 1]] if fading and level > 0 else []
        return [self.from_rgb[level], *old_rgb, *self.blocks[:level + 1]]

    def forward(self, x: Tensor, resolution: int, alpha: float = 1.0) -> Tensor:
        """Scores for images at ``resolution``; ``alpha`` < 1 fades in its block (alpha = 0:
        exactly the previous resolution's score of the 2x2-average-pooled image)."""
        level = level_of(resolution, self.max_resolution)
        if x.shape[-2:] != (resolution, resolution):
            raise ValueError(f"expected {resolution} px images, got shape {tuple(x.shape)}")
        h = self.from_rgb[level](x)
        if level > 0:
            h = self.blocks[level](h)
            if alpha < 1.0:
                h = torch.lerp(self.from_rgb[level - 1](downsample(x)), h, alpha)
        for lower in range(level - 1, 0, -1):
            h = self.blocks[lower](h)
        return self.blocks[0](h)[:, 0]


class Encoder(nn.Module):
    """The discriminator's architecture at one resolution, ending in a latent vector (paper:
    "the same network architecture as the discriminator, with the exception of terminating in a
    128-vector", trained non-progressively). No minibatch stddev, so an image's latent does not
    depend on its batch. The last hidden layer is at least ``latent_dim`` wide: the critic's is
    as wide as its 4 px features (the latent's 128 at the paper's widths), and a narrower one
    (the demo's 32) would squeeze every latent through fewer numbers than it has dimensions."""

    def __init__(self, model_cfg: ModelConfig, channels: int, resolution: int) -> None:
        super().__init__()
        if channels < 1:
            raise ConfigError(f"the encoder needs at least one image channel, got {channels}")
        features = _feature_table(model_cfg, resolution)
        kernel, equalized = kernel_size(model_cfg), uses_equalized_lr(model_cfg)
        self.resolution, self.latent_dim = resolution, model_cfg.latent_dim
        self.from_rgb = _from_rgb(channels, features[-1], equalized)
        self.blocks = nn.Sequential(*reversed(_discriminator_blocks(features, kernel, equalized)))
        self.head = DiscriminatorOutput(features[0], model_cfg.latent_dim, kernel, equalized,
                                        mbstd_group=0,
                                        hidden=max(features[0], model_cfg.latent_dim))

    def forward(self, x: Tensor) -> Tensor:
        """Latents ``(B, latent_dim)`` for images ``(B, channels, resolution, resolution)``."""
        if x.shape[-2:] != (self.resolution, self.resolution):
            raise ValueError(f"expected {self.resolution} px images, got shape {tuple(x.shape)}")
        return self.head(self.blocks(self.from_rgb(x)))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """``ema <- beta * ema + (1 - beta) * model`` for parameters; buffers are copied."""
    # one fused multi-tensor op instead of a Python loop of small kernels
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - beta)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers(), strict=True):
        ema_buffer.copy_(buffer)
