"""A 2-D convolution whose input gradient is cheap to differentiate again.

The WGAN-GP penalty differentiates the critic's input gradient once more (a double backward).
PyTorch's own second derivative of a convolution computes the weight gradient as a convolution
with a feature-map-sized kernel over batch-transposed copies: on CPU about 40 % as fast as its
ordinary weight-gradient kernel, plus the copies, about a tenth of a 16 px training step. Inside
``input_gradients_only()`` (``losses.gradient_penalty``) the input gradient is instead its own
autograd node whose derivatives call the ordinary kernels, skipping the weight and bias gradients
nobody asked for: same numbers up to float rounding, faster steps, most at 64 px
(``benchmarks/bench_train.py --compare stock_conv``; benchmarks/README.md). Elsewhere PyTorch's
own formula applies, so other higher-order uses stay correct.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

# A process-wide switch, not thread-local: CUDA runs backward passes on its own worker thread.
_input_gradients_only = False


@contextmanager
def input_gradients_only() -> Iterator[None]:
    """Inside, graph-building backwards compute only convolutions' input gradients (rest: None)."""
    global _input_gradients_only
    previous, _input_gradients_only = _input_gradients_only, True
    try:
        yield
    finally:
        _input_gradients_only = previous


def _backward(grad_out: Tensor, x: Tensor, weight: Tensor, bias_shape: list[int] | None,
              stride: int, padding: int, mask: list[bool]) -> tuple[Tensor, Tensor, Tensor]:
    """PyTorch's fused convolution gradient: (input, weight, bias) where ``mask`` asks."""
    return torch.ops.aten.convolution_backward(
        grad_out, x, weight, bias_shape, [stride, stride], [padding, padding], [1, 1], False,
        [0, 0], 1, mask)


class _InputGradient(torch.autograd.Function):
    """``grad_x = convolution_backward(grad_y, x, W)``, linear in grad_y and W: its derivatives
    are the forward convolution (towards grad_y) and the ordinary weight gradient with the
    incoming gradient as input (towards W)."""

    @staticmethod
    def forward(ctx: FunctionCtx, grad_out: Tensor, x: Tensor, weight: Tensor, stride: int,
                padding: int) -> Tensor:
        ctx.save_for_backward(grad_out, weight)
        ctx.stride, ctx.padding = stride, padding
        return _backward(grad_out, x, weight, None, stride, padding, [True, False, False])[0]

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_grad_x: Tensor
                 ) -> tuple[Tensor | None, None, Tensor | None, None, None]:
        grad_out, weight = ctx.saved_tensors
        d_grad_out = d_weight = None
        if ctx.needs_input_grad[0]:
            d_grad_out = F.conv2d(grad_grad_x, weight, None, ctx.stride, ctx.padding)
        if ctx.needs_input_grad[2]:
            d_weight = _backward(grad_out, grad_grad_x, weight, None, ctx.stride, ctx.padding,
                                 [False, True, False])[1]
        return d_grad_out, None, d_weight, None, None


class _Conv2d(torch.autograd.Function):
    """``F.conv2d`` with the backward described in the module docstring."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, weight: Tensor, bias: Tensor | None, stride: int,
                padding: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        ctx.bias_shape = None if bias is None else list(bias.shape)
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx: FunctionCtx, grad_out: Tensor
                 ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None]:
        x, weight = ctx.saved_tensors
        if torch.is_grad_enabled() and _input_gradients_only:
            grad_x = (_InputGradient.apply(grad_out, x, weight, ctx.stride, ctx.padding)
                      if ctx.needs_input_grad[0] else None)
            return grad_x, None, None, None, None
        # gradients the mask leaves out come back as None
        grads = _backward(grad_out, x, weight, ctx.bias_shape, ctx.stride, ctx.padding,
                          list(ctx.needs_input_grad[:3]))
        return (*grads, None, None)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1,
           padding: int = 0) -> Tensor:
    """``F.conv2d`` with a cheaper second derivative. Under autocast the operands are cast
    here, so the saved tensors and the gradients computed from them share one dtype."""
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            return _Conv2d.apply(x, weight, bias, stride, padding)
    return _Conv2d.apply(x, weight, bias, stride, padding)

