"""A 2-D convolution whose input gradient is cheap to differentiate again.

The WGAN-GP critic step differentiates the critic's input gradient once more (a double
backward). PyTorch's built-in second derivative of a convolution computes the weight gradient
as a convolution with a feature-map-sized kernel over batch-transposed copies: on CPU about 40 %
as fast as its ordinary weight-gradient kernel, plus the transposing copies, about a tenth of a
16 px training step. Here the input gradient is its own autograd node whose derivatives call
the ordinary kernels (``conv2d`` and ``convolution_backward``): same numbers up to float
rounding; training steps are faster, most at 64 px (``benchmarks/bench_train.py --compare
stock_conv``; figures in benchmarks/README.md).

Inside ``input_gradients_only()`` (what ``losses.gradient_penalty`` uses around its
``torch.autograd.grad(..., create_graph=True)``) a convolution's backward builds that input
gradient node and skips the weight and bias gradients, which that call does not ask for.
Elsewhere a graph-building backward falls back to PyTorch's own differentiable formula, so any
other higher-order use stays correct; a plain backward is PyTorch's single fused call.
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
    """Graph-building backward passes inside compute only input gradients of convolutions.

    For ``torch.autograd.grad(outputs, inputs=images, create_graph=True)`` where only the
    images' gradient is wanted (the gradient penalty); weight and bias gradients come back None.
    """
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
    """``grad_x = convolution_backward(grad_y, x, W)`` as a node with ordinary-kernel derivatives.

    grad_x is linear in grad_y and in W: its derivative towards grad_y is the forward
    convolution, towards W the ordinary weight gradient with the incoming gradient as input.
    """

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
    """``F.conv2d(x, weight, bias, stride, padding)`` with a cheaper second derivative.

    Under autocast the operands are cast here, so that the saved tensors and the gradients
    computed from them share one dtype.
    """
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            return _Conv2d.apply(x, weight, bias, stride, padding)
    return _Conv2d.apply(x, weight, bias, stride, padding)

