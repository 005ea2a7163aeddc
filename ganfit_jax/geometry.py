"""Host-side (NumPy) geometry shared by the front-end, the outputs and the evaluation.

The traced, differentiable counterparts live with the code that differentiates them
(``morphable.vertex_normals``, ``face.align.similarity_transform_jax``); these are the one NumPy copy of each.

* :func:`umeyama`: least-squares similarity (or rigid) transform between corresponding points, any dimension
  (Umeyama 1991): the 2-D canvas alignment of the front-end and the 3-D alignment of the shape protocols.
* :func:`vertex_normals`: area-weighted unit vertex normals of a triangle mesh (the exports' normals and morph
  target deltas, the evaluation's meshes). Not trimesh's ``vertex_normals`` (angle-weighted): slower on the
  ICT mesh, which the GLB export pays once per morph target (WORKSPACE.md, "Exports").
* :func:`barycentric`: barycentric weights of points in triangles (UV transfer, the shape bound).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def umeyama(src, dst, scale: bool = True, weights: Optional[np.ndarray] = None) -> Tuple[float, np.ndarray, np.ndarray]:
  """Least-squares ``(s, R, t)`` with ``dst ~ s R src + t`` (no reflection).

  Args:
    src, dst: (N, D) corresponding points (float64 inside), N >= D.
    scale: False fixes s = 1 (rigid).
    weights: optional (N,) non-negative weights.

  Returns:
    s (float), R (D, D) rotation, t (D,).
  """
  src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
  if src.shape != dst.shape or src.ndim != 2 or len(src) < src.shape[1]:
    raise ValueError(f"umeyama needs two (N, D) arrays with N >= D, got {src.shape} and {dst.shape}")
  if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
    raise ValueError("umeyama: points contain NaN or infinity")
  d = src.shape[1]
  w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
  w = w / max(w.sum(), 1e-12)
  mu_s, mu_d = w @ src, w @ dst
  s0, d0 = src - mu_s, dst - mu_d
  cov = (d0 * w[:, None]).T @ s0
  u, sig, vt = np.linalg.svd(cov)
  e = np.eye(d)
  e[-1, -1] = np.sign(np.linalg.det(u @ vt)) or 1.0
  r = u @ e @ vt
  var = (w * (s0 * s0).sum(1)).sum()
  s = float(np.trace(np.diag(sig) @ e) / max(var, 1e-12)) if scale else 1.0
  return s, r, mu_d - s * r @ mu_s


def vertex_normals(verts, triangles) -> np.ndarray:
  """(V, 3) area-weighted unit vertex normals of a mesh (float64; zero for unused vertices)."""
  v = np.asarray(verts, np.float64)
  tri = np.asarray(triangles)
  fn = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])  # length = 2 * area
  corners = tri.reshape(-1)
  per_corner = np.repeat(fn, 3, axis=0)
  nrm = np.stack([np.bincount(corners, per_corner[:, c], minlength=len(v)) for c in range(3)], 1)
  return nrm / np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)


__all__ = ["umeyama", "vertex_normals"]


def barycentric(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
  """(N, 3) barycentric weights of points p (N, 3) in triangles (a, b, c) (each (N, 3)), clipped to the
  triangle and renormalised (points off a triangle's plane take their projection's weights)."""
  v0, v1, v2 = b - a, c - a, p - a
  d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
  d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
  den = np.maximum(d00 * d11 - d01 * d01, 1e-12)
  wb, wc = (d11 * d20 - d01 * d21) / den, (d00 * d21 - d01 * d20) / den
  w = np.clip(np.stack([1 - wb - wc, wb, wc], 1), 0, 1)
  return w / w.sum(1, keepdims=True)
