"""Per-pixel interpolation of vertex and triangle-corner attributes."""

from __future__ import annotations

import jax.numpy as jnp

from ganfit_jax.render.raster import Framebuffer


def weighted_corners(bary, vals):
  """sum_k bary[..., k] * vals[..., k, :] for 3 corners, written out: an einsum lowers
  to a slow batched dot on CPU and a 3-long reduction to a slow reduce kernel."""
  if bary.shape[-1] != 3 or vals.shape[-2] != 3 or bary.shape[:-1] != vals.shape[:-2]:
    raise ValueError(f"bary must be (..., 3) and vals (..., 3, C) with the same leading shape, "
                     f"got {bary.shape} and {vals.shape}")
  return bary[..., 0, None] * vals[..., 0, :] + bary[..., 1, None] * vals[..., 1, :] + \
      bary[..., 2, None] * vals[..., 2, :]


def interpolate(bary, fb: Framebuffer, attributes, corner_index):
  """Interpolates attributes over the visible triangles.

  Args:
    bary: (H, W, 3) barycentrics from ``rasterize.barycentrics``.
    fb: the framebuffer.
    attributes: (N, C) values; N vertices (with ``corner_index = triangles``) or
      N per-corner values such as UVs (with ``corner_index = uv_triangles``), so
      that UV seams interpolate correctly.
    corner_index: (F, 3) int rows of ``attributes`` for each triangle corner.

  Returns:
    (H, W, C) interpolated values, 0 where there is no coverage.
  """
  if attributes.ndim != 2:
    raise ValueError(f"attributes must be (N, C), got {attributes.shape}")
  vals = attributes[corner_index[fb.triangle_id]]  # (H, W, 3, C)
  out = weighted_corners(bary, vals)
  return jnp.where(fb.mask[..., None], out, 0.0)
