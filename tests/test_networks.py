"""The progressive networks: fade-in continuity, equalized LR, minibatch stddev, channels."""

import copy
import math

import pytest
import torch

from pggan_core.errors import ConfigError
from pggan_core.settings import ModelConfig
from pggan_core.training.networks import (
    Conv2d,
    Discriminator,
    DownsampleConv2d,
    Encoder,
    Generator,
    Linear,
    UpsampleConv2d,
    downsample,
    ema_update,
    mbstd_group_size,
    minibatch_stddev,
    upsample,
)

TINY = ModelConfig(latent_dim=16, feature_maps={4: 8, 8: 8, 16: 8, 32: 4})


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_generator_fade_in_starts_at_upsampled_previous_output(resolution: int) -> None:
    G = Generator(TINY, 4, 32)
    z = torch.randn(3, 16)
    old = upsample(G(z, resolution // 2))
    assert torch.equal(G(z, resolution, alpha=0.0), old)
    new = G(z, resolution, alpha=1.0)
    assert not torch.allclose(new, old)
    torch.testing.assert_close(G(z, resolution, alpha=0.25), 0.75 * old + 0.25 * new)


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_discriminator_fade_in_starts_at_previous_score_of_pooled_input(resolution: int) -> None:
    D = Discriminator(TINY, 4, 32)
    x = torch.randn(4, 4, resolution, resolution)
    torch.testing.assert_close(D(x, resolution, alpha=0.0), D(downsample(x), resolution // 2),
                               rtol=0, atol=0)
    assert not torch.allclose(D(x, resolution, alpha=1.0), D(downsample(x), resolution // 2))


def test_outputs_have_the_documented_shapes() -> None:
    G, D = Generator(TINY, 4, 32), Discriminator(TINY, 4, 32)
    z = torch.randn(5, 16)
    for res in (4, 8, 16, 32):
        images = G(z, res, alpha=0.5)
        assert images.shape == (5, 4, res, res)
        assert D(images, res, alpha=0.5).shape == (5,)


def test_all_resolutions_are_built_up_front_and_idle_ones_get_no_gradient() -> None:
    G, D = Generator(TINY, 3, 32), Discriminator(TINY, 3, 32)
    keys_before = list(G.state_dict())
    D(G(torch.randn(4, 16), 8, alpha=0.5), 8, alpha=0.5).sum().backward()
    assert list(G.state_dict()) == keys_before
    assert G.to_rgb[3].weight.grad is None and G.blocks[3].conv0.weight.grad is None
    assert D.from_rgb[3][0].weight.grad is None and D.blocks[2].conv0.weight.grad is None
    assert G.to_rgb[0].weight.grad is not None  # the fading-out path still learns
    assert D.from_rgb[0][0].weight.grad is not None


@pytest.mark.parametrize(("resolution", "fading"), [(4, False), (8, True), (16, False),
                                                   (32, True)])
def test_active_layers_are_exactly_the_layers_that_learn(resolution: int, fading: bool) -> None:
    """What DistributedDataParallel wraps per phase: every parameter gets a gradient, and no
    other parameter does (DDP would wait forever for one, or average one that never moves)."""
    G, D = Generator(TINY, 3, 32), Discriminator(TINY, 3, 32)
    alpha = 0.5 if fading else 1.0
    D(G(torch.randn(4, 16), resolution, alpha), resolution, alpha).sum().backward()
    for net in (G, D):
        active = {id(p) for layer in net.active_layers(resolution, fading)
                  for p in layer.parameters()}
        learning = {id(p) for p in net.parameters() if p.grad is not None}
        assert active == learning


def test_equalized_lr_weights_are_unit_normal_and_scaled_like_he_init() -> None:
    conv = Conv2d(64, 64, 3)
    fan_in = 64 * 9
    assert conv.weight.std().item() == pytest.approx(1.0, rel=0.05)
    assert conv.scale == pytest.approx(math.sqrt(2.0 / fan_in))
    out = conv(torch.randn(8, 64, 16, 16))
    assert out.std().item() == pytest.approx(math.sqrt(2.0), rel=0.1)  # He: var = 2 * var_in
    dense = Linear(256, 32, gain=1.0)
    assert dense.scale == pytest.approx(1 / 16)
    assert dense(torch.randn(512, 256)).std().item() == pytest.approx(1.0, rel=0.1)


@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_fused_upsample_conv_equals_upsample_then_conv(kernel: int) -> None:
    fused = UpsampleConv2d(6, 5, kernel)
    x = torch.randn(2, 6, 8, 8)
    torch.testing.assert_close(fused(x), Conv2d.forward(fused, upsample(x)), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_fused_conv_downsample_equals_conv_then_pool(kernel: int) -> None:
    fused = DownsampleConv2d(6, 5, kernel)
    x = torch.randn(2, 6, 16, 16)
    torch.testing.assert_close(fused(x), downsample(Conv2d.forward(fused, x)), rtol=1e-5,
                               atol=1e-5)


def test_discriminator_fuses_pooling_from_128_px_like_karras() -> None:
    cfg = ModelConfig(latent_dim=16, feature_maps={r: 4 for r in (4, 8, 16, 32, 64, 128, 256)})
    D = Discriminator(cfg, 3, 256)
    assert [block.fused for block in D.blocks[1:]] == [False, False, False, False, True, True]
    assert isinstance(D.blocks[5].conv1, DownsampleConv2d)


def test_authors_settings_use_5x5_and_plain_he_init() -> None:
    cfg = ModelConfig(latent_dim=16, feature_maps=TINY.feature_maps, kernel_size=5,
                      equalized_lr=False)  # the authors' code (profiles/authors.yaml)
    G, D = Generator(cfg, 4, 16), Discriminator(cfg, 4, 16)
    assert G.blocks[1].conv0.weight.shape[-2:] == (5, 5)
    assert D.blocks[1].conv1.weight.shape[-2:] == (5, 5)
    layers = [m for m in [*G.modules(), *D.modules()] if isinstance(m, Conv2d | Linear)]
    assert all(layer.scale == 1.0 for layer in layers)
    big = Conv2d(64, 64, 5, equalized=False)
    assert big.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 25)), rel=0.05)
    assert Generator(cfg, 4, 16)(torch.randn(2, 16), 16).shape == (2, 4, 16, 16)
    nvidia = Generator(TINY, 4, 16)
    assert nvidia.blocks[1].conv0.weight.shape[-2:] == (3, 3)


@pytest.mark.parametrize("batch", [1, 2, 3, 4, 5, 6, 8])
def test_minibatch_stddev_any_batch_size(batch: int) -> None:
    x = torch.randn(batch, 8, 4, 4)
    out = minibatch_stddev(x, group=4)
    assert out.shape == (batch, 9, 4, 4)
    assert torch.isfinite(out).all()
    assert torch.equal(out[:, :8], x)
    D = Discriminator(TINY, 4, 8)
    assert torch.isfinite(D(torch.randn(batch, 4, 8, 8), 8, alpha=0.5)).all()


def test_minibatch_stddev_value_and_grouping() -> None:
    assert [mbstd_group_size(b, 4) for b in (1, 2, 3, 4, 5, 6, 8, 12)] == [1, 2, 3, 4, 1, 3, 4, 4]
    x = torch.randn(8, 3, 2, 2)
    out = minibatch_stddev(x, group=4)
    for start in (0, 4):  # consecutive samples form a group
        group = x[start:start + 4]
        expected = (group.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(out[start:start + 4, 3], expected.expand(4, 2, 2))
    # identical samples: no spread; stddev is sqrt(eps), and finite even for a batch of 1
    same = minibatch_stddev(torch.ones(4, 3, 2, 2), group=4)[:, 3]
    torch.testing.assert_close(same, torch.full_like(same, 1e-4))


@pytest.mark.parametrize("channels", [1, 3, 4, 7])
def test_any_number_of_image_channels(channels: int) -> None:
    G, D = Generator(TINY, channels, 16), Discriminator(TINY, channels, 16)
    images = G(torch.randn(2, 16), 16, alpha=0.7)
    assert images.shape == (2, channels, 16, 16)
    assert D(images, 16, alpha=0.7).shape == (2,)
    assert Encoder(TINY, channels, 16)(images).shape == (2, 16)


@pytest.mark.parametrize("resolution", [4, 16, 32])
def test_encoder_returns_a_latent_per_image(resolution: int) -> None:
    E = Encoder(TINY, 4, resolution)
    assert E(torch.randn(3, 4, resolution, resolution)).shape == (3, 16)
    # no minibatch statistic: one image's latent does not depend on its batch
    x = torch.randn(3, 4, resolution, resolution)
    torch.testing.assert_close(E(x)[:1], E(x[:1]))
    # its last hidden layer is as wide as the latent (16), not the 8 features at 4 px, or the
    # 16 numbers it predicts would pass through 8; the critic keeps its own width
    assert E.head.dense.weight.shape[0] == 16
    assert Discriminator(TINY, 4, resolution).blocks[0].dense.weight.shape[0] == 8


def test_ema_update_blends_parameters() -> None:
    G = Generator(TINY, 4, 8)
    ema = copy.deepcopy(G)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    before = [p.clone() for p in ema.parameters()]
    ema_update(ema, G, beta=0.9)
    for old, new, target in zip(before, ema.parameters(), G.parameters(), strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * target)


def test_bad_configuration_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no entry for 64 px"):
        Generator(TINY, 4, 64)
    with pytest.raises(ConfigError, match="max_resolution"):
        Discriminator(TINY, 4, 24)
    with pytest.raises(ValueError, match="above"):
        Generator(TINY, 4, 16)(torch.randn(1, 16), 32)
