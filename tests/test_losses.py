"""WGAN-GP with drift, checked against critics whose gradients are known in closed form."""

import pytest
import torch
from torch import Tensor, nn

from pggan_core.settings import ModelConfig
from pggan_core.training.losses import _scores, discriminator_loss, generator_loss, gradient_penalty
from pggan_core.training.networks import Discriminator, Generator


class LinearCritic(nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere, so GP = (||w|| - 1)^2."""

    def __init__(self, shape: tuple[int, ...], norm: float) -> None:
        super().__init__()
        w = torch.randn(shape)
        self.w = nn.Parameter(w / w.norm() * norm)

    def forward(self, x: Tensor, resolution: int, alpha: float = 1.0) -> Tensor:
        return (x * self.w).flatten(1).sum(dim=1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("norm", [0.5, 1.0, 3.0])
def test_gradient_penalty_of_a_linear_critic(norm: float) -> None:
    D = LinearCritic((2, 4, 4), norm)
    reals, fakes = torch.randn(6, 2, 4, 4), torch.randn(6, 2, 4, 4)
    penalty = gradient_penalty(D, reals, fakes, 4, 1.0)
    assert penalty.item() == pytest.approx((norm - 1.0) ** 2, abs=1e-5)
    penalty.backward()  # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    torch.testing.assert_close(D.w.grad, 2 * (norm - 1.0) * D.w.detach() / norm)


def test_discriminator_loss_terms_and_stats() -> None:
    D = LinearCritic((1, 4, 4), 2.0)
    reals, fakes = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    real_scores, fake_scores = D(reals, 4), D(fakes, 4)
    loss, stats = discriminator_loss(D, reals, fakes, 4, 1.0, gp_lambda=10.0, drift=0.001)
    wasserstein = (real_scores.mean() - fake_scores.mean()).item()
    drift = real_scores.square().mean().item()
    expected = -wasserstein + 10.0 * (2.0 - 1.0) ** 2 + 0.001 * drift
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert stats["wasserstein"] == pytest.approx(wasserstein, rel=1e-5)
    assert stats["gp"] == pytest.approx(1.0, rel=1e-5)
    assert stats["drift"] == pytest.approx(drift, rel=1e-5)
    assert stats["d_loss"] == pytest.approx(loss.item())


def test_drift_term_pulls_real_scores_towards_zero() -> None:
    D = LinearCritic((1, 4, 4), 1.0)  # unit gradient norm: no penalty
    reals = torch.randn(8, 1, 4, 4)
    no_drift, _ = discriminator_loss(D, reals, reals.clone(), 4, 1.0, drift=0.0)
    with_drift, _ = discriminator_loss(D, reals, reals.clone(), 4, 1.0, drift=0.5)
    assert no_drift.item() == pytest.approx(0.0, abs=1e-5)
    assert with_drift.item() == pytest.approx(0.5 * D(reals, 4).square().mean().item(), rel=1e-5)


def test_losses_route_gradients_to_the_right_network() -> None:
    cfg = ModelConfig(latent_dim=16, feature_maps={4: 8, 8: 8, 16: 8})
    G, D = Generator(cfg, 4, 16), Discriminator(cfg, 4, 16)
    reals = torch.rand(6, 4, 16, 16) * 2 - 1
    fakes = G(torch.randn(6, 16), 16, alpha=0.5)
    d_loss, stats = discriminator_loss(D, reals, fakes, 16, 0.5)
    d_loss.backward()
    assert all(p.grad is None for p in G.parameters())  # fakes are detached
    d_grads = [p.grad for p in D.parameters() if p.grad is not None]
    assert d_grads and all(torch.isfinite(g).all() for g in d_grads)
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    D.zero_grad(set_to_none=True)
    fakes = G(torch.randn(6, 16), 16, alpha=0.5)
    g_loss = generator_loss(D, fakes, 16, 0.5)
    assert g_loss.item() == pytest.approx(-D(fakes, 16, 0.5).mean().item(), rel=1e-5)
    g_loss.backward()
    assert G.blocks[2].conv1.weight.grad is not None
    assert all(p.grad is None for p in D.parameters())  # D is frozen during G's loss
    assert all(p.requires_grad for p in D.parameters())  # and unfrozen afterwards


@pytest.mark.parametrize("batch", [2, 5, 6, 8])
def test_joint_critic_pass_gives_the_separate_scores(batch: int) -> None:
    D = Discriminator(ModelConfig(latent_dim=16, feature_maps={4: 8, 8: 8}), 3, 8)
    reals, fakes = torch.randn(batch, 3, 8, 8), torch.randn(batch, 3, 8, 8)
    real_scores, fake_scores = _scores(D, reals, fakes, 8, 0.5)
    torch.testing.assert_close(real_scores, D(reals, 8, 0.5))
    torch.testing.assert_close(fake_scores, D(fakes, 8, 0.5))
