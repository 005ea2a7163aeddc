"""Landmark correspondences on the model's surface, the sliding jaw contour and the shape bound."""

import dataclasses

import numpy as np
import pytest

import jax.numpy as jnp

from ganfit_jax import camera as camera_lib
from ganfit_jax import correspondence, morphable, objective
from ganfit_jax.evaluation import shape


def test_landmarks_are_surface_points_and_default_to_the_vertices(ict_model, tmp_path):
  m = ict_model
  corners, bary = morphable.fixed_landmarks(m.landmarks)
  plain = morphable.with_landmarks(m, corners, bary, np.zeros((17, 0), np.int32), morphable.NO_DENSE)
  np.testing.assert_allclose(morphable.landmarks(plain, plain.mean), np.asarray(plain.mean)[np.asarray(m.landmarks)])
  # a point a third of the way along each landmark triangle: the row-only path equals the full mesh's
  rng = np.random.default_rng(0)
  tri = np.asarray(m.triangles)[rng.integers(0, len(m.triangles), 68)]
  w = rng.dirichlet(np.ones(3), 68).astype(np.float32)
  moved = morphable.with_landmarks(m, tri, w)
  shape_c, expr = rng.normal(size=m.num_identity).astype(np.float32), np.full(m.num_expression, 0.2, np.float32)
  full = morphable.landmarks(moved, morphable.vertices(moved, shape_c, expr))
  np.testing.assert_allclose(morphable.landmark_points(moved, shape_c, expr), full, atol=1e-3)
  np.testing.assert_array_equal(moved.landmarks, m.landmarks)  # the authors' vertices stay on record
  # stored with the model, and as a correspondence file keyed to the mesh
  # a model file with the plain vertex correspondence does not store it (a shipped learned file then applies:
  # the converted ICT asset is written this way)
  morphable.save_npz(str(tmp_path / "plain.npz"), plain)
  with np.load(str(tmp_path / "plain.npz")) as z:
    assert "landmark_corners" not in z.files
  morphable.save_npz(str(tmp_path / "m.npz"), moved)
  back = morphable.load_npz(str(tmp_path / "m.npz"))
  np.testing.assert_allclose(back.landmark_bary, w)
  morphable.save_landmarks(str(tmp_path / "lm.npz"), moved)
  np.testing.assert_array_equal(morphable.load_landmarks(plain, str(tmp_path / "lm.npz")).landmark_corners, tri)
  with pytest.raises(ValueError, match="learned for another mesh"):
    morphable.load_landmarks(plain.replace(triangles=plain.triangles[1:]), str(tmp_path / "lm.npz"))
  with pytest.raises(ValueError, match="barycentric"):
    morphable.with_landmarks(m, tri, w * 2)


def test_the_default_model_carries_the_shipped_correspondence(ict_model):
  """tools/learn_landmarks.py's file for the default model applies (same mesh) and moves the points; the
  config's ``landmarks`` picks the hand-picked vertices or a file instead."""
  import os
  from ganfit_jax.assets import AssetError
  path = morphable.learned_landmarks_path(ict_model)
  assert os.path.isfile(path), path
  assert ict_model.contour.shape[0] == 17
  assert not np.allclose(np.asarray(ict_model.landmark_bary)[:, 0], 1.0)
  moved = np.linalg.norm(np.asarray(morphable.landmarks(ict_model, ict_model.mean))
                         - np.asarray(ict_model.mean)[np.asarray(ict_model.landmarks)], axis=1)
  assert 0.5 < np.median(moved) < 15.0, moved  # millimetres: learned points near, not on, the hand-picked ones
  plain = morphable.load("ict", "vertices")
  assert plain.contour.shape == (17, 0) and np.allclose(np.asarray(plain.landmark_bary)[:, 0], 1.0)
  again = morphable.load("ict", path)
  np.testing.assert_array_equal(again.landmark_corners, ict_model.landmark_corners)
  with pytest.raises(AssetError, match="learn_landmarks"):
    morphable.load("ict", "/nonexistent/landmarks.npz")


def _views(model, n, seed, truth_corners, truth_bary):
  """Views whose 'detector' is the projection of known surface points (no render): random identities,
  expressions and poses."""
  rng = np.random.default_rng(seed)
  lm = np.asarray(morphable.landmarks(model, model.mean))
  views = []
  for _ in range(n):
    v = np.asarray(morphable.vertices(model, rng.normal(size=model.num_identity).astype(np.float32),
                                      np.clip(rng.normal(size=model.num_expression) * 0.2, 0, 1).astype(np.float32)))
    cam = np.asarray(camera_lib.orbit_camera(np.deg2rad(rng.uniform(-25, 25)), np.deg2rad(rng.normal() * 5),
                                             distance=700.0, look_at=tuple(lm.mean(0)), focal=4.0))
    pts = np.einsum("lk,lkd->ld", truth_bary, v[truth_corners])
    views.append(correspondence.View(vertices=v, camera=cam, size=256,
                                     detected=correspondence.project(cam, pts, 256)))
  return views


def test_learned_points_recover_known_surface_points(ict_model):
  m = ict_model
  c0, b0 = morphable.fixed_landmarks(m.landmarks)
  start = morphable.with_landmarks(m, c0, b0, np.zeros((17, 0), np.int32))
  # the truth: each inner point moved onto a triangle a few millimetres away, at an inner barycentric point
  mean = np.asarray(m.mean)
  tri = np.asarray(m.triangles)
  skin = (np.asarray(m.material)[tri] == 0).all(1)
  tri = tri[skin]  # the search keeps to skin (eyeballs are no landmark's surface)
  cent = mean[tri].mean(1)
  truth_c, truth_b = c0.copy(), b0.astype(np.float64).copy()
  for j in range(17, 68):
    d = np.linalg.norm(cent - mean[c0[j, 0]], axis=1)
    k = int(np.argmin(np.abs(d - 4.0)))
    truth_c[j], truth_b[j] = tri[k], (0.5, 0.3, 0.2)
  views = _views(m, 12, 0, truth_c, truth_b)
  before = correspondence.agreement(start, views, c0, b0)
  corners, bary = correspondence.learn_points(start, views, range(17, 68), radius_mm=8.0, steps=10)
  after = correspondence.agreement(start, views, corners, bary)
  truth = np.einsum("lk,lkd->ld", truth_b, mean[truth_c])[17:]
  got = np.einsum("lk,lkd->ld", bary, mean[corners])[17:]
  err = np.linalg.norm(got - truth, axis=1)
  assert err.max() < 0.6, (np.argmax(err) + 17, err.max())
  assert after["all"] < 0.25 * before["all"]


def test_the_jaw_slides_to_the_silhouette(ict_model):
  m = ict_model
  c0, b0 = morphable.fixed_landmarks(m.landmarks)
  cont = correspondence.contour_candidates(m, c0, b0, 0.0, 8.0)
  slid = morphable.with_landmarks(m, c0, b0, cont)
  fixed = morphable.with_landmarks(m, c0, b0, np.zeros((17, 0), np.int32))
  shape_c = jnp.zeros((m.num_identity,))
  expr = jnp.zeros((m.num_expression,))
  lm = np.asarray(morphable.landmarks(m, m.mean))
  normals = np.asarray(morphable.vertex_normals(m.mean, m.triangles))
  for yaw in (0.0, 30.0):
    cam = camera_lib.orbit_camera(np.deg2rad(yaw), 0.0, distance=700.0, look_at=tuple(lm.mean(0)), focal=4.0)
    a = np.asarray(objective.landmarks_2d(slid, shape_c, expr, cam, 256))
    b = np.asarray(objective.landmarks_2d(fixed, shape_c, expr, cam, 256))
    np.testing.assert_allclose(a[17:], b[17:])  # inner points do not slide
    # each slid jaw point is a candidate whose normal is nearly perpendicular to the view (a silhouette), on
    # the side turned away from the camera at least
    xy = np.asarray(camera_lib.project(cam, jnp.asarray(np.asarray(m.mean)[cont.reshape(-1)]), 256, 256)[0])
    xy = xy.reshape(17, -1, 2)
    eye = np.asarray(cam[:3])
    side = range(0, 5) if yaw > 0 else range(0, 17)
    for j in side:
      k = int(np.argmin(np.linalg.norm(xy[j] - a[j], axis=1)))
      v = cont[j, k]
      view = (eye - np.asarray(m.mean)[v]) / np.linalg.norm(eye - np.asarray(m.mean)[v])
      if j in (0, 1, 2, 3, 13, 14, 15, 16) or yaw > 0:
        assert abs(normals[v] @ view) < 0.45, (yaw, j, float(normals[v] @ view))
  # the chosen point's position is differentiated
  import jax
  g = jax.grad(lambda s: objective.landmarks_2d(slid, s, expr, cam, 256)[:17].sum())(shape_c)
  assert np.all(np.isfinite(np.asarray(g))) and np.abs(np.asarray(g)).max() > 0


def test_the_bound_recovers_a_face_of_the_model_and_the_ridge_holds_it(ict_model):
  m = ict_model
  rng = np.random.default_rng(3)
  a = np.clip(rng.normal(size=m.num_identity), -1.5, 1.5).astype(np.float32)
  truth = np.asarray(morphable.vertices(m, a))
  scan = shape.Mesh.of(truth, np.asarray(m.triangles))
  lm = np.asarray(morphable.landmarks(m, truth))
  free, ka, _ = shape.model_bound(m, scan, lm, ridge=0.0, expression=False, rounds=4)
  err = shape.now_protocol(shape.Mesh.of(free, scan.triangles), np.asarray(morphable.landmarks(m, free)), scan, lm)
  mean_err = shape.now_protocol(shape.Mesh.of(np.asarray(m.mean), scan.triangles),
                                np.asarray(morphable.landmarks(m, m.mean)), scan, lm)
  assert err["scan_to_mesh_mm"] < 0.15 * mean_err["scan_to_mesh_mm"], (err, mean_err)
  _, kr, _ = shape.model_bound(m, scan, lm, ridge=1.0, expression=False, rounds=4)
  with pytest.raises(ValueError, match="ridge"):
    shape.model_bound(m, scan, lm, ridge=-1.0)
  with pytest.raises(ValueError, match="scan_landmarks"):
    shape.model_bound(m, scan, lm[:5])
  with pytest.raises(ValueError, match="at least one View"):
    correspondence.learn_points(m, [], range(17, 68))
  assert np.linalg.norm(kr) < 0.8 * np.linalg.norm(ka)


def test_dense_points_are_learned_stored_and_fitted(ict_model, tmp_path):
  """MediaPipe's points: a start at the nearest vertices and the surface search recover known points; the
  model stores them (file round trip); the dense term is 0 at the truth, grows off it, and is off (0) for a
  photo without dense points."""
  m = ict_model
  mean = np.asarray(m.mean)
  rng = np.random.default_rng(1)
  cand = np.flatnonzero(np.asarray(m.face_mask) & (np.asarray(m.material) == 0))
  tri = np.asarray(m.triangles)
  skin = tri[(np.asarray(m.material)[tri] == 0).all(1) & np.asarray(m.face_mask)[tri].all(1)]
  skin = skin[np.abs(mean[skin].mean(1)[:, 0]) < 40]  # front of the face: seen from every view
  truth_c = skin[rng.choice(len(skin), 12, replace=False)]
  truth_b = rng.dirichlet(np.ones(3) * 3, 12)
  views = _views(m, 12, 3, truth_c, truth_b)
  c0, b0 = correspondence.nearest_vertices(m, views, eyes=(0, 1))
  assert set(np.unique(c0)) <= set(cand)
  corners, bary = correspondence.learn_points(m, views, range(12), start=(c0, b0), eyes=(0, 1), radius_mm=6.0,
                                              steps=10)
  got = np.einsum("lk,lkd->ld", bary, mean[corners])
  truth = np.einsum("lk,lkd->ld", truth_b, mean[truth_c])
  assert np.linalg.norm(got - truth, axis=1).max() < 0.6
  with pytest.raises(ValueError, match="as many as the start points"):
    correspondence.learn_points(m, views, range(3), eyes=(0, 1))  # start: the 68, views: 12 points
  dm = morphable.with_landmarks(m, m.landmark_corners, m.landmark_bary, m.contour, (corners, bary))
  morphable.save_landmarks(str(tmp_path / "lm.npz"), dm)
  back = morphable.load_landmarks(m, str(tmp_path / "lm.npz"))
  np.testing.assert_array_equal(back.dense_corners, corners)
  with pytest.raises(ValueError, match="dense_corners and dense_bary"):
    morphable.with_landmarks(m, m.landmark_corners, m.landmark_bary, None, (corners, bary[:3]))
  # the dense term
  from ganfit_jax import params as params_lib
  from ganfit_jax.scene import make as make_scene
  scene = make_scene(dm, None, None, canvas_size=256)
  v = params_lib.init(dm, jnp.zeros((1,)))
  f = params_lib.to_face(v, dm.expression_kind)
  truth2d = np.asarray(objective.dense_2d(dm, f.shape, f.expression, f.camera, 256))
  w = objective.LossWeights.create(dense=1.0)
  lm = np.asarray(objective.landmarks_2d(dm, f.shape, f.expression, f.camera, 256))

  def term(dense, weights):
    t = objective.prepare_target(scene, np.zeros((256, 256, 3), np.float32), lm, None, dense, weights)
    return float(objective.geometry_terms(v, scene, t, w)["dense"])
  assert term(truth2d, None) < 1e-6
  assert term(truth2d + 2.56, None) == pytest.approx(2.0, rel=1e-3)  # 2.56 px off in x and y: 2 (canvas/100)^2
  pts, wts = objective.dense_targets([truth2d + 2.56, None], 12, iris_weight=0.0)
  assert wts[1].sum() == 0 and term(pts[1], wts[1]) == 0.0
  with pytest.raises(ValueError, match="learn it for this detector"):
    objective.dense_targets([truth2d[:5]], 12)
  with pytest.raises(ValueError, match="dense points must be"):
    objective.prepare_target(scene, np.zeros((256, 256, 3), np.float32), lm, None, truth2d[:5], None)


def test_landmark_confidence_is_learned_stored_and_weights_the_terms(ict_model, tmp_path):
  """The detector's per-point scatter: measured on views (RMS over the eye distance), stored with the
  correspondence (a file from before it existed reads as equal scatter), and turned into inverse-square
  weights of mean 1 that multiply the landmark and dense weights."""
  m = ict_model
  c, b = np.asarray(m.landmark_corners), np.asarray(m.landmark_bary)
  views = _views(m, 6, 5, c, b)
  rng = np.random.default_rng(2)
  offsets = np.where(np.arange(68) < 17, 0.06, 0.02)  # jaw points off by 6% of the eye distance, others 2%
  noisy = []
  for v in views:
    eye = np.linalg.norm(v.detected[36] - v.detected[45])
    angle = rng.uniform(0, 2 * np.pi, 68)
    noisy.append(dataclasses.replace(v, detected=v.detected + eye * offsets[:, None]
                                     * np.stack([np.cos(angle), np.sin(angle)], 1)))
  s = correspondence.scatter(m, noisy, c, b)
  # the eye corners move too, so the normaliser is not exact: within a few percent
  np.testing.assert_allclose(s, offsets, rtol=0.08)
  w = objective.confidence_weights(s)
  assert w.mean() == pytest.approx(1.0, rel=1e-5) and w[:17].max() < w[17:].min()
  assert w[30] / w[0] == pytest.approx((s[0] / s[30]) ** 2, rel=1e-4)
  np.testing.assert_allclose(objective.confidence_weights(np.full(68, 0.03)), 1.0)
  np.testing.assert_allclose(objective.landmark_weights(2, 0.5, s), np.tile(0.5 ** (np.arange(68) < 17) * w, (2, 1)),
                             rtol=1e-6)
  with pytest.raises(ValueError, match="finite and > 0"):
    objective.confidence_weights(np.zeros(68))
  # stored with the correspondence; a file without it reads as equal scatter
  sm = morphable.with_landmarks(m, c, b, None, None, (s, np.asarray(m.dense_scatter)))
  morphable.save_landmarks(str(tmp_path / "lm.npz"), sm)
  np.testing.assert_allclose(morphable.load_landmarks(m, str(tmp_path / "lm.npz")).landmark_scatter, s)
  with np.load(str(tmp_path / "lm.npz")) as z:
    old = {k: z[k] for k in z.files if not k.endswith("_scatter")}
  np.savez(str(tmp_path / "old.npz"), **old)
  back = morphable.load_landmarks(m, str(tmp_path / "old.npz"))
  assert np.all(np.asarray(back.landmark_scatter) == 1) and back.dense_scatter.shape == back.dense_corners.shape[:1]
  with pytest.raises(ValueError, match="landmark_scatter must be finite"):
    morphable.with_landmarks(m, c, b, None, None, (-s, np.asarray(m.dense_scatter)))
  with pytest.raises(ValueError, match="scatter must be"):
    objective.dense_targets([None], int(m.dense_corners.shape[0]), 0.0, np.ones(3))


def test_learning_from_photos_is_for_dlibs_68_only(tmp_path):
  """tools/learn_landmarks.py --source=photos fits the photos' geometry to the dense points, so it refuses to
  learn the dense points themselves: a message, exit 2, nothing written."""
  import subprocess
  import sys
  from conftest import ROOT
  out = tmp_path / "lm.npz"
  r = subprocess.run([sys.executable, f"{ROOT}/tools/learn_landmarks.py", "--source=photos", "--points=dense",
                      f"--out={out}"], capture_output=True, text=True, timeout=300)
  assert r.returncode == 2, r.stderr[-2000:]
  assert "--source=photos learns dlib's 68" in r.stderr and "Traceback" not in r.stderr
  assert not out.exists()
