"""Shape error of a reconstructed mesh against a 3D scan: alignment, exact point-to-surface distances, protocols.

Distances are from points to the closest point on a triangle SURFACE (not the
nearest vertex): :func:`closest_points` finds, for every query point, every
triangle that can hold its closest point (a ``scipy.spatial.cKDTree`` over
triangle centroids, searched within the nearest-vertex distance plus the
largest centroid-to-corner radius, so no candidate is missed) and evaluates
the exact point-triangle distance for all of them in vectorised numpy
(Ericson, *Real-Time Collision Detection*, 5.1.5). Why not a library:
trimesh's ``closest_point`` needs the ``rtree`` native package for the same
query; this keeps the project on numpy/scipy and is tested against brute force.

Alignment: :func:`umeyama` (least-squares similarity or rigid transform from
corresponding points), then :func:`icp` (iterated closest points on the
surface, similarity or rigid, with the worst 10% of pairs trimmed).

Protocols (units: millimetres), each documenting its conventions:
:func:`now_protocol`, :func:`micc_protocol`, :func:`region_protocol`.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple, Union

import numpy as np

from ganfit_jax import geometry
from ganfit_jax.geometry import umeyama  # noqa: F401  (part of this module's API: the alignment it uses)


@dataclasses.dataclass(frozen=True)
class Mesh:
  """A triangle mesh (numpy): vertices (V, 3) in mm, triangles (F, 3) int (may be empty: a point cloud)."""
  vertices: np.ndarray
  triangles: np.ndarray

  @staticmethod
  def of(vertices, triangles=None) -> "Mesh":
    v = np.asarray(vertices, np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
      raise ValueError(f"mesh vertices must be a non-empty (V, 3) array, got {v.shape}")
    if not np.all(np.isfinite(v)):
      raise ValueError("mesh vertices contain NaN or infinity")
    t = np.zeros((0, 3), np.int64) if triangles is None else np.asarray(triangles, np.int64).reshape(-1, 3)
    if t.size and (t.min() < 0 or t.max() >= len(v)):
      raise ValueError(f"triangle indices outside [0, {len(v)})")
    return Mesh(v, t)

  def transformed(self, scale: float, rotation: np.ndarray, translation: np.ndarray) -> "Mesh":
    return Mesh(scale * self.vertices @ rotation.T + translation, self.triangles)

  def triangle_normals(self) -> np.ndarray:
    a, b, c = (self.vertices[self.triangles[:, k]] for k in range(3))
    n = np.cross(b - a, c - a)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

  def vertex_normals(self) -> np.ndarray:
    return geometry.vertex_normals(self.vertices, self.triangles)

  def cropped(self, keep: np.ndarray) -> "Mesh":
    """The vertices where ``keep`` (V,) holds, and the triangles whose corners all do."""
    keep = np.asarray(keep, bool)
    new = -np.ones(len(self.vertices), np.int64)
    new[keep] = np.arange(keep.sum())
    tri = self.triangles[keep[self.triangles].all(1)] if self.triangles.size else self.triangles
    return Mesh(self.vertices[keep], new[tri])


# --------------------------------------------------------------------------- #
# Closest points.

def closest_point_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
  """(N, 3) exact closest points on triangles (a, b, c) (each (N, 3)) to points p (N, 3) (Ericson 5.1.5)."""
  ab, ac, ap = b - a, c - a, p - a
  d1, d2 = np.einsum("ij,ij->i", ab, ap), np.einsum("ij,ij->i", ac, ap)
  bp = p - b
  d3, d4 = np.einsum("ij,ij->i", ab, bp), np.einsum("ij,ij->i", ac, bp)
  cp = p - c
  d5, d6 = np.einsum("ij,ij->i", ab, cp), np.einsum("ij,ij->i", ac, cp)
  va = d3 * d6 - d5 * d4
  vb = d5 * d2 - d1 * d6
  vc = d1 * d4 - d3 * d2
  out = np.empty_like(p)
  done = np.zeros(len(p), bool)

  def put(mask, value):
    m = mask & ~done
    out[m] = value[m] if value.ndim == 2 else value
    done[:] |= m

  safe = lambda x: np.where(np.abs(x) > 1e-30, x, 1e-30)  # noqa: E731
  put((d1 <= 0) & (d2 <= 0), a)  # vertex regions
  put((d3 >= 0) & (d4 <= d3), b)
  put((d6 >= 0) & (d5 <= d6), c)
  t = d1 / safe(d1 - d3)
  put((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + t[:, None] * ab)  # edge regions
  t = d2 / safe(d2 - d6)
  put((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + t[:, None] * ac)
  t = (d4 - d3) / safe((d4 - d3) + (d5 - d6))
  put((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), b + t[:, None] * (c - b))
  den = safe(va + vb + vc)  # face region
  v, w = vb / den, vc / den
  put(np.ones(len(p), bool), a + v[:, None] * ab + w[:, None] * ac)
  return out


@dataclasses.dataclass(frozen=True)
class Closest:
  """points (N, 3) on the surface, distance (N,), triangle (N,) index (-1 for a point cloud's vertex)."""
  points: np.ndarray
  distance: np.ndarray
  triangle: np.ndarray


def _nearest_of(q, corners, flat_q, flat_t, best_d, best_p, best_t, chunk=200_000):
  """Updates the best (distance, point, triangle) per query with candidate pairs (flat_q, flat_t)."""
  for s in range(0, len(flat_q), chunk):
    iq, it = flat_q[s:s + chunk], flat_t[s:s + chunk]
    cp = closest_point_on_triangles(q[iq], corners[it, 0], corners[it, 1], corners[it, 2])
    d = np.linalg.norm(q[iq] - cp, axis=1)
    order = np.lexsort((d, iq))  # per query, the nearest candidate first
    iq, it, cp, d = iq[order], it[order], cp[order], d[order]
    first = np.r_[True, iq[1:] != iq[:-1]]
    iq, it, cp, d = iq[first], it[first], cp[first], d[first]
    better = d < best_d[iq]
    best_d[iq[better]], best_p[iq[better]], best_t[iq[better]] = d[better], cp[better], it[better]


def _flatten(lists):
  import itertools
  counts = np.fromiter(map(len, lists), np.int64, len(lists))
  flat = np.fromiter(itertools.chain.from_iterable(lists), np.int64, int(counts.sum()))
  return np.repeat(np.arange(len(lists)), counts), flat


class SurfaceIndex:
  """Exact closest-point queries on one mesh's surface (its vertices for a point cloud), trees built once.

  The k triangles with the nearest centroids give an upper bound d on each query's distance; a triangle
  of circumradius R (about its centroid) can only be nearer if its centroid lies within d + R. Triangles
  are grouped by R (powers of two), one KD-tree per group, and every group is searched within its own
  d + R_max: exact, and cheap where most triangles are small.
  """

  def __init__(self, mesh: Mesh, k: int = 8):
    from scipy.spatial import cKDTree
    self.mesh = mesh
    v, t = mesh.vertices, mesh.triangles
    if not t.size:
      self.vertex_tree = cKDTree(v)
      return
    self.corners = v[t]  # (F, 3, 3)
    centroid = self.corners.mean(1)
    radius = np.linalg.norm(self.corners - centroid[:, None], axis=2).max(1)
    self.k = min(k, len(t))
    self.tree = cKDTree(centroid)
    level = np.floor(np.log2(np.maximum(radius, 1e-6))).astype(np.int64)
    self.levels = []
    for lv in np.unique(level):
      members = np.flatnonzero(level == lv)
      self.levels.append((members, float(radius[members].max()), cKDTree(centroid[members])))

  def query(self, points: np.ndarray, exact: bool = True) -> Closest:
    """Closest surface points; ``exact=False`` stops after the k nearest centroids' triangles (what ICP
    uses for its correspondences: almost always the same point, several times faster)."""
    q = np.asarray(points, np.float64).reshape(-1, 3)
    if not self.mesh.triangles.size:
      dv, iv = self.vertex_tree.query(q)
      return Closest(self.mesh.vertices[iv], dv, -np.ones(len(q), np.int64))
    best_d = np.full(len(q), np.inf)
    best_p = np.zeros_like(q)
    best_t = np.full(len(q), -1, np.int64)
    _, near = self.tree.query(q, self.k)
    near = near.reshape(len(q), self.k)
    _nearest_of(q, self.corners, np.repeat(np.arange(len(q)), self.k), near.reshape(-1), best_d, best_p, best_t)
    for members, r_max, tree in (self.levels if exact else ()):
      fq, local = _flatten(tree.query_ball_point(q, best_d + r_max + 1e-9, return_sorted=False))
      _nearest_of(q, self.corners, fq, members[local], best_d, best_p, best_t)
    return Closest(best_p, best_d, best_t)


def closest_points(query: np.ndarray, mesh: Mesh) -> Closest:
  """Exact closest points on ``mesh``'s surface (its vertices for a point cloud) to each query point."""
  return SurfaceIndex(mesh).query(query)


# --------------------------------------------------------------------------- #
# Alignment.

def icp(pred: Mesh, scan: Mesh, scale: bool = True, iterations: int = 30, trim: float = 0.1,
        tol: float = 1e-6, max_points: int = 4000) -> Tuple[Mesh, Tuple[float, np.ndarray, np.ndarray]]:
  """Refines ``pred``'s placement on ``scan``: scan points -> closest points on pred's surface -> Umeyama.

  Returns the moved prediction and the (s, R, t) applied. ``trim``: the fraction of worst pairs left out
  of each estimate (robust to a scan that covers more than the prediction); ``max_points``: an evenly
  strided subset of the scan's points drives the estimate. The prediction's surface index is built once:
  each iteration maps the scan points into the prediction's frame instead of moving the prediction
  (closest points are unchanged by a similarity transform).
  """
  index = SurfaceIndex(pred)
  pts = scan.vertices[::max(1, len(scan.vertices) // max_points)]
  s, r, t = 1.0, np.eye(3), np.zeros(3)
  prev = np.inf
  for _ in range(iterations):
    local = ((pts - t) @ r) / s  # scan points in the prediction's frame
    c = index.query(local, exact=False)
    keep = c.distance <= np.quantile(c.distance, 1.0 - trim) if trim > 0 else np.ones(len(c.distance), bool)
    s, r, t = umeyama(c.points[keep], pts[keep], scale=scale)
    err = float(c.distance[keep].mean()) * s
    if abs(prev - err) < tol * max(err, 1e-9):
      break
    prev = err
  return pred.transformed(s, r, t), (s, r, t)


def align(pred: Mesh, pred_landmarks: np.ndarray, scan: Mesh, scan_landmarks: np.ndarray, *,
          scale: bool = True, icp_scale: Optional[bool] = None, icp_iterations: int = 30) -> Mesh:
  """Landmark alignment (Umeyama; similarity when ``scale``) then ICP (similarity when ``icp_scale``,
  which defaults to ``scale``); ``scale=False`` is rigid throughout."""
  s, r, t = umeyama(pred_landmarks, scan_landmarks, scale=scale)
  moved = pred.transformed(s, r, t)
  if icp_iterations:
    moved, _ = icp(moved, scan, scale=scale if icp_scale is None else icp_scale, iterations=icp_iterations)
  return moved


def _stats(d: np.ndarray) -> Dict[str, float]:
  return dict(scan_to_mesh_mm=float(np.mean(d)), median_mm=float(np.median(d)), std_mm=float(np.std(d)),
              points=int(len(d)))


# --------------------------------------------------------------------------- #
# Protocols.

NOW_LANDMARKS = (36, 39, 42, 45, 33, 48, 54)  # iBUG indices of NoW's 7 points: eye corners, nose bottom, mouth corners


def now_protocol(pred: Mesh, pred_landmarks: np.ndarray, scan: Mesh, scan_landmarks: np.ndarray, *,
                 scale: bool = True, icp_scale: bool = False) -> Dict[str, float]:
  """NoW error (Sanyal et al., CVPR 2019), aligned as NoW's own evaluation code does by default.

  Conventions: the prediction is the NEUTRAL-expression mesh; the scan is the
  cropped face scan the benchmark provides; the prediction is aligned to the scan
  by a scaled Procrustes fit of the 7 landmarks (eye corners, nose bottom, mouth
  corners: iBUG 36, 39, 42, 45, 33, 48, 54; ``scale=False``: rigid), then refined
  by RIGID ICP (the scale is the landmarks' and stays: a uniformly inflated or
  offset prediction keeps its error). ``icp_scale=True`` is the similarity-ICP
  variant (``protocol`` then reads ``now_similarity``): the scale absorbs part of
  an offset (a mesh offset 1 mm along its normals measures well under 1 mm), so
  it flatters; report it only named. Error = distance from every scan point to
  the closest point on the predicted surface; median / mean / std in mm.

  Args:
    pred_landmarks, scan_landmarks: (68, 3) or (7, 3) 3D landmarks (68 are reduced to the 7).
  """
  pl, sl = (np.asarray(x, np.float64) for x in (pred_landmarks, scan_landmarks))
  pl = pl[list(NOW_LANDMARKS)] if len(pl) == 68 else pl
  sl = sl[list(NOW_LANDMARKS)] if len(sl) == 68 else sl
  moved = align(pred, pl, scan, sl, scale=scale, icp_scale=icp_scale and scale)
  return dict(_stats(closest_points(scan.vertices, moved).distance),
              protocol="now_similarity" if icp_scale and scale else "now")


def micc_protocol(pred: Mesh, pred_landmarks: np.ndarray, scan: Mesh, scan_landmarks: np.ndarray, *,
                  scale: bool = True, radius_mm: float = 95.0) -> Dict[str, float]:
  """MICC-style error (as GANFit, Genova et al. 2018 and Tran et al. 2017 report MICC Florence).

  Conventions: initial alignment by landmarks (68 or any matching set, similarity),
  both meshes cropped to a ``radius_mm`` (95 mm) sphere around their nose
  tip (iBUG 30; the scan's own landmark), ICP between the crops, then the mean
  symmetric point-to-plane distance: the average of (scan points to the
  prediction's tangent planes) and (prediction points to the scan's), each
  |(p - c) . n| at the closest surface point c with the triangle normal n.
  ``scan_to_mesh_mm`` is the symmetric mean; median/std are of the pooled distances.

  The symmetric term is meant for FULL scans (MICC's cover the whole 95 mm crop): on a partial scan every
  predicted point the scan does not cover adds its distance to the scan's edge. ``scan_to_pred_mm`` (scan
  points to the prediction only) is the one-directional figure: report it beside the symmetric one, and
  alone for partial scans.
  """
  pl, sl = np.asarray(pred_landmarks, np.float64), np.asarray(scan_landmarks, np.float64)
  s, r, t = umeyama(pl, sl, scale=scale)
  moved = pred.transformed(s, r, t)
  nose = sl[30] if len(sl) == 68 else sl.mean(0)
  scan_c = scan.cropped(np.linalg.norm(scan.vertices - nose, axis=1) <= radius_mm)
  pred_c = moved.cropped(np.linalg.norm(moved.vertices - nose, axis=1) <= radius_mm)
  pred_c, _ = icp(pred_c, scan_c, scale=scale)

  def plane_dist(points, surface: Mesh):
    c = closest_points(points, surface)
    if not surface.triangles.size:
      return c.distance
    n = surface.triangle_normals()[c.triangle]
    return np.abs(np.einsum("ij,ij->i", points - c.points, n))

  a, b = plane_dist(scan_c.vertices, pred_c), plane_dist(pred_c.vertices, scan_c)
  pooled = np.concatenate([a, b])
  return dict(scan_to_mesh_mm=float(0.5 * (a.mean() + b.mean())), median_mm=float(np.median(pooled)),
              std_mm=float(np.std(pooled)), scan_to_pred_mm=float(a.mean()), pred_to_scan_mm=float(b.mean()),
              points=int(len(a)), protocol="micc")


def model_bound(model, scan: Mesh, scan_landmarks: np.ndarray, *, ridge: float = 0.0, expression: bool = True,
                rounds: int = 8, trim: float = 0.1, max_points: int = 6000):
  """The morphable model's closest surface to a scan, fitted to the SCAN itself (no photo): what any photo
  fit with this model could reach at best, by the NoW protocol's measure (a bound, not a fit).

  Alternates (a) NoW's alignment of the current model mesh to the scan (scaled Procrustes on the 7
  landmarks, rigid ICP) and (b) Gauss-Newton on scan-to-model POINT-TO-PLANE residuals: each scan point p
  (an even subset of ``max_points``, the worst ``trim`` left out) takes its closest point on the model's
  surface (triangle and barycentric weights b, normal n) and the coefficients x = (identity, expression when
  ``expression``) minimise ``mean_p (n . (p - sum_k b_k (mean + B x)_k))^2 + ridge * |x|^2`` (one linear
  solve per round; ``ridge`` in mm^2 per unit coefficient^2: 0 is unconstrained). Expression activations
  of blendshape models are clipped to [0, 1] after each solve.

  Returns (neutral vertices (V, 3) in the model frame, identity (K_id,), expression (K_exp,)): score the
  neutral mesh (identity only) with :func:`now_protocol` as any prediction.
  """
  from ganfit_jax.types import EXPRESSION_BLENDSHAPE
  if not (np.isfinite(ridge) and ridge >= 0):
    raise ValueError(f"ridge={ridge} must be a finite number >= 0 (0: unconstrained)")
  if int(rounds) < 1 or not 0 <= trim < 1:
    raise ValueError(f"rounds={rounds} must be >= 1 and trim={trim} in [0, 1)")
  if np.asarray(scan_landmarks).shape not in ((68, 3), (7, 3)):
    raise ValueError(f"scan_landmarks must be (68, 3) or NoW's (7, 3), got {np.asarray(scan_landmarks).shape}")
  mean = np.asarray(model.mean, np.float64)
  tri = np.asarray(model.triangles)
  lm_c, lm_b = np.asarray(model.landmark_corners), np.asarray(model.landmark_bary, np.float64)
  bases = [np.asarray(model.id_basis, np.float64)]
  if expression and model.num_expression:
    bases.append(np.asarray(model.exp_basis, np.float64))
  basis = np.concatenate(bases, 0)  # (K, V, 3)
  k_id = model.num_identity
  x = np.zeros(len(basis))
  pts_all = scan.vertices[::max(1, len(scan.vertices) // max_points)]
  sl = np.asarray(scan_landmarks, np.float64)
  sl = sl[list(NOW_LANDMARKS)] if len(sl) == 68 else sl
  for _ in range(rounds):
    v = mean + np.tensordot(x, basis, 1)
    lm = np.einsum("lk,lkd->ld", lm_b, v[lm_c])[list(NOW_LANDMARKS)]
    s, r, t = umeyama(lm, sl, scale=True)
    mesh = Mesh.of(v, tri).transformed(s, r, t)
    _, (s2, r2, t2) = icp(mesh, scan, scale=False, iterations=15)
    sc, rot, tr = s2 * s, r2 @ r, s2 * r2 @ t + t2
    local = ((pts_all - tr) @ rot) / sc  # scan points in the model frame
    index = SurfaceIndex(Mesh.of(v, tri))
    c = index.query(local, exact=False)
    keep = c.distance <= np.quantile(c.distance, 1.0 - trim)
    p, q, ti = local[keep], c.points[keep], c.triangle[keep]
    corners = tri[ti]  # (N, 3)
    a, b, d = (v[corners[:, j]] for j in range(3))
    n = np.cross(b - a, d - a)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    bary = geometry.barycentric(q, a, b, d)  # (N, 3)
    m0 = np.einsum("nk,nkd->nd", bary, mean[corners])
    jac = np.einsum("nk,jnkd,nd->nj", bary, basis[:, corners], n)  # (N, K): d(n . model point)/dx
    y = np.einsum("nd,nd->n", p - m0, n)
    npts = len(y)
    x = np.linalg.solve(jac.T @ jac / npts + ridge * np.eye(len(x)), jac.T @ y / npts)
    if model.expression_kind == EXPRESSION_BLENDSHAPE and len(x) > k_id:
      x[k_id:] = np.clip(x[k_id:], 0.0, 1.0)
  neutral = mean + np.tensordot(x[:k_id], basis[:k_id], 1)
  return neutral, x[:k_id], x[k_id:]


REGIONS = ("nose", "mouth", "forehead", "cheeks")


def region_masks(points: np.ndarray, landmarks: np.ndarray) -> Dict[str, np.ndarray]:
  """REALY-style regions of scan points from the scan's 68 landmarks (points and landmarks in one frame).

  A face frame is built from the landmarks (x: from the right to the left eye's outer corner, y: from the
  chin to the brows, z: out of the face); regions are then boxes in that frame, in units of the
  outer-eye-corner distance E:
    nose: between the inner eye corners' x +- 0.1 E, from the nose bridge (27) to below the nostrils (33);
    mouth: the mouth corners' x +- 0.15 E, from under the nose (33) to between the lip and chin (57-8);
    forehead: the brows' x span, from the brows up to 0.6 E above them;
    cheeks: lateral to the nose, from below the eyes to the mouth corners' height, inside the jaw (1-15).
  """
  lm = np.asarray(landmarks, np.float64)
  if lm.shape != (68, 3):
    raise ValueError(f"region masks need (68, 3) scan landmarks, got {lm.shape}")
  x = lm[45] - lm[36]
  e = np.linalg.norm(x)
  x /= e
  up = lm[19:25].mean(0) - lm[8]
  y = up - (up @ x) * x
  y /= np.linalg.norm(y)
  z = np.cross(x, y)
  o = lm[27]
  local = (np.asarray(points, np.float64) - o) @ np.stack([x, y, z]).T / e
  llm = (lm - o) @ np.stack([x, y, z]).T / e
  px, py = local[:, 0], local[:, 1]
  inside = lambda a, lo, hi: (a >= lo) & (a <= hi)  # noqa: E731
  nose = inside(px, llm[39, 0] - 0.1, llm[42, 0] + 0.1) & inside(py, llm[33, 1], llm[27, 1])
  mouth = inside(px, llm[48, 0] - 0.15, llm[54, 0] + 0.15) & inside(py, 0.5 * (llm[57, 1] + llm[8, 1]), llm[33, 1])
  brow_top = llm[17:27, 1].max()
  forehead = inside(px, llm[17, 0], llm[26, 0]) & inside(py, brow_top, brow_top + 0.6)
  eye_low = min(llm[40, 1], llm[41, 1], llm[46, 1], llm[47, 1])
  cheeks = inside(py, llm[48, 1], eye_low) & ~inside(px, llm[31, 0] - 0.05, llm[35, 0] + 0.05) & \
      inside(px, llm[1, 0], llm[15, 0]) & ~nose & ~mouth
  return dict(nose=nose, mouth=mouth, forehead=forehead, cheeks=cheeks)


def region_protocol(pred: Mesh, pred_landmarks: np.ndarray, scan: Mesh, scan_landmarks: np.ndarray, *,
                    scale: bool = True) -> Dict[str, float]:
  """Region-wise errors (REALY-style, Chai et al. ECCV 2022): after landmark + ICP alignment of the
  prediction to the scan (as :func:`now_protocol`, all 68 landmarks), the scan-to-surface distance
  averaged inside each region of :func:`region_masks` (nose, mouth, forehead, cheeks), and overall."""
  sl = np.asarray(scan_landmarks, np.float64)
  moved = align(pred, np.asarray(pred_landmarks, np.float64), scan, sl, scale=scale)
  d = closest_points(scan.vertices, moved).distance
  masks = region_masks(scan.vertices, sl)
  out = dict(_stats(d), protocol="regions")
  for name, m in masks.items():
    out[f"{name}_mm"] = float(d[m].mean()) if m.any() else float("nan")
    out[f"{name}_points"] = int(m.sum())
  return out


PROTOCOLS = {"now": now_protocol, "micc": micc_protocol, "regions": region_protocol}


def evaluate(pred: Mesh, pred_landmarks, scan: Mesh, scan_landmarks, protocol: str = "now",
             scale: bool = True) -> Dict[str, Union[float, int, str]]:
  """One protocol by name: ``now`` (official: scaled landmarks, rigid ICP), ``now_similarity`` (similarity
  ICP), ``micc``, ``regions``. Returns the protocol's dict, NOT only floats: distances in mm (floats),
  ``points`` (int, the predicted points measured) and ``protocol`` (str).

  A fitted :class:`~ganfit_jax.types.FaceParams` ``f`` becomes the prediction as the benchmarks do it (the
  neutral shape, NoW's convention; landmarks as the model's 68 points, of which the protocols take NoW's 7,
  :data:`NOW_LANDMARKS`, or the 7 themselves)::

    verts = np.asarray(morphable.vertices(model, f.shape))            # (V, 3) mm, no expression
    pred = Mesh.of(verts, np.asarray(model.triangles))
    lm68 = np.asarray(morphable.landmarks(model, verts))
    result = evaluate(pred, lm68, load_mesh("scan.obj"), scan_landmarks, "now")  # ["scan_to_mesh_mm"]
  """
  if protocol == "now_similarity":
    return now_protocol(pred, np.asarray(pred_landmarks), scan, np.asarray(scan_landmarks), scale=scale,
                        icp_scale=True)
  if protocol not in PROTOCOLS:
    raise ValueError(f"unknown protocol {protocol!r}; choose from {sorted(PROTOCOLS) + ['now_similarity']}")
  return PROTOCOLS[protocol](pred, np.asarray(pred_landmarks), scan, np.asarray(scan_landmarks), scale=scale)


# --------------------------------------------------------------------------- #
# Files.

def load_mesh(path: str) -> Mesh:
  """A mesh or point cloud from OBJ / PLY / OFF / STL (trimesh), in the file's units (mm expected)."""
  import os
  import trimesh
  if not os.path.isfile(path):
    raise FileNotFoundError(f"mesh file not found: {path}")
  try:
    m = trimesh.load(path, process=False, force=None)
  except Exception as e:  # noqa: BLE001  (trimesh raises many types for bad files)
    raise ValueError(f"cannot read {path} as a mesh ({type(e).__name__}: {e}); use OBJ, PLY, OFF or STL") from e
  if isinstance(m, trimesh.Scene):
    geoms = [g for g in m.geometry.values() if hasattr(g, "vertices")]
    if not geoms:
      raise ValueError(f"{path} holds no mesh")
    m = trimesh.util.concatenate(geoms) if len(geoms) > 1 else geoms[0]
  faces = getattr(m, "faces", None)
  return Mesh.of(np.asarray(m.vertices), None if faces is None or len(faces) == 0 else np.asarray(faces))


__all__ = ["Mesh", "Closest", "closest_points", "closest_point_on_triangles", "umeyama", "icp", "align",
           "now_protocol", "micc_protocol", "region_protocol", "region_masks", "evaluate", "load_mesh",
           "PROTOCOLS", "REGIONS", "NOW_LANDMARKS", "model_bound"]
