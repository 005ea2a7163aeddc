"""Visibility (no gradient) and differentiable, perspective-correct barycentrics.

Rasterisation is a z-buffer built by scatter-min, with static shapes and no
per-pixel loop over triangles: every triangle tests the pixel centres of a
``window x window`` box anchored at its on-screen bounding box. Triangles are
bucketed by the size of that box onto a ladder of windows (1, 2, 3, 4, 6, 8,
12, 16, 24, ... up to the image side; see :func:`window_ladder`), so each one is
tested with the smallest window that holds it, and nothing is ever cut: a
triangle covering the whole image simply lands in the last bucket. Each bucket
is processed in fixed-size chunks (about ``chunk_samples`` pixel tests each)
by a loop whose trip count is the bucket's size, so the work follows the mesh's
on-screen triangle sizes, not a worst case.

The key written per covered sample packs a quantised depth (high bits) with
the triangle id (low bits), so the minimum key is the nearest surface, and its
low bits name the triangle. Per-triangle terms (vertices, orientation, scaled
inverse depths) are precomputed as contiguous rows, which lets XLA vectorise
the per-sample edge tests (faster on CPU than indexing the (F, 3, 2) array; WORKSPACE.md, "Renderer").

Everything here runs under ``jax.lax.stop_gradient``; gradients flow through
:func:`barycentrics`, which recomputes the pixel's barycentric coordinates
from the (differentiable) projected vertices of the triangle that won.
"""


import math
from typing import NamedTuple, Tuple

import jax
import jax.numpy as jnp

_NEAR = 1.0  # mm: triangles with a vertex closer than this are skipped


class Framebuffer(NamedTuple):
  """Result of :func:`rasterize` for one image.

  triangle_id: (H, W) int32 id of the nearest triangle (0 where empty).
  mask: (H, W) bool coverage.
  """

  triangle_id: jnp.ndarray
  mask: jnp.ndarray


def window_ladder(height: int, width: int) -> Tuple[int, ...]:
  """Window sizes (pixels) that triangles are bucketed onto; the last is the image side."""
  if height < 1 or width < 1:
    raise ValueError(f"image size must be positive, got {height}x{width}")
  size = max(height, width)
  ladder = [1, 2, 3, 4, 6, 8, 12, 16]
  while ladder[-1] < size:
    ladder.append(ladder[-2] * 2)  # 24, 32, 48, 64, 96, ...
  return tuple(w for w in ladder if w < size) + (size,)


def _cross2(a, b):
  return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _pixel_centres(h, w):
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) + 0.5, jnp.arange(w, dtype=jnp.float32) + 0.5,
                        indexing="ij")
  return jnp.stack([xs, ys], -1)


def _splat(keys, coef, ints, live, k, height, width, id_bits, imax, iscale):
  """Scatter-min of one chunk of triangles, each testing a k x k window.

  coef (11, N): x0, x1, x2, y0, y1, y2, orientation sign, edge tolerance,
  1/(|area| d_i) for i = 0..2;
  ints (3, N): window corner x, y and triangle id; live (N,) bool: in this chunk's bucket.
  """
  x0, x1, x2, y0, y1, y2, sgn, tol, c0, c1, c2 = (c[None] for c in coef)
  lx, ly, tid = (c[None] for c in ints)
  live = live[None]
  off = jnp.arange(k, dtype=jnp.int32)
  oy, ox = (a.reshape(-1, 1) for a in jnp.meshgrid(off, off, indexing="ij"))
  px, py = lx + ox, ly + oy  # (k*k, N)
  pxf = px.astype(jnp.float32) + 0.5
  pyf = py.astype(jnp.float32) + 0.5
  dx0, dx1, dx2 = x0 - pxf, x1 - pxf, x2 - pxf
  dy0, dy1, dy2 = y0 - pyf, y1 - pyf, y2 - pyf
  w0 = (dx1 * dy2 - dy1 * dx2) * sgn
  w1 = (dx2 * dy0 - dy2 * dx0) * sgn
  w2 = (dx0 * dy1 - dy0 * dx1) * sgn
  inside = (w0 >= tol) & (w1 >= tol) & (w2 >= tol) & (px < width) & (py < height) & live
  # perspective-correct inverse depth; keys quantise it directly (nearer = larger
  # 1/z = smaller key), which saves a division per sample
  inv_d = w0 * c0 + w1 * c1 + w2 * c2
  # at most 24 bits so every level is exact in float32 (a rounded-up maximum
  # would overflow the 31-bit key and win every depth test)
  depth_bits = min(31 - id_bits, 24)
  q = jnp.clip((imax - inv_d) * iscale, 0.0, 1.0) * ((1 << depth_bits) - 1)
  q = jnp.clip(q.astype(jnp.int32), 0, (1 << depth_bits) - 1)
  key = jnp.where(inside, (q << id_bits) | tid, jnp.iinfo(jnp.int32).max)
  # samples off the image carry the maximum key, so clamping their index is a no-op write
  flat = jnp.minimum(py, height - 1) * width + jnp.minimum(px, width - 1)
  return keys.at[flat.reshape(-1)].min(key.reshape(-1), mode="promise_in_bounds")


def rasterize(xy, depth, triangles, height: int, width: int, *, cull_backfaces: bool = True,
              chunk_samples: int = 8192) -> Framebuffer:
  """Z-buffer visibility of a triangle mesh.

  Args:
    xy: (V, 2) projected vertices in pixels (see ``camera.project``).
    depth: (V,) vertex depths (mm, positive in front of the camera).
    triangles: (F, 3) int vertex indices, counter-clockwise seen from outside.
    height, width: image size.
    cull_backfaces: skip triangles facing away from the camera.
    chunk_samples: static pixel tests per loop iteration (a speed knob; the
      result does not depend on it).

  Returns:
    A :class:`Framebuffer`.
  """
  if xy.ndim != 2 or xy.shape[1] != 2 or depth.shape != xy.shape[:1]:
    raise ValueError(f"xy must be (V, 2) and depth (V,), got {xy.shape} and {depth.shape}")
  if chunk_samples < 1:
    raise ValueError(f"chunk_samples must be >= 1, got {chunk_samples}")
  xy = jax.lax.stop_gradient(xy)
  depth = jax.lax.stop_gradient(depth)
  f = triangles.shape[0]
  id_bits = max(1, int(math.ceil(math.log2(f + 1))))
  if id_bits > 24:
    raise ValueError(f"too many triangles ({f}) for the 31-bit depth/id key")
  ladder = window_ladder(height, width)
  nl = len(ladder)
  if id_bits + nl.bit_length() > 31:
    raise ValueError(f"too many triangles ({f}) for a {height}x{width} image's bucket/id sort key")

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
  extent = jnp.max(hi_f - lo_f, axis=1) + 1  # pixels spanned by the larger side, 1 .. image side

  valid_d = jnp.where(ok[:, None], td, jnp.nan)
  dmin = jnp.nan_to_num(jnp.nanmin(valid_d), nan=1.0)
  dmax = jnp.nan_to_num(jnp.nanmax(valid_d), nan=2.0)
  imax = 1.0 / dmin  # inverse-depth range of the drawn triangles (depths > NEAR > 0)
  iscale = 1.0 / jnp.maximum(imax - 1.0 / dmax, 1e-12)

  # bucket each triangle onto the smallest window that holds it; skipped ones go last
  bucket = jnp.where(ok, jnp.searchsorted(jnp.asarray(ladder, jnp.float32), extent, side="left"), nl)
  # a single-operand sort of (bucket, id) keys: cheaper than a stable argsort on CPU
  # (keys are unique, so an unstable sort gives the same order, faster)
  sorted_keys = jax.lax.sort((bucket.astype(jnp.int32) << id_bits) | jnp.arange(f, dtype=jnp.int32),
                             is_stable=False)
  order = sorted_keys & ((1 << id_bits) - 1)
  # where each bucket begins in the sorted keys (nl + 1 binary searches)
  bounds = jnp.searchsorted(sorted_keys, jnp.arange(nl + 1, dtype=jnp.int32) << id_bits).astype(jnp.int32)
  starts, counts = bounds[:-1], bounds[1:] - bounds[:-1]

  inv_a = 1.0 / jnp.where(ok, jnp.abs(area), 1.0)
  safe_d = jnp.where(ok[:, None], td, 1.0)
  coef = jnp.stack([tv[:, 0, 0], tv[:, 1, 0], tv[:, 2, 0], tv[:, 0, 1], tv[:, 1, 1], tv[:, 2, 1],
                    jnp.sign(area), -1e-7 * jnp.abs(area), inv_a / safe_d[:, 0], inv_a / safe_d[:, 1],
                    inv_a / safe_d[:, 2]])
  ints = jnp.stack([lo_f[:, 0].astype(jnp.int32), lo_f[:, 1].astype(jnp.int32),
                    jnp.arange(f, dtype=jnp.int32)])
  chunks = [max(1, min(f, chunk_samples // (w * w))) for w in ladder]
  pad = max(chunks)
  # skipped triangles sit in bucket nl, never visited; pad columns lie past every bucket's end
  coef = jnp.pad(coef[:, order], ((0, 0), (0, pad)))
  ints = jnp.pad(ints[:, order], ((0, 0), (0, pad)))
  # materialise the rows once, so the per-sample loops read contiguous memory
  coef, ints = jax.lax.optimization_barrier((coef, ints))

  keys = jnp.full((height * width,), jnp.iinfo(jnp.int32).max, jnp.int32)
  for level, (window, chunk) in enumerate(zip(ladder, chunks)):
    start, end = starts[level], starts[level] + counts[level]

    def body(j, keys, start=start, end=end, window=window, chunk=chunk):
      at = start + j * chunk
      cf = jax.lax.dynamic_slice_in_dim(coef, at, chunk, axis=1)
      it = jax.lax.dynamic_slice_in_dim(ints, at, chunk, axis=1)
      live = (at + jnp.arange(chunk)) < end  # later columns belong to the next bucket
      return _splat(keys, cf, it, live, window, height, width, id_bits, imax, iscale)

    keys = jax.lax.fori_loop(0, (counts[level] + chunk - 1) // chunk, body, keys)

  keys = keys.reshape(height, width)
  mask = keys != jnp.iinfo(jnp.int32).max
  tri = jnp.where(mask, keys & ((1 << id_bits) - 1), 0)
  return Framebuffer(triangle_id=tri.astype(jnp.int32), mask=mask)


def barycentrics(fb: Framebuffer, xy, depth, triangles):
  """Perspective-correct barycentrics (H, W, 3) of each pixel centre; differentiable.

  Gradients flow to ``xy`` and ``depth`` (and through them to vertices and
  camera); pixels with no coverage get zeros and zero gradients.
  """
  corners = triangles[fb.triangle_id]  # (H, W, 3)
  return corner_barycentrics(fb.mask, xy[corners], depth[corners])


def corner_barycentrics(mask, v, d):
  """:func:`barycentrics` from gathered corners: v (H, W, 3, 2) pixels, d (H, W, 3) depths."""
  h, w = mask.shape
  if v.shape != (h, w, 3, 2) or d.shape != (h, w, 3):
    raise ValueError(f"corners must be (H, W, 3, 2) pixels and (H, W, 3) depths for a {h}x{w} mask, "
                     f"got {v.shape} and {d.shape}")
  p = _pixel_centres(h, w)
  v0, v1, v2 = v[..., 0, :], v[..., 1, :], v[..., 2, :]
  area = _cross2(v1 - v0, v2 - v0)
  m = mask
  area = jnp.where(m & (jnp.abs(area) > 1e-12), area, 1.0)
  b0 = _cross2(v1 - p, v2 - p) / area
  b1 = _cross2(v2 - p, v0 - p) / area
  b = jnp.stack([b0, b1, 1.0 - b0 - b1], -1)
  d = jnp.where(m[..., None], jnp.maximum(d, _NEAR), 1.0)
  bp = b / d
  s = bp[..., 0:1] + bp[..., 1:2] + bp[..., 2:3]
  bp = bp / jnp.where(m[..., None] & (jnp.abs(s) > 1e-12), s, 1.0)
  return jnp.where(m[..., None], bp, 0.0)


def pixel_depth(bary, fb: Framebuffer, depth, triangles):
  """(H, W) depth of the visible surface (0 where empty); differentiable."""
  d = depth[triangles[fb.triangle_id]]
  return jnp.where(fb.mask, bary[..., 0] * d[..., 0] + bary[..., 1] * d[..., 1] + bary[..., 2] * d[..., 2], 0.0)


__all__ = ["Framebuffer", "rasterize", "barycentrics", "corner_barycentrics", "pixel_depth", "window_ladder"]
