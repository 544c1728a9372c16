"""``train.compile``: the compiled paths give the eager numbers, and a failing compiler is
survived (``pggan_core/training/guards.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from pggan_core.config import load_config
from pggan_core.training import guards
from pggan_core.training.guards import (
    CACHE_ENV,
    compiled_or_eager,
    inductor_cache_dir,
    keep_compiled_graphs_apart_per_cpu_kernels,
)
from pggan_core.training.losses import discriminator_loss, generator_loss
from pggan_core.training.networks import Discriminator, Generator

RES = 8


def _nets() -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    model = load_config("smoke", "rop").model
    return Generator(model, 4, RES), Discriminator(model, 4, RES)


def _grads(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in net.parameters() if p.grad is not None]


def test_compiled_steps_match_eager_losses_gradients_and_penalty():
    G, D = _nets()
    reals, z = torch.randn(8, 4, RES, RES), torch.randn(8, G.latent_dim)
    fakes = G(z, RES).detach()
    results = {}
    for name, scorer, generator, critic in (
            ("eager", None, G, D),
            ("compiled", compiled_or_eager(D), compiled_or_eager(G), None)):
        D.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the penalty's mixing factors
        d_loss, stats = discriminator_loss(D, reals, fakes, RES, 1.0, scorer=scorer)
        d_loss.backward()
        d_grads = _grads(D)
        G.zero_grad(set_to_none=True)
        g_loss = generator_loss(critic or scorer, generator(z, RES, 1.0), RES, 1.0)
        g_loss.backward()
        results[name] = (stats, d_grads, g_loss.item(), _grads(G), _grads(D))
    (e_stats, e_d, e_g, e_gg, e_dg), (c_stats, c_d, c_g, c_gg, c_dg) = (
        results["eager"], results["compiled"])
    for key in ("d_loss", "gp", "wasserstein", "drift"):  # the penalty included
        assert c_stats[key] == pytest.approx(e_stats[key], rel=1e-4, abs=1e-6)
    assert c_g == pytest.approx(e_g, rel=1e-4, abs=1e-6)
    assert len(c_d) == len(e_d) > 0 and len(c_gg) == len(e_gg) > 0
    for a, b in [*zip(c_d, e_d, strict=True), *zip(c_gg, e_gg, strict=True)]:
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # the generator step leaves the critic's gradients as the critic step set them
    for a, b in [*zip(c_dg, c_d, strict=True), *zip(e_dg, e_d, strict=True)]:
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_failing_compiler_warns_once_and_trains_on_eager(monkeypatch):
    def broken(module):
        def call(*args, **kwargs):
            raise RuntimeError("no C++ compiler found")
        return call

    monkeypatch.setattr(guards.torch, "compile", broken)
    G, D = _nets()
    wrapped = compiled_or_eager(D)
    x = torch.randn(4, 4, RES, RES)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found.*train.compile: false"):
        first = wrapped(x, RES, 1.0)
    torch.testing.assert_close(first, D(x, RES, 1.0))
    assert wrapped.failed
    # the parameters are the critic's, listed once
    assert list(wrapped.parameters()) == list(D.parameters())
    # a bad input is the caller's error, not the compiler's
    with pytest.raises(ValueError, match="expected 8 px images"):
        compiled_or_eager(D)(torch.randn(4, 4, 16, 16), RES, 1.0)


def test_each_choice_of_cpu_kernels_gets_its_own_compiled_graph_cache(monkeypatch, tmp_path):
    # torch 2.13 keys its on-disk graph cache without the CPU kernels chosen at run time: a graph
    # cached under ATEN_CPU_CAPABILITY=avx2 and loaded without it gave NaN or a segfault
    avx2 = inductor_cache_dir("/tmp/t", "AVX2", "AVX2")
    native = inductor_cache_dir("/tmp/t", "AVX512", None)
    assert avx2 != native and avx2.parent == native.parent == Path("/tmp/t")
    assert (avx2.name, native.name) == ("aten-avx2_onednn-avx2", "aten-avx512_onednn-any")

    monkeypatch.setattr(guards, "default_cache_dir", lambda: str(tmp_path / "torch"))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    for unset_or_default in (None, str(tmp_path / "torch")):
        if unset_or_default is None:
            monkeypatch.delenv(CACHE_ENV, raising=False)
        else:
            monkeypatch.setenv(CACHE_ENV, unset_or_default)
        keep_compiled_graphs_apart_per_cpu_kernels()
        assert os.environ[CACHE_ENV] == str(inductor_cache_dir(
            str(tmp_path / "torch"), torch.backends.cpu.get_cpu_capability(), "AVX2"))
    # a folder the user chose stays theirs
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    keep_compiled_graphs_apart_per_cpu_kernels()
    assert os.environ[CACHE_ENV] == str(tmp_path / "mine")
