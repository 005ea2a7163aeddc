"""Where a landmark detector's points lie on a morphable model's surface, learned from renders of the model.

A model ships 68 landmark VERTICES chosen by hand; a detector (dlib's 300-W predictor, MediaPipe's mesh)
places its points by its own training data. Fitting the one to the other bends the shape. This module
renders the model's own faces (random identity within 2 sigma, sparse random expressions, yaw up to 25
degrees, GAN textures, random light, blurred DevTrain backgrounds) through the project's renderer, runs the
detector on every render, and solves, per detector point, for the SURFACE point (triangle and barycentric
weights) whose projections land nearest the detector's points over all renders (a trimmed mean of squared
errors normalised by the outer-eye-corner distance; candidates: a barycentric grid on every triangle near
the current point). The jaw contour (iBUG 0-16) is a silhouette: its points get candidate vertex sets
(:func:`contour_candidates`: a thin slab of the face surface around each point's outward direction) and
slide over them as the head turns (:func:`ganfit_jax.objective.landmarks_2d`); the slab's direction is
learned the same way.

The same search runs on any :class:`View` with a mesh, a camera and the detector's points: ``tools/
learn_landmarks.py --source=photos`` builds them from real photos, the model fitted to another detector's
points (MediaPipe's) giving the mesh, so the correspondence follows where the detector puts its points on
real faces rather than on renders (the shipped 68 are learned so).

Entry point: ``tools/learn_landmarks.py`` (writes ``ganfit_jax/weights/landmarks_<model>.npz``, which
:func:`ganfit_jax.morphable.load` applies). Everything here is numpy on the host except the renders.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List, Optional, Sequence

import numpy as np

from ganfit_jax import morphable
from ganfit_jax.objective import JAW
from ganfit_jax.types import MATERIAL_SKIN, MorphableModel


@dataclasses.dataclass
class View:
  """One render: the mesh's vertices (V, 3), the camera (10,), the image side, and the detector's (68, 2)
  points on it (continuous pixels); the image itself when kept."""
  vertices: np.ndarray
  camera: np.ndarray
  size: int
  detected: np.ndarray
  image: Optional[np.ndarray] = None


def project(camera: np.ndarray, points: np.ndarray, size: int) -> np.ndarray:
  """numpy twin of :func:`ganfit_jax.camera.project` (pixels, (..., 3) -> (..., 2)), for host-side search."""
  eye, at, up, f = camera[0:3], camera[3:6], camera[6:9], camera[9]
  z = (eye - at) / np.linalg.norm(eye - at)
  x = np.cross(up, z)
  x /= np.linalg.norm(x)
  y = np.cross(z, x)
  pc = (points - eye) @ np.stack([x, y, z]).T
  d = np.maximum(-pc[..., 2], 1.0)
  fp = f * size
  return np.stack([size / 2.0 + fp * pc[..., 0] / d, size / 2.0 - fp * pc[..., 1] / d], -1)


def _grid(steps: int) -> np.ndarray:
  """(G, 3) barycentric weights on a regular grid of a triangle (corners and edges included)."""
  w = [(i / steps, j / steps, (steps - i - j) / steps) for i in range(steps + 1) for j in range(steps + 1 - i)]
  return np.asarray(w, np.float64)


def _trimmed_mean(err: np.ndarray, keep: float) -> np.ndarray:
  """Mean over the last axis of its smallest ``keep`` fraction (robust to a few failed detections)."""
  k = max(1, int(round(err.shape[-1] * keep)))
  return np.mean(np.partition(err, k - 1, axis=-1)[..., :k], axis=-1)


EYES_68 = (36, 45)  # iBUG outer eye corners: the NME normaliser of the 68 points
EYES_DENSE = (33, 263)  # the same corners in MediaPipe's mesh


def _normalisers(views: Sequence[View], eyes=EYES_68) -> np.ndarray:
  return np.array([np.linalg.norm(v.detected[eyes[0]] - v.detected[eyes[1]]) for v in views])


def _candidate_vertices(model: MorphableModel) -> np.ndarray:
  """Skin vertices of the face region that lie on a skin triangle (where a detector's point can be)."""
  tri = np.asarray(model.triangles)
  skin_tri = tri[(np.asarray(model.material)[tri] == MATERIAL_SKIN).all(1)]
  ok = np.zeros(model.num_vertices, bool)
  ok[np.unique(skin_tri)] = True
  return np.flatnonzero(ok & np.asarray(model.face_mask, bool))


def nearest_vertices(model: MorphableModel, views: Sequence[View], *, eyes=EYES_DENSE, keep: float = 0.9):
  """(corners (P, 3), bary (P, 3)): per detector point, the face vertex whose projections land nearest the
  detector's point over ``views`` (trimmed mean, as :func:`learn_points`): the start for points that have no
  hand-picked vertex (a dense detector's)."""
  if not views:
    raise ValueError("nearest_vertices needs at least one View (renders with the detector's points)")
  cand = _candidate_vertices(model)
  norm = _normalisers(views, eyes)
  proj = np.stack([project(v.camera, v.vertices[cand].astype(np.float64), v.size) for v in views], 1)  # (C, N, 2)
  det = np.stack([v.detected for v in views], 1)  # (P, N, 2)
  best = np.zeros(det.shape[0], np.int64)
  for j in range(det.shape[0]):
    err = np.sum(np.square(proj - det[j][None]), -1) / norm[None] ** 2  # (C, N)
    best[j] = cand[int(np.argmin(_trimmed_mean(err, keep)))]
  corners = np.repeat(best[:, None], 3, 1).astype(np.int32)
  bary = np.tile(np.array([1.0, 0.0, 0.0], np.float32), (len(best), 1))
  return corners, bary


def surface_candidates(model: MorphableModel, centre: np.ndarray, radius_mm: float, steps: int = 6):
  """(corners (N, 3), bary (N, 3)): a barycentric grid over the skin triangles whose centroids lie within
  ``radius_mm`` of ``centre`` on the mean mesh."""
  mean = np.asarray(model.mean, np.float64)
  tri = np.asarray(model.triangles)
  skin = (np.asarray(model.material)[tri] == MATERIAL_SKIN).all(1)
  near = skin & (np.linalg.norm(mean[tri].mean(1) - centre, axis=1) <= radius_mm)
  g = _grid(steps)
  corners = np.repeat(tri[near], len(g), axis=0)
  bary = np.tile(g, (int(near.sum()), 1))
  return corners, bary


def learn_points(model: MorphableModel, views: Sequence[View], which: Sequence[int], *, radius_mm: float = 12.0,
                 steps: int = 6, keep: float = 0.9, rounds: int = 2, start=None, eyes=EYES_68):
  """(corners (P, 3), bary (P, 3)): the current points (``start``, default the model's 68), with those in
  ``which`` moved to the surface point that best matches the detector over ``views`` (searched within
  ``radius_mm`` of the current point, then again around the winner: ``rounds``). ``eyes``: the detector's
  outer-eye-corner indices (the error's normaliser)."""
  if not views:
    raise ValueError("learn_points needs at least one View (renders with the detector's points)")
  if start is None:
    start = (model.landmark_corners, model.landmark_bary)
  corners = np.asarray(start[0]).copy()
  bary = np.asarray(start[1], np.float64).copy()
  if any(np.asarray(v.detected).shape != (len(corners), 2) for v in views):
    raise ValueError(f"every View's detected points must be ({len(corners)}, 2) pixels, as many as the start points")
  if not 0 < keep <= 1 or radius_mm <= 0 or steps < 1:
    raise ValueError(f"keep={keep} must be in (0, 1], radius_mm={radius_mm} > 0 and steps={steps} >= 1")
  verts = np.stack([v.vertices for v in views]).astype(np.float64)  # (N, V, 3)
  norm = _normalisers(views, eyes)
  for j in which:
    r = radius_mm
    for _ in range(rounds):
      centre = (bary[j][:, None] * np.asarray(model.mean, np.float64)[corners[j]]).sum(0)
      cc, cb = surface_candidates(model, centre, r, steps)
      if not len(cc):
        break
      errs = np.zeros((len(cc), len(views)))
      for n, v in enumerate(views):
        pts = np.einsum("ck,ckd->cd", cb, verts[n][cc])
        errs[:, n] = np.sum(np.square(project(v.camera, pts, v.size) - v.detected[j]), -1) / norm[n] ** 2
      best = int(np.argmin(_trimmed_mean(errs, keep)))
      corners[j], bary[j] = cc[best], cb[best]
      r = max(radius_mm / 3.0, 3.0)
  return corners, bary.astype(np.float32)


def contour_candidates(model: MorphableModel, corners, bary, turns_deg=0.0, outside_mm=8.0, *,
                       half_width_mm: float = 2.0, inside_mm: float = 25.0, back_mm: float = 30.0,
                       ahead_mm: float = 30.0, count: int = 48) -> np.ndarray:
  """(17, count) candidate vertices of the jaw-contour points.

  For jaw point p_j with outward direction o_j in the model's frontal (x, y) plane
  (:func:`ganfit_jax.objective.jaw_outward`, turned by ``turns_deg[j]``): the skin vertices of the face
  region within ``half_width_mm`` of the line through p_j along o_j (in x, y), from ``inside_mm`` inwards
  to ``outside_mm[j]`` outwards, at a depth (z) from ``back_mm`` behind to ``ahead_mm`` in front of p_j: a
  thin strip of the surface across the jaw line, round to the side of the face. ``turns_deg`` and
  ``outside_mm`` (scalars or (17,)) are what :func:`learn_contour` learns. Strips with more than ``count``
  vertices keep an even subset (by depth), fewer repeat; an empty strip is the point's nearest vertex.
  """
  from ganfit_jax.objective import jaw_outward
  mean = np.asarray(model.mean, np.float64)
  pts = np.einsum("lk,lkd->ld", np.asarray(bary, np.float64), mean[np.asarray(corners)])[JAW]
  out = np.asarray(jaw_outward(pts), np.float64)[:, :2]
  turns = np.deg2rad(np.broadcast_to(np.asarray(turns_deg, np.float64), (17,)))
  outside = np.broadcast_to(np.asarray(outside_mm, np.float64), (17,))
  cos, sin = np.cos(turns), np.sin(turns)
  out = np.stack([cos * out[:, 0] - sin * out[:, 1], sin * out[:, 0] + cos * out[:, 1]], 1)
  ok = np.asarray(model.face_mask, bool) & (np.asarray(model.material) == MATERIAL_SKIN)
  res = np.zeros((17, count), np.int32)
  for j in range(17):
    rel = mean[:, :2] - pts[j, :2]
    along = rel @ out[j]
    across = rel @ np.array([-out[j, 1], out[j, 0]])
    sel = np.flatnonzero(ok & (np.abs(across) <= half_width_mm) & (along >= -inside_mm) & (along <= outside[j])
                         & (mean[:, 2] >= pts[j, 2] - back_mm) & (mean[:, 2] <= pts[j, 2] + ahead_mm))
    if not len(sel):
      sel = np.array([int(np.argmin(np.linalg.norm(mean - pts[j], axis=1)))])
    sel = sel[np.argsort(mean[sel, 2])]
    res[j] = sel[np.linspace(0, len(sel) - 1, count).round().astype(int)]
  return res


def slide(model: MorphableModel, view: View, contour: np.ndarray, corners, bary) -> np.ndarray:
  """(17, 2) the jaw points of one view as :func:`ganfit_jax.objective.landmarks_2d` picks them."""
  from ganfit_jax.objective import slide_jaw
  pts = np.einsum("lk,lkd->ld", np.asarray(bary, np.float64), view.vertices[np.asarray(corners)])[JAW]
  return np.asarray(slide_jaw(np.float32(pts), view.vertices[contour], np.float32(view.camera), view.size))


def learn_contour(model: MorphableModel, views: Sequence[View], corners, bary, *,
                  turns_deg=np.arange(-9.0, 9.5, 3.0), outside_mm=np.arange(-6.0, 12.5, 2.0), keep: float = 0.9,
                  **kw):
  """(contour (17, C), turns (17,), outside (17,), sliding (17,) bool): per jaw point, the strip (turn and
  outer end, :func:`contour_candidates`) whose sliding point best matches the detector over ``views``, or,
  where the learned fixed surface point matches better, that point's nearest vertex alone (a fixed point)."""
  norm = _normalisers(views)

  def error(cont):
    return _trimmed_mean(np.stack([np.sum(np.square(slide(model, v, cont, corners, bary) - v.detected[JAW]), -1)
                                   / norm[n] ** 2 for n, v in enumerate(views)], 1), keep)  # (17,)

  best = np.full(17, np.inf)
  turn, outside = np.zeros(17), np.zeros(17)
  for t in turns_deg:
    for o in outside_mm:
      e = error(contour_candidates(model, corners, bary, t, o, **kw))
      better = e < best
      best[better], turn[better], outside[better] = e[better], t, o
  contour = contour_candidates(model, corners, bary, turn, outside, **kw)
  fixed = _trimmed_mean(np.stack([np.sum(np.square(points_2d(model, v, corners, bary, None)[JAW] - v.detected[JAW]),
                                         -1) / norm[n] ** 2 for n, v in enumerate(views)], 1), keep)
  sliding = best < fixed
  nearest = np.asarray(corners)[np.arange(68), np.argmax(np.asarray(bary), 1)][JAW]
  contour[~sliding] = nearest[~sliding, None]
  return contour, turn, outside, sliding


def points_2d(model: MorphableModel, view: View, corners, bary, contour: Optional[np.ndarray]) -> np.ndarray:
  """(P, 2) the model's points in one view (fixed surface points; the 68's sliding jaw where ``contour`` is
  given)."""
  pts = np.einsum("lk,lkd->ld", np.asarray(bary, np.float64), view.vertices[np.asarray(corners)])
  xy = project(view.camera, pts, view.size)
  if contour is not None and contour.shape[1]:
    xy[JAW] = slide(model, view, contour, corners, bary)
  return xy


GROUPS = {"all": range(68), "jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36),
          "eyes": range(36, 48), "mouth": range(48, 68)}


# MediaPipe's face-oval loop (the outline of its mesh), and the rest of its points
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
DENSE_GROUPS = {"all": range(478), "oval": FACE_OVAL,
                "inner": [i for i in range(468) if i not in FACE_OVAL], "irises": range(468, 478)}


def agreement(model: MorphableModel, views: Sequence[View], corners, bary, contour=None, *, groups=None,
              eyes=EYES_68) -> dict:
  """NME (mean distance / outer-eye-corner distance, detector's points as truth) per landmark group
  (``groups``: name -> indices, default :data:`GROUPS`), and the per-point NME (P,), over ``views``."""
  norm = _normalisers(views, eyes)
  d = np.stack([np.linalg.norm(points_2d(model, v, corners, bary, contour) - v.detected, axis=1) / norm[n]
                for n, v in enumerate(views)])  # (N, P)
  out = {g: float(d[:, list(idx)].mean()) for g, idx in (groups or GROUPS).items()}
  out["per_point"] = d.mean(0)
  return out


def scatter(model: MorphableModel, views: Sequence[View], corners, bary, contour=None, *, eyes=EYES_68,
            floor: float = 0.005) -> np.ndarray:
  """(P,) per-point RMS distance between the detector's points and the model's (``corners``, ``bary``; the
  sliding jaw where ``contour`` is given) over ``views``, over the outer-eye-corner distance, at least
  ``floor``: the model's ``landmark_scatter`` / ``dense_scatter`` (a per-point confidence, see
  :func:`ganfit_jax.objective.confidence_weights`). Measured where the shape is exact, it is the
  detector's own error on this model's faces."""
  if not views:
    raise ValueError("scatter needs at least one view")
  norm = _normalisers(views, eyes)
  d2 = np.stack([np.sum(np.square(points_2d(model, v, corners, bary, contour) - v.detected), axis=1) / norm[n] ** 2
                 for n, v in enumerate(views)])  # (N, P)
  return np.maximum(np.sqrt(d2.mean(0)), floor).astype(np.float32)


# --------------------------------------------------------------------------- #
# Renders of the model.

def render_views(scene, n: int, *, seed: int, detect: Callable[[np.ndarray], Optional[np.ndarray]],
                 size: int = 512, yaw_deg: float = 25.0, pitch_deg: float = 10.0, shape_sigma: float = 2.0,
                 backgrounds: Optional[List[str]] = None, progress: Optional[Callable[[str], None]] = None,
                 keep_images: bool = False) -> List[View]:
  """``n`` renders of random faces of ``scene.model`` (see the module docstring), each with ``detect``'s
  (68, 2) points; renders where ``detect`` finds no face (returns None) are dropped. ``keep_images``: keep
  each render in its View (for pictures)."""
  import jax
  import jax.numpy as jnp
  from ganfit_jax import camera as camera_lib
  from ganfit_jax import lighting, objective
  from ganfit_jax.evaluation.synthetic import backgrounds as make_backgrounds, sample_expression

  model = scene.model
  rng = np.random.default_rng(seed)
  lm = np.asarray(morphable.landmarks(model, model.mean))
  centre = lm.mean(0)
  face_h = float(np.ptp(lm[:, 1]))
  bgs = make_backgrounds(n, size, rng, backgrounds)

  @jax.jit
  def render(verts, latent, cam, light, bg):
    tex = scene.texture_image(latent)
    out, _ = objective.render_mesh(scene, verts, tex, cam, light, bg, size=size)
    return out.image

  views = []
  for i in range(n):
    a = np.clip(rng.normal(size=model.num_identity), -shape_sigma, shape_sigma).astype(np.float32)
    e = sample_expression(rng, model)
    verts = np.asarray(morphable.vertices(model, jnp.asarray(a), jnp.asarray(e)))
    f = float(rng.uniform(2.5, 8.0))
    yaw = np.deg2rad(rng.uniform(-yaw_deg, yaw_deg))
    pitch = np.deg2rad(np.clip(rng.normal() * pitch_deg / 2, -pitch_deg, pitch_deg))
    cam = np.asarray(camera_lib.orbit_camera(yaw, pitch, distance=f * face_h / 0.45, look_at=tuple(centre), focal=f))
    light = np.asarray(lighting.default_light()) + rng.normal(size=9) * np.array([300.0] * 3 + [0.08] * 6)
    latent = rng.normal(size=scene.texture.latent_dim).astype(np.float32)
    img = np.clip(np.asarray(render(jnp.asarray(verts), jnp.asarray(latent), jnp.asarray(cam),
                                    jnp.asarray(light, jnp.float32), jnp.asarray(bgs[i]))), 0, 1)
    pts = detect(img)
    if pts is not None:
      views.append(View(vertices=verts.astype(np.float32), camera=cam, size=size, detected=np.asarray(pts),
                        image=img if keep_images else None))
    if progress and (i + 1) % 20 == 0:
      progress(f"rendered {i + 1}/{n} ({len(views)} detected)")
  return views


def dlib68(image: np.ndarray) -> Optional[np.ndarray]:
  """dlib's 68 points of the largest face (the project's default detector front end), or None."""
  from ganfit_jax.face import detect
  faces = detect.detect_faces(image)
  return faces[0].landmarks if faces else None


def dlib68_and_dense(image: np.ndarray) -> Optional[np.ndarray]:
  """(68 + 478, 2): dlib's 68 points of the largest face and MediaPipe's 478 on it
  (:mod:`ganfit_jax.face.facemesh`), or None."""
  from ganfit_jax.face import facemesh
  lm = dlib68(image)
  if lm is None:
    return None
  dense = facemesh.detect(image, lm)
  return np.concatenate([lm, dense.points]) if dense.score >= 0.5 else None


__all__ = ["View", "project", "nearest_vertices", "dlib68_and_dense", "FACE_OVAL", "DENSE_GROUPS", "EYES_68",
           "EYES_DENSE", "surface_candidates", "learn_points", "contour_candidates", "slide", "learn_contour",
           "points_2d", "agreement", "GROUPS", "render_views", "dlib68"]
