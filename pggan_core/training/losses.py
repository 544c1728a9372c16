"""The GAN's losses: WGAN-GP with a drift term (Gulrajani et al. 2017; Karras et al. 2018).

The paper trains with "a Wasserstein loss"; following Karras et al., whose scheme it follows,
that is WGAN-GP with lambda = 10 and a small drift penalty (epsilon = 0.001) on the real
scores that keeps the critic's output from wandering off zero. ``D`` is anything called as
``D(images, resolution, alpha) -> (B,) scores``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from pggan_core.training.conv import input_gradients_only
from pggan_core.training.networks import mbstd_group_size

Critic = Callable[[Tensor, int, float], Tensor]


def gradient_penalty(D: Critic, reals: Tensor, fakes: Tensor, resolution: int,
                     alpha: float) -> Tensor:
    """Mean over the batch of (||grad_x D(x)|| - 1)^2 at random interpolates of reals and fakes
    (one uniform mix per sample). The graph is kept for the double backward into D's weights;
    only the images' gradient is taken (``conv.input_gradients_only``)."""
    mix = torch.rand(reals.shape[0], 1, 1, 1, device=reals.device, dtype=reals.dtype)
    # under bf16 autocast the generator's images are bf16: mixed in the reals' fp32
    interpolates = torch.lerp(reals.detach(), fakes.detach().to(reals.dtype),
                              mix).requires_grad_(True)
    scores = D(interpolates, resolution, alpha)
    with input_gradients_only():
        (grads,) = torch.autograd.grad(scores.float().sum(), interpolates, create_graph=True)
    # the norm in fp32: a bf16 norm of thousands of small terms loses the penalty's signal
    return (grads.float().flatten(1).norm(dim=1) - 1.0).square().mean()


def _scores(D: Critic, reals: Tensor, fakes: Tensor, resolution: int, alpha: float
            ) -> tuple[Tensor, Tensor]:
    """D's scores of reals and of fakes, in one pass over both (larger, faster convolutions)
    when that is exact: the joined batch's minibatch-stddev groups (runs of consecutive samples)
    keep one batch's size, never straddling reals and fakes. Critics of unknown batch coupling
    get two passes."""
    batch = reals.shape[0]
    fakes = fakes.to(reals.dtype)  # bf16 under autocast; the critic sees both alike
    # DistributedDataParallel keeps the critic as ``.module``
    group = getattr(getattr(D, "module", D), "mbstd_group", None)
    if group is not None and (
            group < 1 or mbstd_group_size(2 * batch, group) == mbstd_group_size(batch, group)):
        scores = D(torch.cat([reals, fakes]), resolution, alpha).float()
        return scores[:batch], scores[batch:]
    return D(reals, resolution, alpha).float(), D(fakes, resolution, alpha).float()


def discriminator_loss(D: Critic, reals: Tensor, fakes: Tensor, resolution: int, alpha: float,
                       gp_lambda: float = 10.0, drift: float = 0.001,
                       scorer: Critic | None = None) -> tuple[Tensor, dict[str, float]]:
    """The critic's loss E[D(fake)] - E[D(real)] + lambda * GP + drift * E[D(real)^2], and
    plain-float stats ``d_loss``, ``gp`` and ``drift`` (both unweighted) and ``wasserstein``
    (mean real minus mean fake score: the critic's estimate of the distance). ``fakes`` are
    detached: G gets no gradient. ``scorer`` (default ``D``; compiled where ``train.compile``
    asks) scores reals and fakes; the penalty, a double backward, always runs ``D``."""
    real_scores, fake_scores = _scores(scorer or D, reals, fakes.detach(), resolution, alpha)
    penalty = gradient_penalty(D, reals, fakes, resolution, alpha)
    wasserstein = real_scores.mean() - fake_scores.mean()
    drift_term = real_scores.square().mean()
    loss = -wasserstein + gp_lambda * penalty + drift * drift_term
    stats = {"d_loss": loss.item(), "gp": penalty.item(), "wasserstein": wasserstein.item(),
             "drift": drift_term.item()}
    return loss, stats


def generator_loss(D: Critic, fakes: Tensor, resolution: int, alpha: float) -> Tensor:
    """The generator's loss -E[D(fake)]; gradients flow through ``fakes`` into G only: D's
    weights are frozen while its graph is recorded, so the backward pass skips their gradients
    (about a third of D's backward work) and leaves D's ``.grad`` untouched."""
    if not isinstance(D, nn.Module):
        return -D(fakes, resolution, alpha).float().mean()
    params = [p for p in D.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        return -D(fakes, resolution, alpha).float().mean()
    finally:
        for p in params:
            p.requires_grad_(True)
