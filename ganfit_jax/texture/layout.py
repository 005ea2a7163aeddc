"""The UV layout of a morphable model, per texel: triangle, barycentrics, mirror, material.

Texture convention (shared with ``render.texture.sample``): a (T, T, 3) map,
row 0 at v = 1, texel (i, j) centred at u = (j + 0.5) / T, v = 1 - (i + 0.5) / T.
Only UV tile [0, 1]^2 is textured (ICT-FaceKit's head/neck UDIM tile [1, 2] is not).

* :func:`texel_map` rasterises the UV layout once: for every texel its triangle
  and barycentrics, so its 3D point on any mesh of the model is a weighted sum
  of three vertices; skin triangles take precedence over eye caps where the
  two overlap (the caps reach a little under the eyelids).
* :func:`vertex_mirror` / ``TexelMap.mirror``: the left-right symmetry of the
  model (x -> -x on the mean shape), as index maps; mirroring twice is the identity.
* :func:`eye_fill`: fixed sclera / iris / pupil colours for the eye texels,
  used where no photo texel is known (a texture model trained on face charts
  has never seen the eyes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import io
import os
from typing import Optional

import jax.numpy as jnp
import numpy as np

from ganfit_jax import morphable
from ganfit_jax import numerics as gmath
from ganfit_jax.types import MATERIAL_SKIN, MorphableModel

# RGB in [0, 1] of the eye where no photo texel is known, and the ring radii as fractions of the eye
# disc (the disc's rim lies 55 degrees from the gaze axis: formats.ict.eye_caps; an iris of ~6 mm radius
# on a 16 mm eyeball is sin(22 deg) / sin(55 deg) = 0.46 of it).
SCLERA_RGB, IRIS_RGB, PUPIL_RGB = (0.80, 0.76, 0.72), (0.33, 0.23, 0.16), (0.05, 0.04, 0.04)
IRIS_RADIUS, PUPIL_RADIUS = 0.46, 0.18


@dataclasses.dataclass(frozen=True)
class TexelMap:
  """Per-texel geometry of a UV layout at resolution ``size`` (numpy arrays).

  triangle: (T, T) int32 triangle index; bary: (T, T, 3) barycentrics;
  mask: (T, T) bool, texel inside a UV triangle of tile [0, 1]^2;
  mirror: (T, T) int32 flat index of the mirrored texel (-1 if none);
  material: (T, T) int32 material code (``types.MATERIAL_*``) of each texel's triangle.
  """
  size: int
  triangle: np.ndarray
  bary: np.ndarray
  mask: np.ndarray
  mirror: np.ndarray
  material: np.ndarray

  @property
  def skin(self) -> np.ndarray:
    """(T, T) bool: chart texels that the texture model colours."""
    return self.mask & (self.material == MATERIAL_SKIN)


def texel_centres_uv(size: int) -> np.ndarray:
  j, i = np.meshgrid(np.arange(size), np.arange(size))
  return np.stack([(j + 0.5) / size, 1.0 - (i + 0.5) / size], -1).astype(np.float32)


def triangle_materials(model: MorphableModel) -> np.ndarray:
  """(F,) material of each triangle: the most frequent of its corners' (skin if tied)."""
  m = np.asarray(model.material)[np.asarray(model.triangles)]  # (F, 3)
  out = np.where((m[:, 1] == m[:, 2]) & (m[:, 0] != m[:, 1]), m[:, 1], m[:, 0])
  return out.astype(np.int32)


def rasterize_uv(uv: np.ndarray, uv_triangles: np.ndarray, size: int, priority: np.ndarray):
  """Rasterises UV triangles at texel centres (numpy): (triangle (T, T), bary (T, T, 3), mask (T, T)).

  A texel centre is inside a triangle when all three edge functions are >= 0 (either winding). Where
  triangles overlap, the lowest ``priority`` (F,) wins, then the lowest triangle index.
  """
  uv = np.asarray(uv, np.float64)
  tri = np.asarray(uv_triangles, np.int64)
  p = np.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size], -1)[tri]  # (F, 3, 2) texel units, y down
  lo = np.clip(np.ceil(p.min(1) - 0.5), 0, size - 1).astype(np.int64)
  hi = np.clip(np.floor(p.max(1) - 0.5), -1, size - 1).astype(np.int64)
  ext = np.maximum(hi - lo + 1, 0)  # (F, 2) texels spanned in x and y
  count = ext[:, 0] * ext[:, 1]
  f = np.repeat(np.arange(len(tri)), count)  # one row per candidate texel
  k = np.arange(len(f)) - np.repeat(np.cumsum(count) - count, count)
  x = lo[f, 0] + k % np.maximum(ext[f, 0], 1)
  y = lo[f, 1] + k // np.maximum(ext[f, 0], 1)
  c = np.stack([x + 0.5, y + 0.5], -1)
  a, b, d = p[f, 0], p[f, 1], p[f, 2]
  cross = lambda u, v: u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]  # noqa: E731
  area = cross(b - a, d - a)
  ok = np.abs(area) > 1e-12
  sa = np.where(ok, area, 1.0)
  w0, w1 = cross(b - c, d - c) / sa, cross(d - c, a - c) / sa
  w2 = 1.0 - w0 - w1
  inside = ok & (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
  f, x, y, w = f[inside], x[inside], y[inside], np.stack([w0, w1, w2], -1)[inside]
  # resolve overlaps: sort by (texel, priority, triangle) and keep each texel's first
  order = np.lexsort((f, np.asarray(priority)[f], y * size + x))
  f, x, y, w = f[order], x[order], y[order], w[order]
  first = np.ones(len(f), bool)
  first[1:] = (y * size + x)[1:] != (y * size + x)[:-1]
  f, x, y, w = f[first], x[first], y[first], w[first]
  triangle = np.zeros((size, size), np.int32)
  bary = np.zeros((size, size, 3), np.float32)
  mask = np.zeros((size, size), bool)
  triangle[y, x], bary[y, x], mask[y, x] = f, w, True
  return triangle, bary, mask


def _rasterize_uv(model: MorphableModel, size: int):
  # skin triangles take precedence over eye caps (both live in tile [0, 1]^2)
  return rasterize_uv(model.uv, model.uv_triangles, size, (triangle_materials(model) != MATERIAL_SKIN).astype(int))


def vertex_mirror(model: MorphableModel) -> np.ndarray:
  """(V,) index of each vertex's mirror image (x -> -x on the mean shape); -1 if none within 1 mm.

  Only mutual nearest neighbours are kept, so ``m[m[i]] == i`` wherever ``m[i] >= 0``.
  """
  from scipy.spatial import cKDTree
  mean = np.asarray(model.mean, np.float64)
  d, nn = cKDTree(mean).query(mean * np.array([-1.0, 1.0, 1.0]))
  ok = (d < 1.0) & (nn[nn] == np.arange(len(nn)))
  return np.where(ok, nn, -1).astype(np.int32)


def texel_points(model_vertices, tmap: TexelMap, triangles):
  """(T, T, 3) 3D points of the texels on a mesh (zeros outside the chart). NumPy vertices (e.g. the
  model's mean, when a layout is built on the host) give a NumPy result; others (traced) a jax one."""
  xp = np if isinstance(model_vertices, np.ndarray) else jnp
  tri = xp.asarray(triangles)[xp.asarray(tmap.triangle)]  # (T, T, 3)
  p = xp.sum(xp.asarray(tmap.bary)[..., None] * model_vertices[tri], -2)
  return xp.where(xp.asarray(tmap.mask)[..., None], p, 0.0)


def _texel_mirror(model: MorphableModel, tri, bary, mask, size: int) -> np.ndarray:
  """Mirror texel of each texel: nearest texel (on the mean shape) to its x-mirrored 3D point,
  kept only when mutual and within one texel's 3D spacing."""
  from scipy.spatial import cKDTree
  tm = TexelMap(size, tri, bary, mask, np.full((size, size), -1, np.int32), np.zeros((size, size), np.int32))
  pts = texel_points(np.asarray(model.mean), tm, model.triangles).reshape(-1, 3)
  valid = np.flatnonzero(mask.ravel())
  tree = cKDTree(pts[valid])
  d, j = tree.query(pts[valid] * np.array([-1.0, 1.0, 1.0]))
  target = valid[j]
  mirror = np.full(size * size, -1, np.int64)
  mirror[valid] = target
  spacing = np.median(tree.query(pts[valid], k=2)[0][:, 1])
  ok = np.zeros(size * size, bool)
  ok[valid] = (mirror[target] == valid) & (d < 2.0 * spacing + 1e-3)
  return np.where(ok, mirror, -1).reshape(size, size).astype(np.int32)


_CACHE: dict = {}


def _compute_texel_map(model: MorphableModel, size: int) -> TexelMap:
  tri, bary, mask = _rasterize_uv(model, size)
  mirror = _texel_mirror(model, tri, bary, mask, size)
  material = np.where(mask, triangle_materials(model)[tri], MATERIAL_SKIN).astype(np.int32)
  return TexelMap(size=size, triangle=tri, bary=bary.astype(np.float32), mask=mask, mirror=mirror,
                  material=material)


def _layout_digest(model: MorphableModel, size: int) -> str:
  """sha256 of everything a texel map is computed from (UV, triangles, materials, mean shape, size)."""
  h = hashlib.sha256(str(int(size)).encode())
  for a in (model.uv, model.triangles, model.material, model.mean):
    a = np.ascontiguousarray(np.asarray(a))
    h.update(f"{a.dtype}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()[:32]


def _stored(path: str) -> Optional[TexelMap]:
  try:
    with np.load(path) as z:
      return TexelMap(size=int(z["size"]), **{f: z[f] for f in _FIELDS})
  except Exception:  # noqa: BLE001  (missing, truncated or foreign: compute again)
    return None


_FIELDS = ("triangle", "bary", "mask", "mirror", "material")


def texel_map(model: MorphableModel, size: int = 128) -> TexelMap:
  """The UV layout's per-texel geometry and mirror map (computed once per model and size).

  Kept in memory, and on disk beside the exported programs when :mod:`ganfit_jax.compiled` has a disk
  folder (the tools turn it on): the mirror search takes seconds, and a warm run then only reads a file
  (one file per model layout, size and package version; another version's file is removed when this one is
  written).
  """
  from ganfit_jax import compiled
  key = _layout_digest(model, int(size))
  if key in _CACHE:
    return _CACHE[key]
  folder = compiled.disk_folder()
  path = None if folder is None else os.path.join(
      folder, f"texel_map-{int(size)}-{key}-{compiled.code_version()[:16]}.npz")
  tmap = None if path is None else _stored(path)
  if tmap is None:
    tmap = _compute_texel_map(model, int(size))
    if path is not None:
      from ganfit_jax.files import atomic_write
      buf = io.BytesIO()
      np.savez(buf, size=tmap.size, **{f: getattr(tmap, f) for f in _FIELDS})
      os.makedirs(folder, exist_ok=True)
      atomic_write(path, buf.getvalue(), "wb")
      # the same layout stored by another version of the package is stale: removed (a few MB each)
      for old in glob.glob(os.path.join(folder, f"texel_map-{int(size)}-{key}-*.npz")):
        if old != path:
          with contextlib.suppress(OSError):
            os.remove(old)
  _CACHE[key] = tmap
  return tmap


def texel_normals(vertices, triangles, tmap: TexelMap):
  vn = morphable.vertex_normals(vertices, triangles)
  tri = jnp.asarray(triangles)[jnp.asarray(tmap.triangle)]
  return gmath.safe_normalize(jnp.sum(jnp.asarray(tmap.bary)[..., None] * vn[tri], -2))




def eye_fill(tmap: TexelMap):
  """(colour (T, T, 3) float32, mask (T, T) bool): fixed sclera / iris / pupil colours of the eye texels.

  Each eye's texels form a disc (one per half of the tile); rings at
  ``IRIS_RADIUS`` and ``PUPIL_RADIUS`` of its radius, with a one-texel soft edge.
  """
  t = tmap.size
  eye = tmap.mask & (tmap.material != MATERIAL_SKIN)
  colour = np.zeros((t, t, 3), np.float32)
  jj, ii = np.meshgrid(np.arange(t), np.arange(t))
  for half in (jj < t // 2, jj >= t // 2):
    m = eye & half
    if not m.any():
      continue
    ci, cj = ii[m].mean(), jj[m].mean()
    r = np.hypot(ii - ci, jj - cj)
    rad = max(r[m].max(), 1.0)
    iris = np.clip((IRIS_RADIUS * rad - r) + 0.5, 0.0, 1.0)[..., None]
    pupil = np.clip((PUPIL_RADIUS * rad - r) + 0.5, 0.0, 1.0)[..., None]
    c = np.asarray(SCLERA_RGB) * (1 - iris) + np.asarray(IRIS_RGB) * iris
    c = c * (1 - pupil) + np.asarray(PUPIL_RGB) * pupil
    colour[m] = c[m]
  return colour, eye
