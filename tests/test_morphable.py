import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganfit_jax import camera, morphable
from ganfit_jax.formats import ict

from conftest import make_tiny_model


def test_mean_face_eye_corner_distance_in_mm(ict_model):
  lm = np.asarray(morphable.landmarks(ict_model, ict_model.mean))
  d = np.linalg.norm(lm[36] - lm[45])
  assert 80.0 <= d <= 100.0, d


def test_identity_component_changes_mesh(ict_model):
  base = morphable.vertices(ict_model, jnp.zeros(100), jnp.zeros(53))
  moved = morphable.vertices(ict_model, jnp.zeros(100).at[0].set(3.0), jnp.zeros(53))
  disp = np.linalg.norm(np.asarray(moved - base), axis=1)
  assert disp.max() > 5.0  # +3 sigma moves some vertex by more than 5 mm


def test_jaw_open_moves_chin_more_than_forehead(ict_model):
  j = ict_model.expression_names.index("jawOpen")
  e = jnp.zeros(53).at[j].set(1.0)
  base = morphable.vertices(ict_model, jnp.zeros(100))
  moved = morphable.vertices(ict_model, jnp.zeros(100), e)
  disp = np.linalg.norm(np.asarray(moved - base), axis=1)
  lm = np.asarray(ict_model.landmarks)
  chin = disp[lm[8]]
  brows = disp[lm[17:27]].max()
  assert chin > 10.0 and chin > 20 * brows, (chin, brows)


def test_landmarks_equal_upstream_list(ict_model, ict_dir):
  upstream = ict.parse_landmarks(ict_dir + "/README.upstream.md")
  # default regions keep vertices 0..11247 in place, so indices are unchanged
  np.testing.assert_array_equal(np.asarray(ict_model.landmarks), upstream)
  assert upstream[:3].tolist() == [1225, 1888, 1052]


def test_frontal_landmark_layout(ict_model):
  xy, depth = camera.project(camera.default_camera(), morphable.landmarks(ict_model, ict_model.mean), 224, 224)
  xy, depth = np.asarray(xy), np.asarray(depth)
  # iBUG 36..41 is the eye on the image's left in a frontal photo
  assert xy[36:42, 0].mean() < 112 < xy[42:48, 0].mean()
  assert xy[0, 0] < xy[16, 0]  # jaw runs left to right
  assert xy[19, 1] < xy[30, 1] < xy[51, 1] < xy[8, 1]  # brow above nose tip above lip above chin
  central = [27, 28, 29, 30, 33, 51, 57, 62, 66, 8]
  assert central[int(np.argmin(depth[central]))] == 30  # nose tip nearest the camera


def test_vertex_normals_point_outwards(ict_model):
  n = np.asarray(morphable.vertex_normals(ict_model.mean, ict_model.triangles))
  nose = int(ict_model.landmarks[30])
  assert n[nose, 2] > 0.9
  np.testing.assert_allclose(np.linalg.norm(n[:9409], axis=1), 1.0, atol=1e-4)


def test_vmap_jit_grad_agree():
  model = make_tiny_model()
  shapes = jnp.asarray(np.random.default_rng(1).normal(size=(4, 2)), jnp.float32)
  exprs = jnp.asarray(np.random.default_rng(2).normal(size=(4, 2)), jnp.float32)
  batched = jax.vmap(morphable.vertices, in_axes=(None, 0, 0))(model, shapes, exprs)
  looped = jnp.stack([morphable.vertices(model, s, e) for s, e in zip(shapes, exprs)])
  np.testing.assert_allclose(batched, looped, rtol=1e-6, atol=1e-4)
  jitted = jax.jit(morphable.vertices)(model, shapes[0], exprs[0])
  np.testing.assert_allclose(jitted, looped[0], rtol=1e-6, atol=1e-4)
  # linear model: d(sum of vertices)/d(shape_k) = sum of basis k
  g = jax.grad(lambda s: morphable.vertices(model, s, exprs[0]).sum())(shapes[0])
  np.testing.assert_allclose(g, np.asarray(model.id_basis).sum(axis=(1, 2)), rtol=1e-5)


def test_shape_errors_are_clear():
  model = make_tiny_model()
  with pytest.raises(ValueError, match="vmap"):
    morphable.vertices(model, jnp.zeros((3, 2)))
  with pytest.raises(ValueError, match="K <= 2"):
    morphable.vertices(model, jnp.zeros(5))


def test_npz_round_trip_and_corruption(tmp_path):
  model = make_tiny_model()
  p = str(tmp_path / "m.npz")
  morphable.save_npz(p, model, {"source": "test"})
  back = morphable.load_npz(p)
  for k in ("mean", "id_basis", "exp_basis", "triangles", "uv", "uv_triangles", "landmarks", "face_mask", "material"):
    np.testing.assert_array_equal(np.asarray(getattr(back, k)), np.asarray(getattr(model, k)))
  assert back.name == "cube"
  with open(p, "r+b") as f:
    f.truncate(100)
  with pytest.raises(ValueError, match="corrupt"):
    morphable.load_npz(p)
  with pytest.raises(FileNotFoundError, match="fetch_assets"):
    morphable.load_npz(str(tmp_path / "nope.npz"))


def test_model_validation_rejects_bad_indices():
  model = make_tiny_model()
  bad = model.replace(triangles=model.triangles.at[0, 0].set(99))
  with pytest.raises(ValueError, match="triangle indices"):
    bad.validate()
