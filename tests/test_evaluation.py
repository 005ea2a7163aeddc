"""Evaluation library: synthetic cases with known answers, file readers, the CLI and the 3DDFA_V2 peer."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ganfit_jax.evaluation import identity as id_eval
from ganfit_jax.evaluation import landmarks as lm_eval
from ganfit_jax.evaluation import shape, texture

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _reference_closest(p, a, b, c):
  """An independent exact method: the plane projection if it falls inside, else the nearest of the edges."""
  def seg(p, x, y):
    t = np.clip(np.dot(p - x, y - x) / max(np.dot(y - x, y - x), 1e-30), 0, 1)
    return x + t * (y - x)
  n = np.cross(b - a, c - a)
  n = n / np.linalg.norm(n)
  q = p - np.dot(p - a, n) * n
  def inside(q):
    return all(np.dot(np.cross(v1 - v0, q - v0), n) >= -1e-12 for v0, v1 in ((a, b), (b, c), (c, a)))
  if inside(q):
    return q
  cands = [seg(p, a, b), seg(p, b, c), seg(p, c, a)]
  return min(cands, key=lambda x: np.linalg.norm(p - x))


def test_closest_point_on_triangles_against_an_independent_method():
  rng = np.random.default_rng(0)
  a, b, c = (rng.normal(size=(500, 3)) for _ in range(3))
  p = rng.normal(size=(500, 3)) * 2
  got = shape.closest_point_on_triangles(p, a, b, c)
  ref = np.stack([_reference_closest(p[i], a[i], b[i], c[i]) for i in range(500)])
  np.testing.assert_allclose(got, ref, atol=1e-9)


def test_closest_points_on_a_mesh_against_brute_force():
  rng = np.random.default_rng(1)
  v = rng.normal(size=(60, 3)) * 10
  tri = rng.integers(0, 60, size=(80, 3))
  tri = tri[(tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])]
  mesh = shape.Mesh.of(v, tri)
  q = rng.normal(size=(300, 3)) * 15
  got = shape.closest_points(q, mesh)
  corners = v[tri]
  brute = np.array([np.linalg.norm(shape.closest_point_on_triangles(np.repeat(p[None], len(tri), 0), corners[:, 0],
                                                                    corners[:, 1], corners[:, 2]) - p, axis=1).min()
                    for p in q])
  np.testing.assert_allclose(got.distance, brute, atol=1e-9)
  np.testing.assert_allclose(np.linalg.norm(got.points - q, axis=1), got.distance, atol=1e-9)


@pytest.fixture(scope="module")
def sphere():
  import trimesh
  m = trimesh.creation.icosphere(subdivisions=5, radius=50.0)
  return shape.Mesh.of(m.vertices, m.faces), np.asarray(m.vertex_normals)


def test_mesh_against_itself_and_a_copy_offset_along_its_normals(sphere):
  mesh, normals = sphere
  assert shape.closest_points(mesh.vertices, mesh).distance.max() < 1e-9
  offset = mesh.vertices + normals * 1.0
  d = shape.closest_points(offset, mesh).distance
  assert abs(d.mean() - 1.0) < 0.02 and d.std() < 0.02
  # through a protocol (rigid: the scale cannot absorb the offset)
  lm = mesh.vertices[np.linspace(0, len(mesh.vertices) - 1, 68).astype(int)]
  res = shape.now_protocol(mesh, lm, shape.Mesh.of(offset, mesh.triangles), lm * (51.0 / 50.0), scale=False)
  assert abs(res["scan_to_mesh_mm"] - 1.0) < 0.02, res
  # NoW's default: the landmarks' scale (here exact), then RIGID ICP: the offset stays measured; the named
  # similarity-ICP variant lets the scale absorb it
  scan = shape.Mesh.of(offset, mesh.triangles)
  official = shape.evaluate(mesh, lm, scan, lm, "now")
  similarity = shape.evaluate(mesh, lm, scan, lm, "now_similarity")
  assert official["protocol"] == "now" and abs(official["scan_to_mesh_mm"] - 1.0) < 0.02, official
  assert similarity["protocol"] == "now_similarity" and similarity["scan_to_mesh_mm"] < 0.1, similarity


def _random_similarity(seed):
  from scipy.spatial.transform import Rotation
  rng = np.random.default_rng(seed)
  return 1.15, Rotation.from_rotvec(rng.normal(size=3) * 0.4).as_matrix(), rng.normal(size=3) * 30


def test_transformed_copy_aligns_to_zero_only_with_scale(ict_model):
  face = shape.Mesh.of(np.asarray(ict_model.mean), np.asarray(ict_model.triangles))
  lm = face.vertices[np.asarray(ict_model.landmarks)]
  s, r, t = _random_similarity(1)
  scan = face.transformed(s, r, t)
  scan_lm = s * lm @ r.T + t
  for protocol in ("now", "micc", "regions"):
    res = shape.evaluate(face, lm, scan, scan_lm, protocol, scale=True)
    assert res["scan_to_mesh_mm"] < 0.01, (protocol, res)
  rigid = shape.evaluate(face, lm, scan, scan_lm, "now", scale=False)
  assert rigid["scan_to_mesh_mm"] > 1.0, rigid
  regions = shape.evaluate(face, lm, scan, scan_lm, "regions")
  assert all(regions[f"{k}_points"] > 50 for k in shape.REGIONS)
  # umeyama recovers the transform itself
  s2, r2, t2 = shape.umeyama(lm, scan_lm)
  assert abs(s2 - s) < 1e-9 and np.abs(r2 - r).max() < 1e-9 and np.abs(t2 - t).max() < 1e-6


def test_partial_scan_of_the_same_mesh_is_zero(ict_model):
  face = shape.Mesh.of(np.asarray(ict_model.mean), np.asarray(ict_model.triangles))
  lm = face.vertices[np.asarray(ict_model.landmarks)]
  half = face.cropped(face.vertices[:, 0] > 0)  # the face's left half only
  res = shape.now_protocol(face, lm, half, lm)
  assert res["scan_to_mesh_mm"] < 0.01 and res["points"] == len(half.vertices)


def test_nme_conventions_on_hand_made_points():
  gt = np.zeros((68, 2))
  gt[36], gt[45] = [0, 0], [100, 0]  # outer eye corners 100 px apart
  gt[37:42] = [10, 0]
  gt[42:45] = gt[46:48] = [80, 0]
  gt[0], gt[16] = [0, 60], [100, -40]  # box 100 x 100 -> diagonal 141.42
  pred = gt + np.array([3.0, 4.0])  # every point 5 px off
  assert lm_eval.nme(pred, gt, "outer_eye") == pytest.approx(0.05)
  pupils = np.linalg.norm(gt[36:42].mean(0) - gt[42:48].mean(0))
  assert lm_eval.nme(pred, gt, "inter_pupil") == pytest.approx(5.0 / pupils)
  assert lm_eval.nme(pred, gt, "bbox_diagonal") == pytest.approx(5.0 / np.hypot(100, 100))
  with pytest.raises(ValueError, match="normalisation"):
    lm_eval.nme(pred, gt, "nose")


def test_landmark_files_and_the_pts_shift(tmp_path):
  pts = np.arange(136, dtype=float).reshape(68, 2) + 1.0  # 1-based iBUG coordinates
  body = "version: 1\nn_points: 68\n{\n" + "\n".join(f"{x} {y}" for x, y in pts) + "\n}\n"
  (tmp_path / "a.pts").write_text(body)
  got = lm_eval.read_landmarks(str(tmp_path / "a.pts"))
  np.testing.assert_allclose(got, pts - 0.5)  # 1-based index -> 0-based index (-1) -> pixel centres (+0.5)
  np.save(tmp_path / "b.npy", pts)
  np.testing.assert_allclose(lm_eval.read_landmarks(str(tmp_path / "b.npy")), pts)
  (tmp_path / "c.json").write_text(json.dumps({"landmarks_3d_mm": np.c_[pts, pts[:, :1]].tolist()}))
  assert lm_eval.read_landmarks(str(tmp_path / "c.json"), dims=3).shape == (68, 3)
  (tmp_path / "d.ljson").write_text(json.dumps({"landmarks": {"points": pts[:, ::-1].tolist()}}))
  np.testing.assert_allclose(lm_eval.read_landmarks(str(tmp_path / "d.ljson")), pts + 0.5)  # menpo: 0-based
  (tmp_path / "e.ljson").write_text(json.dumps({"groups": {"LJSON": {"landmarks": {"points": pts[:, ::-1].tolist()}}}}))
  np.testing.assert_allclose(lm_eval.read_landmarks(str(tmp_path / "e.ljson")), pts + 0.5)
  (tmp_path / "bad.pts").write_text("nothing here")
  for bad in ("bad.pts", "missing.npy", "c.txt"):
    with pytest.raises(lm_eval.LandmarkFileError):
      lm_eval.read_landmarks(str(tmp_path / bad))
  np.save(tmp_path / "short.npy", pts[:10])
  with pytest.raises(lm_eval.LandmarkFileError, match="68 points"):
    lm_eval.read_landmarks(str(tmp_path / "short.npy"))


def test_verification_measures():
  rng = np.random.default_rng(0)
  same = np.arange(200) % 2 == 0
  scores = np.where(same, 0.8, 0.2) + rng.normal(size=200) * 0.05
  v = id_eval.verification(scores, same, threshold=0.5)
  assert v["accuracy_10fold"] == 1.0 and v["accuracy_fixed"] == 1.0 and v["roc_auc"] == 1.0
  assert id_eval.roc_auc(rng.normal(size=400), np.arange(400) % 2 == 0) == pytest.approx(0.5, abs=0.08)
  assert id_eval.verification(-scores, same, higher_is_same=False)["roc_auc"] == 1.0
  with pytest.raises(ValueError, match="must not be the fitting network"):
    id_eval.check_judge("sface", "sface")
  id_eval.check_judge(id_eval.JUDGE, "sface")


def test_texture_measures():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(300, 8))
  assert texture.frechet(a, a) < 1e-6 and texture.frechet(a, a + 1.0) == pytest.approx(8.0, rel=1e-6)
  assert abs(texture.kid(a, a)) < 0.1 * texture.kid(a, a + 1.0)
  np.testing.assert_allclose(texture.rgb_to_lab(np.ones(3)), [100, 0, 0], atol=1e-3)
  np.testing.assert_allclose(texture.rgb_to_lab(np.zeros(3)), [0, 0, 0], atol=1e-6)
  lm = np.array([[50 + 40 * np.cos(t), 60 + 45 * np.sin(t)] for t in np.linspace(np.pi, 2 * np.pi, 68)])
  lm[:17] = np.stack([np.linspace(10, 90, 17), 60 + 30 * np.sin(np.linspace(0, np.pi, 17))], 1)
  lm[17:27] = np.stack([np.linspace(15, 85, 10), np.full(10, 25.0)], 1)
  lm[36:48] = [[30 + i, 40] for i in range(6)] + [[62 + i, 40] for i in range(6)]
  lm[48:68] = [[40 + i, 75] for i in range(20)]
  img = np.full((120, 100, 3), 0.6)
  assert texture.skin_mask(img.shape, lm).sum() > 500
  assert texture.skin_colour_error(img, img, lm) < 1e-9
  assert texture.skin_colour_error(img, img * 0.9, lm) > 3


def _evaluate(args, cwd):
  return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "evaluate.py")] + args,
                        capture_output=True, text=True, cwd=str(cwd))


def test_evaluate_cli_scan_mode_and_bad_input(tmp_path, ict_model):
  import trimesh
  face = shape.Mesh.of(np.asarray(ict_model.mean), np.asarray(ict_model.triangles))
  lm = face.vertices[np.asarray(ict_model.landmarks)]
  s, r, t = _random_similarity(2)
  trimesh.Trimesh(face.vertices, face.triangles, process=False).export(tmp_path / "pred.obj")
  trimesh.Trimesh(s * face.vertices @ r.T + t, face.triangles, process=False).export(tmp_path / "scan.ply")
  (tmp_path / "report.json").write_text(json.dumps({"landmarks_3d_mm": lm.tolist()}))
  np.save(tmp_path / "scan_lm.npy", s * lm @ r.T + t)
  res = _evaluate(["--mode=scan", f"--pred={tmp_path / 'pred.obj'}", f"--pred_landmarks={tmp_path / 'report.json'}",
                   f"--scan={tmp_path / 'scan.ply'}", f"--scan_landmarks={tmp_path / 'scan_lm.npy'}",
                   "--protocol=micc"], tmp_path)
  assert res.returncode == 0, res.stderr[-2000:]
  out = json.loads(res.stdout.strip().splitlines()[-1])
  assert out["protocol"] == "micc" and out["scan_to_mesh_mm"] < 0.01
  assert {"median_mm", "std_mm"} <= set(out)
  (tmp_path / "broken.obj").write_text("v 1 2\nf 1 2 3\n")
  bad = _evaluate(["--mode=scan", f"--pred={tmp_path / 'broken.obj'}", f"--pred_landmarks={tmp_path / 'report.json'}",
                   f"--scan={tmp_path / 'scan.ply'}", f"--scan_landmarks={tmp_path / 'nope.npy'}"], tmp_path)
  assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr


def test_ddfa_peer_on_a_photo():
  from ganfit_jax import face
  from ganfit_jax.evaluation import peers
  img = face.load_image(os.path.join(ROOT, "examples", "astronaut.jpg"))
  f = face.detect_faces(img)[0]
  r = peers.ddfa()(img, f.landmarks)
  assert r.vertices.shape == (38365, 3) and r.landmarks_photo.shape == (68, 2)
  assert lm_eval.nme(r.landmarks_photo, f.landmarks) < 0.08  # its landmarks land on the face
  eyes = np.linalg.norm(r.landmarks_3d[36] - r.landmarks_3d[45])
  assert 70 < eyes < 110  # millimetres


def test_synthetic_people_seen_in_several_views():
  """make_faces(views=k): k consecutive photos of one identity, each with its own camera and expression."""
  from conftest import make_tiny_model
  from ganfit_jax.evaluation import synthetic
  m = make_tiny_model()
  tex = np.full((2, 8, 8, 3), 0.5, np.float32)
  faces = synthetic.make_faces(m, np.asarray(m.uv), tex, 4, seed=0, size=32, views=2, expression_std=0.5)
  np.testing.assert_array_equal(faces[0].shape, faces[1].shape)
  np.testing.assert_allclose(faces[0].neutral, faces[1].neutral)
  assert not np.array_equal(faces[1].shape, faces[2].shape)
  assert not np.allclose(faces[0].camera, faces[1].camera) and not np.allclose(faces[0].expression, faces[1].expression)
  # views=1 draws the same people as before views existed: a new identity per photo
  one = synthetic.make_faces(m, np.asarray(m.uv), tex, 4, seed=0, size=32, expression_std=0.5)
  np.testing.assert_array_equal(one[0].shape, faces[0].shape)
  assert not np.array_equal(one[0].shape, one[1].shape)
  with pytest.raises(ValueError, match="views"):
    synthetic.make_faces(m, np.asarray(m.uv), tex, 2, views=0)
