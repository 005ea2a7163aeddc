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
    shape: (K,) identity coefficients with K <= K_id (missing ones are zero), ~N(0, 1) (the bases are
      scaled by their standard deviations).
    expression: (E,) expression values with E <= K_exp, or None, as ``model.expression_kind`` says:
      ``'blendshape'`` (ICT-FaceKit, the default model): activations in [0, 1], one per named shape
      (``model.expression_names``, ARKit-like: ``jawOpen``, ``eyeBlink_L``, ...), NOT Gaussian: 0 is
      neutral and 1 the full shape; ``'pca'`` (BFM): ~N(0, 1) coefficients.

  Example::

    m = morphable.load("ict")
    e = jnp.zeros(m.num_expression).at[m.expression_names.index("jawOpen")].set(0.6)
    v = vertices(m, jnp.zeros(m.num_identity), e)   # (V, 3) mm, the mean face with the jaw open

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


def _rows(model: MorphableModel, idx, shape, expression):
  """Vertices ``idx`` (any int shape) of the mesh with these coefficients, from those rows only."""
  shape = jnp.asarray(shape)
  v = model.mean[idx] + jnp.tensordot(shape, model.id_basis[:shape.shape[0], idx], axes=1)
  if expression is not None:
    expression = jnp.asarray(expression)
    v = v + jnp.tensordot(expression, model.exp_basis[:expression.shape[0], idx], axes=1)
  return v


def landmark_points(model: MorphableModel, shape, expression=None):
  """(68, 3) landmark positions on the surface, computed from the landmark triangles' rows only (cheap;
  equals ``landmarks(model, vertices(model, shape, expression))``)."""
  corners = _rows(model, model.landmark_corners, shape, expression)  # (68, 3 corners, 3)
  return jnp.einsum("lk,lkd->ld", model.landmark_bary, corners)


def landmarks(model: MorphableModel, verts):
  """(68, 3) landmark positions of a mesh (V, 3) in the model's iBUG order: points on its surface
  (``MorphableModel.landmark_corners`` / ``landmark_bary``)."""
  return jnp.einsum("lk,lkd->ld", model.landmark_bary, verts[model.landmark_corners])


def dense_points(model: MorphableModel, shape, expression=None):
  """(P, 3) the dense detector's points on the surface (``MorphableModel.dense_corners`` / ``dense_bary``),
  from those triangles' rows only."""
  corners = _rows(model, model.dense_corners, shape, expression)  # (P, 3 corners, 3)
  return jnp.einsum("lk,lkd->ld", model.dense_bary, corners)


def contour_points(model: MorphableModel, shape, expression=None):
  """(17, C, 3) the jaw-contour candidates (``MorphableModel.contour``) of the mesh with these coefficients."""
  return _rows(model, model.contour, shape, expression)


def fixed_landmarks(landmarks) -> tuple:
  """(corners (68, 3), bary (68, 3)) that put each landmark exactly on its vertex (no learned file)."""
  idx = np.asarray(landmarks, np.int32).reshape(68)
  return np.repeat(idx[:, None], 3, 1), np.tile(np.array([1.0, 0.0, 0.0], np.float32), (68, 1))


NO_DENSE = (np.zeros((0, 3), np.int32), np.zeros((0, 3), np.float32))


def with_landmarks(model: MorphableModel, corners, bary, contour=None, dense=None, scatter=None) -> MorphableModel:
  """The model with these landmark surface points (and jaw-contour candidates, and ``dense`` = (corners,
  bary) of a dense detector's points: None keeps the model's; ``scatter`` = (landmark_scatter (68,),
  dense_scatter (P,)): None keeps the model's for points whose surface position is unchanged, else ones: a
  scatter belongs to the positions it was measured at); ``landmarks`` (the model's own hand-picked vertices)
  is unchanged."""
  contour = model.contour if contour is None else jnp.asarray(np.asarray(contour, np.int32))
  dc, db = (model.dense_corners, model.dense_bary) if dense is None else dense
  dc, db = np.asarray(dc, np.int32).reshape(-1, 3), np.asarray(db, np.float32).reshape(-1, 3)
  if scatter is None:
    def same(c0, b0, c1, b1):
      c0, b0 = np.asarray(c0), np.asarray(b0)
      return c0.shape == c1.shape and np.array_equal(c0, c1) and np.allclose(b0, b1)
    corners_np, bary_np = np.asarray(corners, np.int32), np.asarray(bary, np.float32)
    scatter = (model.landmark_scatter if same(model.landmark_corners, model.landmark_bary, corners_np, bary_np)
               else np.ones(68, np.float32),
               model.dense_scatter if same(model.dense_corners, model.dense_bary, dc, db)
               else np.ones(dc.shape[:1], np.float32))
  return model.replace(landmark_corners=jnp.asarray(np.asarray(corners, np.int32)),
                       landmark_bary=jnp.asarray(np.asarray(bary, np.float32)), contour=contour,
                       dense_corners=jnp.asarray(dc),
                       dense_bary=jnp.asarray(db),
                       landmark_scatter=jnp.asarray(np.asarray(scatter[0], np.float32).reshape(68)),
                       dense_scatter=jnp.asarray(np.asarray(scatter[1], np.float32).reshape(-1))).validate()


LEARNED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")


def learned_landmarks_path(model: MorphableModel) -> str:
  """Where the shipped landmark correspondence of a model would be (``tools/learn_landmarks.py`` writes it)."""
  return os.path.join(LEARNED_DIR, f"landmarks_{model.name}.npz")


def topology_digest(model: MorphableModel) -> str:
  """A short digest of the vertex count and triangles: a correspondence file applies only to this mesh."""
  import hashlib
  h = hashlib.sha256(np.int64(model.num_vertices).tobytes())
  h.update(np.ascontiguousarray(np.asarray(model.triangles, np.int32)).tobytes())
  return h.hexdigest()[:16]


def save_landmarks(path: str, model: MorphableModel, meta: Optional[dict] = None) -> None:
  """Writes a model's landmark correspondence (corners, bary, contour; the dense points' where it has them)
  atomically, keyed to its topology."""
  header = dict(topology=topology_digest(model), model=model.name, meta=meta or {})
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.savez(f, landmark_corners=np.asarray(model.landmark_corners, np.int32),
             landmark_bary=np.asarray(model.landmark_bary, np.float32),
             contour=np.asarray(model.contour, np.int32),
             dense_corners=np.asarray(model.dense_corners, np.int32),
             dense_bary=np.asarray(model.dense_bary, np.float32),
             landmark_scatter=np.asarray(model.landmark_scatter, np.float32),
             dense_scatter=np.asarray(model.dense_scatter, np.float32),
             header=np.frombuffer(json.dumps(header).encode(), np.uint8))


def load_landmarks(model: MorphableModel, path: str) -> MorphableModel:
  """The model with the correspondence in ``path`` (:func:`save_landmarks`); a ValueError if the file was
  learned on another mesh."""
  with np.load(path) as z:
    data = {k: z[k] for k in z.files}
  header = json.loads(bytes(data["header"]).decode())
  if header.get("topology") != topology_digest(model):
    raise ValueError(f"{path} was learned for another mesh ({header.get('model')!r}, topology "
                     f"{header.get('topology')}), not {model.name!r} ({topology_digest(model)}); run "
                     "tools/learn_landmarks.py for this model")
  dense = (data["dense_corners"], data["dense_bary"]) if "dense_corners" in data else NO_DENSE
  scatter = (data.get("landmark_scatter", np.ones(68, np.float32)),
             data.get("dense_scatter", np.ones(len(dense[0]), np.float32)))  # files from before: equal weights
  return with_landmarks(model, data["landmark_corners"], data["landmark_bary"], data["contour"], dense, scatter)


# --------------------------------------------------------------------------- #
# Storage.

_ARRAY_FIELDS = ("mean", "id_basis", "exp_basis", "triangles", "uv", "uv_triangles",
                 "landmarks", "face_mask", "material", "landmark_corners", "landmark_bary", "contour",
                 "dense_corners", "dense_bary", "landmark_scatter", "dense_scatter")
# absent in files written before they existed: all skin, landmarks on their vertices, a fixed jaw, no dense points
_OPTIONAL_FIELDS = ("material", "landmark_corners", "landmark_bary", "contour", "dense_corners", "dense_bary",
                    "landmark_scatter", "dense_scatter")


def save_npz(path: str, model: MorphableModel, meta: Optional[dict] = None) -> None:
  """Writes a model atomically (a temporary file renamed into place)."""
  model.validate()
  arrays = {k: np.asarray(getattr(model, k)) for k in _ARRAY_FIELDS}
  corners, bary = fixed_landmarks(arrays["landmarks"])
  if (np.array_equal(arrays["landmark_corners"], corners) and np.allclose(arrays["landmark_bary"], bary)
      and arrays["contour"].shape[1] == 0 and arrays["dense_corners"].shape[0] == 0
      and np.all(arrays["landmark_scatter"] == 1)):
    # the plain vertex correspondence is what load_npz fills in: not stored, so that load() still applies a
    # learned file shipped for the model (a stored correspondence is the file's own and wins)
    for k in ("landmark_corners", "landmark_bary", "contour", "dense_corners", "dense_bary", "landmark_scatter",
              "dense_scatter"):
      del arrays[k]
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


LANDMARK_CHOICES = ("learned", "vertices")


def load(name_or_path: str = "ict", landmarks: str = "learned") -> MorphableModel:
  """A morphable model by asset name (``ict``, ``bfm``) or from a converted ``.npz`` path.

  ``landmarks``: 'learned' (default): the correspondence in the model's file, else the one shipped for it
  (:func:`learned_landmarks_path`) when there is one; 'vertices': the model's own hand-picked landmark
  vertices with a fixed jaw (what fits used before correspondences were learned); or the path of a
  correspondence file (:func:`save_landmarks`, ``tools/learn_landmarks.py --out``).
  """
  from ganfit_jax import assets
  path = assets.resolve(name_or_path)
  model = load_npz(path)
  if landmarks == "vertices":
    return with_landmarks(model, *fixed_landmarks(model.landmarks), np.zeros((17, 0), np.int32), NO_DENSE,
                          (np.ones(68, np.float32), np.zeros(0, np.float32)))
  if landmarks != "learned":
    if not os.path.isfile(landmarks):
      raise ModelNotFoundError(f"landmark correspondence {landmarks!r} not found: use 'learned', 'vertices' or "
                               "the path of a file written by tools/learn_landmarks.py")
    return load_landmarks(model, landmarks)
  shipped = learned_landmarks_path(model)
  if os.path.isfile(shipped) and not _has_learned(path):
    assets.check_sha(shipped, assets.weights_sha(os.path.basename(shipped)), f"landmark correspondence {shipped}",
                     "git checkout ganfit_jax/weights/ or python tools/learn_landmarks.py")
    model = load_landmarks(model, shipped)
  return model


def _has_learned(path: str) -> bool:
  with np.load(path) as z:
    return "landmark_corners" in z.files


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
  corners, bary = fixed_landmarks(data["landmarks"])
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
      landmark_corners=jnp.asarray(data.get("landmark_corners", corners), jnp.int32),
      landmark_bary=jnp.asarray(data.get("landmark_bary", bary), jnp.float32),
      contour=jnp.asarray(data.get("contour", np.zeros((17, 0), np.int32)), jnp.int32),
      dense_corners=jnp.asarray(data.get("dense_corners", NO_DENSE[0]), jnp.int32).reshape(-1, 3),
      dense_bary=jnp.asarray(data.get("dense_bary", NO_DENSE[1]), jnp.float32).reshape(-1, 3),
      landmark_scatter=jnp.asarray(data.get("landmark_scatter", np.ones(68)), jnp.float32).reshape(68),
      dense_scatter=jnp.asarray(data.get("dense_scatter", np.ones(len(data.get("dense_corners", NO_DENSE[0])))),
                                jnp.float32).reshape(-1),
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
  corners, bary = fixed_landmarks(landmarks)
  return MorphableModel(
      mean=jnp.asarray(mean), id_basis=jnp.asarray(np.asarray(id_basis, np.float32).reshape(-1, v, 3)),
      exp_basis=jnp.asarray(exp_basis), triangles=jnp.asarray(triangles),
      uv=jnp.asarray(np.asarray(uv, np.float32)), uv_triangles=jnp.asarray(np.asarray(uv_triangles, np.int32)),
      landmarks=jnp.asarray(np.asarray(landmarks, np.int32)), face_mask=jnp.asarray(np.asarray(face_mask, bool)),
      material=jnp.asarray(np.asarray(material, np.int32)),
      landmark_corners=jnp.asarray(corners), landmark_bary=jnp.asarray(bary),
      contour=jnp.zeros((17, 0), jnp.int32),
      dense_corners=jnp.asarray(NO_DENSE[0]), dense_bary=jnp.asarray(NO_DENSE[1]),
      landmark_scatter=jnp.ones((68,), jnp.float32), dense_scatter=jnp.zeros((0,), jnp.float32),
      expression_names=tuple(expression_names), expression_kind=expression_kind, name=name).validate()


def cylindrical_uv(mean: np.ndarray) -> np.ndarray:
  """(V, 2) UVs from a cylinder around the vertical axis, for models shipped without UVs."""
  c = mean - mean.mean(0)
  theta = np.arctan2(c[:, 0], c[:, 2])  # 0 at the front
  u = 0.5 + theta / (2 * np.pi)
  h = c[:, 1]
  v = (h - h.min()) / max(float(np.ptp(h)), 1e-6)
  return np.stack([u, v], 1).astype(np.float32)
