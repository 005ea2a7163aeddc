"""Small layers shared by the converted networks."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp


class PReLU(nn.Module):
  """Per-channel PReLU (PyTorch ``nn.PReLU(C)`` / ONNX ``PRelu`` with a (C,) slope)."""
  init_value: float = 0.25

  @nn.compact
  def __call__(self, x):
    slope = self.param("negative_slope", nn.initializers.constant(self.init_value), (x.shape[-1],))
    return jnp.where(x >= 0, x, slope.reshape((1,) * (x.ndim - 1) + (-1,)) * x)


def batch_norm(eps: float, name: str):
  """Inference-mode BatchNorm (running statistics in the ``batch_stats`` collection)."""
  return nn.BatchNorm(use_running_average=True, epsilon=eps, momentum=0.9, name=name)


def flatten_nchw(x):
  """Flattens (B, H, W, C) in PyTorch's NCHW order, so converted fc weights apply unchanged."""
  return jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)


def _shifted_sum(xp, w, stride: int, out_h: int, out_w: int):
  """sum_ij xp[:, i + s*y, j + s*x, :] * w[i, j] over a k x k kernel w (k, k, C): a depthwise correlation."""
  k, s = w.shape[0], stride
  out = None
  for i in range(k):
    for j in range(k):
      term = xp[:, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s, :] * w[i, j][None, None, None, :]
      out = term if out is None else out + term
  return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def depthwise_conv(x, w, stride: int):
  """Depthwise k x k convolution, 'same' padding k // 2: x (B, H, W, C), w (k, k, C) -> (B, H', W', C).

  Written as k*k shifted, per-channel scaled copies, with a hand-written VJP in the same form
  (autodiff of the strided slices pads every copy to the full input, many times the forward's cost).
  """
  k = w.shape[0]
  p = k // 2
  _, h, wd, _ = x.shape
  xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  return _shifted_sum(xp, w, stride, (h + 2 * p - k) // stride + 1, (wd + 2 * p - k) // stride + 1)


def _depthwise_fwd(x, w, stride):
  return depthwise_conv(x, w, stride), (x, w)


def _depthwise_bwd(stride, res, g):
  x, w = res
  k, s = w.shape[0], stride
  p = k // 2
  _, h, wd, _ = x.shape
  ho, wo = g.shape[1:3]
  hp, wp = h + 2 * p, wd + 2 * p
  # the output's cotangent on the padded input's grid (zeros between strided samples), then a
  # stride-1 correlation with the flipped kernel gives the padded input's cotangent
  g_up = jax.lax.pad(g, jnp.zeros((), g.dtype), ((0, 0, 0), (0, 0, s - 1), (0, 0, s - 1), (0, 0, 0)))
  gh, gw = g_up.shape[1:3]
  gpad = jnp.pad(g_up, ((0, 0), (k - 1, hp - gh), (k - 1, wp - gw), (0, 0)))
  dxp = _shifted_sum(gpad, w[::-1, ::-1], 1, hp, wp)
  xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  dw = jnp.stack([jnp.stack([jnp.sum(xp[:, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s, :] * g, (0, 1, 2))
                             for j in range(k)]) for i in range(k)])
  return dxp[:, p:p + h, p:p + wd, :], dw


depthwise_conv.defvjp(_depthwise_fwd, _depthwise_bwd)


class DepthwiseConv(nn.Module):
  """Depthwise k x k convolution (no bias): :func:`depthwise_conv`.

  Same parameters as ``nn.Conv(C, (k, k), feature_group_count=C, use_bias=False)`` (kernel (k, k, 1, C)),
  same result, but XLA's CPU backend runs grouped convolutions an order of magnitude slower than the
  shifted-sum form, and the hand-written VJP avoids autodiff's padded copies (``benchmarks/identity.py
  --layers``; the numbers are in WORKSPACE.md, "Identity networks").
  """
  kernel_size: int = 3
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    w = self.param("kernel", nn.initializers.lecun_normal(), (self.kernel_size, self.kernel_size, 1, c))
    return depthwise_conv(x, w[:, :, 0, :], self.stride)
