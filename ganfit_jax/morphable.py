"""The 3D morphable model as pure functions, plus its ``.npz`` storage format.

All functions act on one example; ``jax.vmap`` them over a batch of
coefficients (the model is shared: ``in_axes=(None, 0, 0)``).
"""

from __future__ import annotations

import json
import os
from typing import Optional

import jax.numpy as jnp
import numpy as np

from ganfit_jax import numerics as gmath
from ganfit_jax.assets import AssetError
from ganfit_jax.types import MorphableModel, EXPRESSION_GAUSSIAN
from ganfit_jax.files import atomic_path

FORMAT_VERSION = 1


def vertices(model: MorphableModel, shape, expression=None):
  """Mesh vertices ``mean + sum_k shape_k id_k + sum_j expression_j exp_j``.

  Args:
    model: the morphable model.
    shape: (K,) identity coefficients with K <= K_id (missing ones are zero).
    expression: (E,) expression coefficients with E <= K_exp, or None.

  Returns:
    (V, 3) vertices in millimetres.
  """
  shape = jnp.asarray(shape)
  if shape.ndim != 1 or shape.shape[0] > model.num_identity:
    raise ValueError(f"shape must be (K,) with K <= {model.num_identity}, got {shape.shape}; "
                     "vmap over batches instead of passing (B, K)")
  k = shape.shape[0]
  v = model.mean + jnp.tensordot(shape, model.id_basis[:k], axes=1)
  if expression is not None:
    expression = jnp.asarray(expression)
    if expression.ndim != 1 or expression.shape[0] > model.num_expression:
      raise ValueError(f"expression must be (E,) with E <= {model.num_expression}, got {expression.shape}")
    e = expression.shape[0]
    v = v + jnp.tensordot(expression, model.exp_basis[:e], axes=1)
  return v


def face_normals(verts, triangles):
  """(F, 3) unit normals of triangles (counter-clockwise = outward)."""
  a, b, c = verts[triangles[:, 0]], verts[triangles[:, 1]], verts[triangles[:, 2]]
  return gmath.safe_normalize(jnp.cross(b - a, c - a))


def vertex_normals(verts, triangles):
  """(V, 3) unit per-vertex normals, area-weighted average of adjacent faces."""
  tv = verts[triangles]  # (F, 3, 3): one gather, one scatter-add (also in the gradient)
  fn = jnp.cross(tv[:, 1] - tv[:, 0], tv[:, 2] - tv[:, 0])  # length = 2 * area: area weighting for free
  n = jnp.zeros_like(verts).at[triangles.reshape(-1)].add(jnp.repeat(fn, 3, axis=0))
  return gmath.safe_normalize(n)


def landmark_points(model: MorphableModel, shape, expression=None):
  """(68, 3) landmark positions computed from the landmark rows only (cheap; equals
  ``landmarks(model, vertices(model, shape, expression))``)."""
  shape = jnp.asarray(shape)
  k = shape.shape[0]
  idx = model.landmarks
  v = model.mean[idx] + jnp.tensordot(shape, model.id_basis[:k, idx], axes=1)
  if expression is not None:
    expression = jnp.asarray(expression)
    v = v + jnp.tensordot(expression, model.exp_basis[:expression.shape[0], idx], axes=1)
  return v


def landmarks(model: MorphableModel, verts):
  """(68, 3) landmark positions of a mesh in the model's iBUG order."""
  return verts[model.landmarks]


# --------------------------------------------------------------------------- #
# Storage.

_ARRAY_FIELDS = ("mean", "id_basis", "exp_basis", "triangles", "uv", "uv_triangles",
                 "landmarks", "face_mask", "material")
_OPTIONAL_FIELDS = ("material",)  # absent in files written before it existed: all skin


def save_npz(path: str, model: MorphableModel, meta: Optional[dict] = None) -> None:
  """Writes a model atomically (a temporary file renamed into place)."""
  model.validate()
  arrays = {k: np.asarray(getattr(model, k)) for k in _ARRAY_FIELDS}
  arrays["mean"] = arrays["mean"].astype(np.float32)
  arrays["id_basis"] = arrays["id_basis"].astype(np.float32)
  arrays["exp_basis"] = arrays["exp_basis"].astype(np.float32)
  header = dict(format_version=FORMAT_VERSION, name=model.name,
                expression_kind=model.expression_kind,
                expression_names=list(model.expression_names), meta=meta or {})
  arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.savez(f, **arrays)


class ModelNotFoundError(AssetError, FileNotFoundError):
  """A morphable-model file that does not exist (exit 3 in the tools)."""


class ModelFileError(AssetError, ValueError):
  """A morphable-model file that cannot be read or is not a valid model (exit 3 in the tools)."""


def load(name_or_path: str = "ict") -> MorphableModel:
  """A morphable model by asset name (``ict``, ``bfm``) or from a converted ``.npz`` path."""
  from ganfit_jax import assets
  return load_npz(assets.resolve(name_or_path))


def load_npz(path: str) -> MorphableModel:
  """Reads a model written by :func:`save_npz`; raises ValueError on a bad file."""
  if not os.path.isfile(path):
    raise ModelNotFoundError(f"morphable model {path!r} not found: use an asset name (ict, bfm) or the path of a "
                             ".npz written by tools/convert_model.py; `python tools/fetch_assets.py` creates the "
                             "default model.")
  try:
    with np.load(path) as z:
      data = {k: z[k] for k in z.files}
  except Exception as e:  # zipfile/pickle errors surface as many types
    raise ModelFileError(f"cannot read morphable model {path}: {e}. The file is corrupt; "
                     "re-create it with `python tools/fetch_assets.py --force`.") from e
  missing = [k for k in _ARRAY_FIELDS + ("header",) if k not in data and k not in _OPTIONAL_FIELDS]
  if missing:
    raise ModelFileError(f"{path} is not a ganfit_jax morphable model (missing {missing}); convert models with "
                         "tools/convert_model.py")
  header = json.loads(bytes(data["header"]).decode())
  model = MorphableModel(
      mean=jnp.asarray(data["mean"], jnp.float32),
      id_basis=jnp.asarray(data["id_basis"], jnp.float32),
      exp_basis=jnp.asarray(data["exp_basis"], jnp.float32),
      triangles=jnp.asarray(data["triangles"], jnp.int32),
      uv=jnp.asarray(data["uv"], jnp.float32),
      uv_triangles=jnp.asarray(data["uv_triangles"], jnp.int32),
      landmarks=jnp.asarray(data["landmarks"], jnp.int32),
      face_mask=jnp.asarray(data["face_mask"], bool),
      material=jnp.asarray(data.get("material", np.zeros(len(data["mean"]), np.int32)), jnp.int32),
      expression_names=tuple(header.get("expression_names", ())),
      expression_kind=header.get("expression_kind", EXPRESSION_GAUSSIAN),
      name=header.get("name", os.path.basename(path)),
  )
  try:
    return model.validate()
  except ValueError as e:
    raise ModelFileError(f"{path}: {e}") from e


def from_arrays(*, mean, id_basis, exp_basis, triangles, landmarks, uv=None, uv_triangles=None,
                face_mask=None, material=None, expression_names=(), expression_kind=EXPRESSION_GAUSSIAN,
                name="model") -> MorphableModel:
  """Builds a validated model from numpy arrays; fills per-vertex UVs and masks when absent."""
  mean = np.asarray(mean, np.float32).reshape(-1, 3)
  v = mean.shape[0]
  triangles = np.asarray(triangles, np.int32).reshape(-1, 3)
  if uv is None:
    uv = cylindrical_uv(mean)
    uv_triangles = triangles
  elif uv_triangles is None:
    uv_triangles = triangles
  if face_mask is None:
    face_mask = np.ones((v,), bool)
  if material is None:
    material = np.zeros((v,), np.int32)
  exp_basis = np.asarray(exp_basis, np.float32).reshape(-1, v, 3)
  return MorphableModel(
      mean=jnp.asarray(mean), id_basis=jnp.asarray(np.asarray(id_basis, np.float32).reshape(-1, v, 3)),
      exp_basis=jnp.asarray(exp_basis), triangles=jnp.asarray(triangles),
      uv=jnp.asarray(np.asarray(uv, np.float32)), uv_triangles=jnp.asarray(np.asarray(uv_triangles, np.int32)),
      landmarks=jnp.asarray(np.asarray(landmarks, np.int32)), face_mask=jnp.asarray(np.asarray(face_mask, bool)),
      material=jnp.asarray(np.asarray(material, np.int32)),
      expression_names=tuple(expression_names), expression_kind=expression_kind, name=name).validate()


def cylindrical_uv(mean: np.ndarray) -> np.ndarray:
  """(V, 2) UVs from a cylinder around the vertical axis, for models shipped without UVs."""
  c = mean - mean.mean(0)
  theta = np.arctan2(c[:, 0], c[:, 2])  # 0 at the front
  u = 0.5 + theta / (2 * np.pi)
  h = c[:, 1]
  v = (h - h.min()) / max(float(np.ptp(h)), 1e-6)
  return np.stack([u, v], 1).astype(np.float32)
