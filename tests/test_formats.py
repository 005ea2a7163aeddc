"""Converters: real ICT-FaceKit data and synthetic files in each official layout."""

import os
import pickle

import h5py
import numpy as np
import pytest
import scipy.io

from ganfit_jax.formats import bfm, ict
from ganfit_jax.types import EXPRESSION_BLENDSHAPE, MATERIAL_EYE, MATERIAL_SKIN


def test_ict_convert_regions_and_units(ict_dir):
  model, meta = ict.convert(ict_dir, regions=("face", "head_neck"), num_identity=2)
  assert model.num_vertices == 11248 and model.num_identity == 2 and model.num_expression == 53
  assert model.expression_kind == EXPRESSION_BLENDSHAPE and model.expression_names[26] == "jawOpen"
  assert meta["units"] == "mm"
  # quads were split: 26384 polygons of the whole mesh -> only face+head triangles kept, all valid
  tri = np.asarray(model.triangles)
  assert tri.max() < 11248 and tri.shape[0] > 20000
  assert np.asarray(model.face_mask).sum() == 9409
  assert (np.asarray(model.material) == MATERIAL_SKIN).all()
  # centimetres -> millimetres: the raw neutral mesh's nose tip is 10x smaller
  raw = ict.read_vertices(os.path.join(ict_dir, "FaceXModel", "generic_neutral_mesh.obj"))
  np.testing.assert_allclose(np.asarray(model.mean)[4000], raw[4000] * 10, rtol=1e-5)

  with_eyes, _ = ict.convert(ict_dir, regions=("face", "head_neck", "eyes"), num_identity=1)
  assert with_eyes.num_vertices == 11248 + 3140
  np.testing.assert_allclose(np.asarray(with_eyes.mean)[np.asarray(with_eyes.landmarks)],
                             np.asarray(model.mean)[np.asarray(model.landmarks)])
  with pytest.raises(ValueError, match="unknown ICT region"):
    ict.convert(ict_dir, regions=("face", "hair"))
  with pytest.raises(ValueError, match="not both"):
    ict.convert(ict_dir, regions=("face", "eyes", "eye_caps"))


def test_ict_eye_caps_fill_the_eyes_inside_the_face_tile(ict_dir):
  """The default regions keep the visible front of each eyeball, textured in a free disc of the face tile."""
  from ganfit_jax.texture import layout
  model, _ = ict.convert(ict_dir, num_identity=1)
  mat = np.asarray(model.material)
  eye = mat == MATERIAL_EYE
  assert 11248 < model.num_vertices < 11248 + 3140 and eye.sum() == model.num_vertices - 11248
  # the cap sits in front of the eye socket: between the outer eye corners, in front of the eyeball centre
  v, lm = np.asarray(model.mean), np.asarray(model.landmarks)
  for side, (a, b) in ((-1, (36, 39)), (1, (42, 45))):
    cap = v[eye & (np.sign(v[:, 0]) == side)]
    assert cap[:, 2].max() > v[lm[a], 2] - 6.0
    lo, hi = sorted((v[lm[a], 0], v[lm[b], 0]))
    assert lo - 6 < np.median(cap[:, 0]) < hi + 6
  # eye texels are a disc on each side of the tile, and no skin texel was given to the eyes
  tm = layout.texel_map(model, 128)
  eye_tex = tm.mask & (tm.material == MATERIAL_EYE)
  assert eye_tex[:, :64].sum() > 20 and abs(eye_tex[:, :64].sum() - eye_tex[:, 64:].sum()) <= 4
  plain, _ = ict.convert(ict_dir, regions=("face", "head_neck"), num_identity=1)
  assert not (layout.texel_map(plain, 128).mask & eye_tex).any()
  colour, where = layout.eye_fill(tm)
  assert (where == eye_tex).all() and colour[eye_tex].min() < 0.1 < 0.7 < colour[eye_tex].max()  # pupil, sclera


def test_ict_bad_directory(tmp_path):
  with pytest.raises(ict.ICTFormatError, match="FaceXModel"):
    ict.convert(str(tmp_path))


def test_triangulate_quads():
  tris, uvt = ict.triangulate([([0, 1, 2, 3], [4, 5, 6, 7]), ([4, 5, 6], [0, 1, 2])])
  assert tris.tolist() == [[0, 1, 2], [0, 2, 3], [4, 5, 6]]
  assert uvt.tolist() == [[4, 5, 6], [4, 6, 7], [0, 1, 2]]


# ----------------------------------------------------------------------------- synthetic layouts

V = 12
RNG = np.random.default_rng(0)


def _mesh():
  """A small closed-ish surface: vertices on a sphere, triangles from a fan."""
  t = np.linspace(0, 2 * np.pi, V, endpoint=False)
  v = np.stack([np.cos(t), np.sin(t), 0.3 * np.cos(3 * t)], 1) * 80
  tri = np.array([[0, i, i + 1] for i in range(1, V - 1)])
  return v, tri


def _landmarks(tmp_path):
  p = str(tmp_path / "lm.txt")
  np.savetxt(p, np.arange(68) % V, fmt="%d")
  return p


def test_bfm2009_layout(tmp_path):
  v, tri = _mesh()
  pc = np.linalg.qr(RNG.normal(size=(3 * V, 3)))[0]
  ev = np.array([[3.0], [2.0], [1.0]]) * 1000
  p = str(tmp_path / "01_MorphableModel.mat")
  scipy.io.savemat(p, dict(shapeMU=(v * 1000).reshape(-1, 1), shapePC=pc, shapeEV=ev, tl=tri + 1,
                           texMU=np.zeros((3 * V, 1)), texPC=np.zeros((3 * V, 1)), texEV=np.ones((1, 1))))
  m = bfm.read("bfm2009", p, _landmarks(tmp_path))
  np.testing.assert_allclose(np.asarray(m.mean), v, rtol=1e-5, atol=1e-4)  # micrometres -> mm
  np.testing.assert_allclose(np.asarray(m.id_basis)[0].reshape(-1), pc[:, 0] * 3.0, rtol=1e-5, atol=1e-6)
  assert m.num_expression == 0 and m.uv.shape == (V, 2)


def test_bfm2017_layout(tmp_path):
  v, tri = _mesh()
  p = str(tmp_path / "model2017.h5")
  basis = np.linalg.qr(RNG.normal(size=(3 * V, 4)))[0]
  with h5py.File(p, "w") as f:
    f["shape/model/mean"] = v.reshape(-1)
    f["shape/model/pcaBasis"] = basis
    f["shape/model/pcaVariance"] = np.array([4.0, 1.0, 1.0, 1.0])
    f["expression/model/mean"] = np.zeros(3 * V)
    f["expression/model/pcaBasis"] = basis[:, :2]
    f["expression/model/pcaVariance"] = np.array([9.0, 1.0])
    f["shape/representer/cells"] = tri.T
  m = bfm.read("bfm2017", p, _landmarks(tmp_path))
  assert m.num_identity == 4 and m.num_expression == 2
  np.testing.assert_allclose(np.asarray(m.exp_basis)[0].reshape(-1), basis[:, 0] * 3.0, rtol=1e-5, atol=1e-6)


class _FakeCh:  # pickled under a chumpy module name below
  pass


def test_flame_layout_with_chumpy_arrays(tmp_path):
  v, tri = _mesh()
  dirs = RNG.normal(size=(V, 3, 5)) * 1e-3
  # emulate chumpy: an object of class chumpy.ch.Ch whose state holds the array under 'x'
  _FakeCh.__module__, _FakeCh.__qualname__ = "chumpy.ch", "Ch"
  import sys
  import types
  mod = types.ModuleType("chumpy.ch")
  mod.Ch = _FakeCh
  sys.modules["chumpy"], sys.modules["chumpy.ch"] = types.ModuleType("chumpy"), mod
  try:
    ch = _FakeCh()
    ch.__dict__["x"] = dirs
    p = str(tmp_path / "generic_model.pkl")
    with open(p, "wb") as f:
      pickle.dump(dict(v_template=v / 1000.0, shapedirs=ch, f=tri), f)
  finally:
    del sys.modules["chumpy"], sys.modules["chumpy.ch"]
  m = bfm.read("flame", p, _landmarks(tmp_path), num_shape=3)
  assert m.num_identity == 3 and m.num_expression == 2
  np.testing.assert_allclose(np.asarray(m.mean), v, rtol=1e-5, atol=1e-4)  # metres -> mm
  np.testing.assert_allclose(np.asarray(m.exp_basis)[1], dirs[:, :, 4] * 1000, rtol=1e-5, atol=1e-5)


def test_lsfm_layout(tmp_path):
  v, tri = _mesh()
  comps = np.linalg.qr(RNG.normal(size=(3 * V, 3)))[0].T
  p = str(tmp_path / "lsfm.mat")
  scipy.io.savemat(p, dict(mean=v.reshape(-1), components=comps, eigenvalues=np.array([16.0, 4.0, 1.0]),
                           trilist=tri))
  m = bfm.read("lsfm", p, _landmarks(tmp_path))
  np.testing.assert_allclose(np.asarray(m.id_basis)[0].reshape(-1), comps[0] * 4.0, rtol=1e-5, atol=1e-6)


def test_3ddfa_layout(tmp_path):
  v, tri = _mesh()
  n_shp, n_exp = 3, 2
  d = dict(u=(v * 1000).reshape(-1, 1).astype(np.float32),
           w_shp=np.linalg.qr(RNG.normal(size=(3 * V, n_shp)))[0].astype(np.float32),
           w_exp=RNG.normal(size=(3 * V, n_exp)).astype(np.float32),
           keypoints=(np.repeat(np.arange(68) % V, 3) * 3 + np.tile([0, 1, 2], 68)).astype(np.int32))
  pkl = str(tmp_path / "bfm_noneck_v3.pkl")
  with open(pkl, "wb") as f:
    pickle.dump(d, f)
  cfg = tmp_path / "configs"
  cfg.mkdir()
  with open(cfg / "tri.pkl", "wb") as f:
    pickle.dump(tri.T.astype(np.int32), f)
  std = np.ones(62)
  std[12:15] = [500.0, 400.0, 300.0]
  with open(cfg / "param_mean_std_62d_120x120.pkl", "wb") as f:
    pickle.dump(dict(mean=np.zeros(62), std=std), f)
  scipy.io.savemat(str(cfg / "BFM_UV.mat"), dict(UV=RNG.uniform(size=(V + 5, 2))))
  np.save(cfg / "indices.npy", np.arange(V))
  m, meta = bfm.convert_3ddfa(pkl, str(cfg))
  np.testing.assert_allclose(np.asarray(m.mean), v, rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(np.asarray(m.id_basis)[0].reshape(-1), d["w_shp"][:, 0] * 500 / 1000, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_array_equal(np.asarray(m.landmarks), np.arange(68) % V)
  assert meta["units"] == "mm"


def test_landmark_file_must_hold_68(tmp_path):
  p = str(tmp_path / "lm.txt")
  np.savetxt(p, np.arange(10), fmt="%d")
  with pytest.raises(bfm.FormatError, match="68"):
    bfm.load_landmarks(p)


def test_unknown_format():
  with pytest.raises(ValueError, match="unknown model format"):
    bfm.read("obj", "x", None)
