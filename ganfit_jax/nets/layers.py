"""Small layers shared by the converted networks."""

from __future__ import annotations

import flax.linen as nn
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
