"""Visibility (no gradient) and differentiable, perspective-correct barycentrics.

Rasterisation is a z-buffer built by scatter-min: every triangle tests the
pixel centres of a fixed ``window x window`` box anchored at its on-screen
bounding box (static shapes, no per-pixel loop over triangles); later levels
give the largest remaining triangles bigger windows, so the few big triangles
of a mesh are not cut (see :func:`default_levels`). The key written per covered sample
packs a quantised depth (high bits) with the triangle id (low bits), so the
minimum key is the nearest surface, and its low bits name the triangle.

Everything here runs under ``jax.lax.stop_gradient``; gradients flow through
:func:`barycentrics`, which recomputes the pixel's barycentric coordinates
from the (differentiable) projected vertices of the triangle that won.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

_NEAR = 1.0  # mm: triangles with a vertex closer than this are skipped


class Framebuffer(NamedTuple):
  """Result of :func:`rasterize` for one image.

  triangle_id: (H, W) int32 id of the nearest triangle (0 where empty).
  mask: (H, W) bool coverage.
  truncated: () int32 number of front-facing triangles larger than the biggest
    window (their coverage is cut; raise ``large_window`` if this is not 0).
  """

  triangle_id: jnp.ndarray
  mask: jnp.ndarray
  truncated: jnp.ndarray


Levels = Tuple[Tuple[int, Optional[int]], ...]


def default_levels(height: int, width: int) -> Levels:
  """Window levels ``((window, count), ...)`` suited to ICT/BFM faces at this size.

  Level one tests a small window for every triangle; each later level takes
  the ``count`` largest triangles not yet handled with a bigger window. Sized
  from measured bounding-box extents of the ICT mean face (WORKSPACE.md).
  """
  size = max(height, width)
  w = lambda k: max(4, int(math.ceil(k * size / 224.0)))  # noqa: E731
  # the last level spans up to the whole image on small renders (tests, thumbnails)
  return ((w(4), None), (w(8), 4096), (w(16), 512), (max(w(48), min(size, 64)), 32))


def _cross2(a, b):
  return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _pixel_centres(h, w):
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) + 0.5, jnp.arange(w, dtype=jnp.float32) + 0.5,
                        indexing="ij")
  return jnp.stack([xs, ys], -1)


def _splat(keys, tv, td, area, ok, lo, idx, k, height, width, id_bits, dmin, dscale):
  """Scatter-min of one window pass. tv (N,3,2), td (N,3), lo (N,2) int, idx (N,) triangle ids."""
  off = jnp.arange(k, dtype=jnp.int32)
  ox, oy = jnp.meshgrid(off, off, indexing="xy")
  px = lo[:, 0, None, None] + ox[None]  # (N, k, k)
  py = lo[:, 1, None, None] + oy[None]
  p = jnp.stack([px, py], -1).astype(jnp.float32) + 0.5  # pixel centres
  v0, v1, v2 = (tv[:, i, None, None, :] for i in range(3))
  sgn = jnp.sign(area)[:, None, None]
  w0 = _cross2(v1 - p, v2 - p) * sgn
  w1 = _cross2(v2 - p, v0 - p) * sgn
  w2 = _cross2(v0 - p, v1 - p) * sgn
  tol = -1e-7 * jnp.abs(area)[:, None, None]
  inside = (w0 >= tol) & (w1 >= tol) & (w2 >= tol)
  inside &= (px >= 0) & (px < width) & (py >= 0) & (py < height) & ok[:, None, None]
  aa = jnp.abs(area)[:, None, None]
  b0, b1, b2 = w0 / aa, w1 / aa, w2 / aa
  inv_d = b0 / td[:, 0, None, None] + b1 / td[:, 1, None, None] + b2 / td[:, 2, None, None]
  depth = 1.0 / jnp.maximum(inv_d, 1e-12)
  # at most 24 bits so every level is exact in float32 (a rounded-up maximum
  # would overflow the 31-bit key and win every depth test)
  depth_bits = min(31 - id_bits, 24)
  q = jnp.clip((depth - dmin) * dscale, 0.0, 1.0) * ((1 << depth_bits) - 1)
  q = jnp.clip(q.astype(jnp.int32), 0, (1 << depth_bits) - 1)
  key = (q << id_bits) | idx[:, None, None]
  flat = jnp.where(inside, py * width + px, height * width)  # the dump slot
  return keys.at[flat.reshape(-1)].min(key.reshape(-1), mode="drop")


def rasterize(xy, depth, triangles, height: int, width: int, *, cull_backfaces: bool = True,
              levels: Optional[Levels] = None) -> Framebuffer:
  """Z-buffer visibility of a triangle mesh.

  Args:
    xy: (V, 2) projected vertices in pixels (see ``camera.project``).
    depth: (V,) vertex depths (mm, positive in front of the camera).
    triangles: (F, 3) int vertex indices, counter-clockwise seen from outside.
    height, width: image size.
    cull_backfaces: skip triangles facing away from the camera.
    levels: static window levels ``((window, count or None), ...)``; default
      :func:`default_levels`. A triangle whose box exceeds the last window it
      gets is cut, and counted in ``Framebuffer.truncated``.

  Returns:
    A :class:`Framebuffer`.
  """
  if xy.ndim != 2 or xy.shape[1] != 2 or depth.shape != xy.shape[:1]:
    raise ValueError(f"xy must be (V, 2) and depth (V,), got {xy.shape} and {depth.shape}")
  levels = tuple(levels or default_levels(height, width))
  xy = jax.lax.stop_gradient(xy)
  depth = jax.lax.stop_gradient(depth)
  f = triangles.shape[0]
  id_bits = max(1, int(math.ceil(math.log2(f + 1))))
  if id_bits > 24:
    raise ValueError(f"too many triangles ({f}) for the 31-bit depth/id key")

  tv = xy[triangles]  # (F, 3, 2)
  td = depth[triangles]  # (F, 3)
  area = _cross2(tv[:, 1] - tv[:, 0], tv[:, 2] - tv[:, 0])
  # Pixel y points down, so a counter-clockwise (outward) triangle that faces
  # the camera has negative signed area in pixel coordinates.
  facing = area < 0 if cull_backfaces else jnp.ones_like(area, bool)
  ok = facing & (jnp.abs(area) > 1e-9) & jnp.all(td > _NEAR, axis=1)
  ok &= jnp.all(jnp.isfinite(tv), axis=(1, 2))
  lo_f = jnp.ceil(jnp.min(tv, axis=1) - 0.5)
  hi_f = jnp.floor(jnp.max(tv, axis=1) - 0.5)
  screen_max = jnp.array([[width - 1, height - 1]], jnp.float32)
  lo_f = jnp.clip(lo_f, 0.0, screen_max)  # only the on-screen part of the box is tested
  hi_f = jnp.minimum(hi_f, screen_max)
  ok &= jnp.all(hi_f >= lo_f, axis=1)
  extent = jnp.where(ok, jnp.max(hi_f - lo_f, axis=1) + 1, 0.0)  # pixels spanned by the larger side
  lo = lo_f.astype(jnp.int32)

  valid_d = jnp.where(ok[:, None], td, jnp.nan)
  dmin = jnp.nan_to_num(jnp.nanmin(valid_d), nan=0.0)
  dmax = jnp.nan_to_num(jnp.nanmax(valid_d), nan=1.0)
  dscale = 1.0 / jnp.maximum(dmax - dmin, 1e-6)

  keys = jnp.full((height * width + 1,), jnp.iinfo(jnp.int32).max, jnp.int32)
  remaining = ok
  for window, count in levels:
    if count is None or count >= f:
      sel = jnp.arange(f, dtype=jnp.int32)
    else:
      _, sel = jax.lax.top_k(jnp.where(remaining, extent, -1.0), count)
      sel = sel.astype(jnp.int32)
    take = remaining[sel]
    keys = _splat(keys, tv[sel], td[sel], area[sel], take, lo[sel], sel, window, height, width,
                  id_bits, dmin, dscale)
    remaining = remaining.at[sel].set(remaining[sel] & ~(take & (extent[sel] <= window)))
  truncated = jnp.sum(remaining)

  keys = keys[:-1].reshape(height, width)
  mask = keys != jnp.iinfo(jnp.int32).max
  tri = jnp.where(mask, keys & ((1 << id_bits) - 1), 0)
  return Framebuffer(triangle_id=tri.astype(jnp.int32), mask=mask, truncated=truncated.astype(jnp.int32))


def barycentrics(fb: Framebuffer, xy, depth, triangles):
  """Perspective-correct barycentrics (H, W, 3) of each pixel centre; differentiable.

  Gradients flow to ``xy`` and ``depth`` (and through them to vertices and
  camera); pixels with no coverage get zeros and zero gradients.
  """
  h, w = fb.mask.shape
  tri = triangles[fb.triangle_id]  # (H, W, 3)
  v = xy[tri]  # (H, W, 3, 2)
  d = depth[tri]  # (H, W, 3)
  p = _pixel_centres(h, w)
  v0, v1, v2 = v[..., 0, :], v[..., 1, :], v[..., 2, :]
  area = _cross2(v1 - v0, v2 - v0)
  m = fb.mask
  area = jnp.where(m & (jnp.abs(area) > 1e-12), area, 1.0)
  b0 = _cross2(v1 - p, v2 - p) / area
  b1 = _cross2(v2 - p, v0 - p) / area
  b = jnp.stack([b0, b1, 1.0 - b0 - b1], -1)
  d = jnp.where(m[..., None], jnp.maximum(d, _NEAR), 1.0)
  bp = b / d
  s = jnp.sum(bp, -1, keepdims=True)
  bp = bp / jnp.where(m[..., None] & (jnp.abs(s) > 1e-12), s, 1.0)
  return jnp.where(m[..., None], bp, 0.0)


def pixel_depth(bary, fb: Framebuffer, depth, triangles):
  """(H, W) depth of the visible surface (0 where empty); differentiable."""
  d = depth[triangles[fb.triangle_id]]
  return jnp.where(fb.mask, jnp.sum(bary * d, -1), 0.0)


__all__ = ["Framebuffer", "rasterize", "barycentrics", "pixel_depth", "default_levels"]
