"""conv.conv2d: F.conv2d's numbers, first and second derivatives, with cheaper kernels."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from pggan_core.training import conv


def operands(stride: int, channels_last: bool, bias: bool, dtype=torch.float64):
    gen = torch.Generator().manual_seed(stride + 2 * channels_last + 4 * bias)
    x = torch.randn(4, 3, 8, 8, generator=gen, dtype=dtype)
    w = torch.randn(5, 3, 3, 3, generator=gen, dtype=dtype)
    if channels_last:
        x, w = x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
    b = torch.randn(5, generator=gen, dtype=dtype) if bias else None
    return [t.requires_grad_(True) if t is not None else None for t in (x, w, b)]


def penalty_gradients(conv_fn, x, w, b, stride: int, only_inputs: bool):
    """The gradient-penalty pattern: d/d(w, b) of ||d out / d x||^2, through a leaky ReLU."""
    out = F.leaky_relu(conv_fn(x, w, b, stride=stride, padding=1), 0.2)
    # a fixed non-uniform weighting, so the input gradient differs from pixel to pixel
    out = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum()
    if only_inputs:
        with conv.input_gradients_only():
            (gx,) = torch.autograd.grad(out, x, create_graph=True)
    else:
        (gx,) = torch.autograd.grad(out, x, create_graph=True)
    params = [w] + ([b] if b is not None else [])
    return torch.autograd.grad(gx.square().sum() + out, params, allow_unused=True)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_values_and_first_gradients_match_f_conv2d(stride, channels_last, bias):
    x, w, b = operands(stride, channels_last, bias)
    ours = conv.conv2d(x, w, b, stride=stride, padding=1)
    stock = F.conv2d(x, w, b, stride=stride, padding=1)
    torch.testing.assert_close(ours, stock)
    inputs = [t for t in (x, w, b) if t is not None]
    weights = torch.randn_like(stock)
    for got, want in zip(torch.autograd.grad((ours * weights).sum(), inputs),
                         torch.autograd.grad((stock * weights).sum(), inputs), strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_gradient_penalty_pattern_matches_f_conv2d(stride, channels_last, bias):
    """Inside input_gradients_only (the fast path) and outside it (PyTorch's own formula)."""
    x, w, b = operands(stride, channels_last, bias)
    want = penalty_gradients(F.conv2d, x, w, b, stride, only_inputs=False)
    for only_inputs in (True, False):
        got = penalty_gradients(conv.conv2d, x, w, b, stride, only_inputs)
        for g, e in zip(got, want, strict=True):
            torch.testing.assert_close(g, e)


def test_input_gradients_only_skips_weight_gradients():
    x, w, b = operands(1, False, True)
    out = conv.conv2d(x, w, b, padding=1).sum()
    with conv.input_gradients_only():
        gx, gw, gb = torch.autograd.grad(out, (x, w, b), create_graph=True, allow_unused=True)
    assert gx is not None and gw is None and gb is None
    assert not conv._input_gradients_only  # the switch is restored on exit


def test_outside_the_switch_higher_derivatives_are_pytorchs():
    x, w, b = operands(2, False, True)
    assert torch.autograd.gradgradcheck(
        lambda x, w, b: conv.conv2d(x, w, b, stride=2, padding=1), (x, w, b))


@pytest.mark.parametrize("only_inputs", [True, False])
def test_autocast_casts_operands_once(only_inputs):
    """bf16 autocast (the GPU trainer's setting), tried on CPU: one dtype inside each node."""
    x, w, b = operands(1, True, True, dtype=torch.float32)
    switch = conv.input_gradients_only() if only_inputs else contextlib.nullcontext()
    with torch.autocast("cpu", dtype=torch.bfloat16), switch:
        out = conv.conv2d(x, w, b, padding=1)
        (gx,) = torch.autograd.grad(out.float().sum(), x, create_graph=True)
    assert out.dtype == torch.bfloat16
    gw = torch.autograd.grad(gx.square().sum(), w)[0]
    assert gx.dtype == gw.dtype == torch.float32  # autograd returns each input's own dtype
    assert torch.isfinite(gw).all()
