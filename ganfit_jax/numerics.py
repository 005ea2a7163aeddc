"""Numerically safe primitives with well-defined gradients at the singular points."""

from __future__ import annotations

import jax
import jax.numpy as jnp

ZERO_SQ = 1e-12  # squared length below which a vector counts as zero (safe_normalize, shading)


@jax.custom_jvp
def safe_sqrt(x):
  """sqrt(max(x, 0)) whose derivative at 0 is 0 instead of inf."""
  return jnp.sqrt(jnp.maximum(x, 0.0))


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  y = safe_sqrt(x)
  dy = jnp.where(y > 0, dx / (2.0 * jnp.where(y > 0, y, 1.0)), 0.0)
  return y, dy


def sum_last(x, keepdims=False):
  """Sum over the last axis; written out as adds when it is short (<= 8).

  XLA's CPU reduce kernels are slow on 3-long axes (per-pixel dot products of
  vectors, barycentric sums): the unrolled form fuses with its neighbours.
  """
  if x.shape[-1] > 8:
    return jnp.sum(x, -1, keepdims=keepdims)
  out = x[..., 0]
  for i in range(1, x.shape[-1]):
    out = out + x[..., i]
  return out[..., None] if keepdims else out


def _sum_axis(x, axis, keepdims):
  if axis in (-1, x.ndim - 1):
    return sum_last(x, keepdims)
  return jnp.sum(x, axis=axis, keepdims=keepdims)


def safe_norm(x, axis=-1, keepdims=False):
  """Euclidean norm with a zero (not NaN) gradient at the origin."""
  return safe_sqrt(_sum_axis(x * x, axis, keepdims))


def cosine(a, b, axis=-1):
  """Cosine similarity along ``axis``; 0 (not NaN) when either vector is zero."""
  return _sum_axis(a * b, axis, False) / (safe_norm(a, axis) * safe_norm(b, axis) + 1e-12)


def safe_normalize(x, axis=-1, eps=ZERO_SQ):
  """x / |x|; returns 0 (and finite gradients) for a zero vector."""
  sq = _sum_axis(x * x, axis, True)
  ok = sq > eps
  inv = jax.lax.rsqrt(jnp.where(ok, sq, 1.0))
  return jnp.where(ok, x * inv, 0.0)


def safe_div(a, b, eps=1e-10):
  """a / b with b pushed away from 0 (sign-preserving); finite gradients everywhere."""
  b_safe = jnp.where(jnp.abs(b) < eps, jnp.where(b < 0, -eps, eps), b)
  return a / b_safe


def rotation_matrix(yaw, pitch=0.0, roll=0.0):
  """(3, 3) rotation R = Rz(roll) Ry(yaw) Rx(pitch); angles in radians."""
  cy, sy = jnp.cos(yaw), jnp.sin(yaw)
  cp, sp = jnp.cos(pitch), jnp.sin(pitch)
  cr, sr = jnp.cos(roll), jnp.sin(roll)
  one, zero = jnp.ones_like(cy), jnp.zeros_like(cy)
  rx = jnp.stack([jnp.stack([one, zero, zero]), jnp.stack([zero, cp, -sp]), jnp.stack([zero, sp, cp])])
  ry = jnp.stack([jnp.stack([cy, zero, sy]), jnp.stack([zero, one, zero]), jnp.stack([-sy, zero, cy])])
  rz = jnp.stack([jnp.stack([cr, -sr, zero]), jnp.stack([sr, cr, zero]), jnp.stack([zero, zero, one])])
  return rz @ ry @ rx
