"""Pytrees shared by every stage: the morphable model and the fitted parameters.

Units: model coordinates are millimetres in the model frame (x towards the
subject's left, i.e. image right in a frontal view; y up; z out of the face
towards a frontal camera).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from flax import struct
from jaxtyping import Array, Float, Int, Bool

# Shape aliases used in signatures and docstrings.
Vertices = Float[Array, "V 3"]
Triangles = Int[Array, "F 3"]
Image = Float[Array, "H W C"]

CAMERA_SIZE = 10  # position (3), look-at (3), up (3), focal length (1)
LIGHT_SIZE = 9  # point-light position (3), point-light colour (3), ambient colour (3)

# Per-vertex materials (MorphableModel.material): skin takes the texture model's colours; eye texels
# have fixed sclera / iris / pupil colours where no photo texel is known (ganfit_jax.texture.layout.eye_fill).
MATERIAL_SKIN, MATERIAL_EYE = 0, 1

# How expression coefficients are meant to be read.
EXPRESSION_GAUSSIAN = "gaussian"  # ~N(0, 1) PCA coefficients (BFM, FLAME, LSFM)
EXPRESSION_BLENDSHAPE = "blendshape"  # ARKit-style activations in [0, 1] (ICT-FaceKit)


@struct.dataclass
class MorphableModel:
  """A linear 3D morphable model ``S = mean + id_basis . shape + exp_basis . expression``.

  Attributes:
    mean: (V, 3) mean (neutral) mesh in millimetres.
    id_basis: (K_id, V, 3) identity basis, scaled so shape coefficients are ~N(0, 1).
    exp_basis: (K_exp, V, 3) expression basis. For ``expression_kind ==
      'gaussian'`` coefficients are ~N(0, 1); for ``'blendshape'`` they are
      activations in [0, 1] (ICT-FaceKit / ARKit).
    triangles: (F, 3) int32 vertex indices, counter-clockwise seen from outside.
    uv: (T, 2) texture coordinates in [0, 1], v up (OBJ convention).
    uv_triangles: (F, 3) int32 indices into ``uv``, one per triangle corner
      (UV seams give one vertex several UVs).
    landmarks: (68,) int32 vertex indices of the iBUG / Multi-PIE 68 points as the model's authors picked
      them; the points every stage uses are ``landmark_corners`` / ``landmark_bary`` (equal to these
      vertices unless a learned correspondence is applied).
    face_mask: (V,) bool, vertices of the face region (used for pixel losses and
      texture statistics).
    material: (V,) int32 material code per vertex (``MATERIAL_*``): skin, or
      eye for eyeball vertices.
    landmark_corners: (68, 3) int32 vertices of the triangle each landmark lies on, and
    landmark_bary: (68, 3) its barycentric weights: the landmark is ``sum_k bary_k * vertex[corner_k]``.
      Learned from renders of the model and a detector (``tools/learn_landmarks.py``) so that the model's
      points land where that detector puts them; without a learned file, ``landmarks`` with weights (1, 0, 0).
    contour: (17, C) int32 candidate vertices of each jaw-contour landmark (iBUG 0-16), C >= 1, or (17, 0):
      the fit takes, per jaw point, the candidate that projects outermost (the silhouette; see
      :func:`ganfit_jax.objective.project_landmarks`). (17, 0): the jaw points stay fixed surface points.
    dense_corners: (P, 3) int32 triangle corners and
    dense_bary: (P, 3) barycentric weights of a dense detector's P points (MediaPipe's 478-point face mesh:
      :mod:`ganfit_jax.face.facemesh`), learned as the 68 are; (0, 3) when the model has none (the dense
      landmark term then has nothing to compare).
    landmark_scatter: (68,) and
    dense_scatter: (P,) how far the detector's points scatter around the model's corresponding points on
      renders of the model itself (RMS distance over the outer-eye-corner distance, per point; learned with
      the correspondence by ``tools/learn_landmarks.py``): a per-point confidence. The landmark terms weight
      each point by its inverse square (:func:`ganfit_jax.objective.confidence_weights`, config
      ``landmark_confidence``). All equal (ones) when not learned: equal weights.
    expression_names: names of the K_exp expression components (static).
    expression_kind: 'gaussian' or 'blendshape' (static).
    name: a short model name such as 'ict-facekit' (static).
  """

  mean: Float[Array, "V 3"]
  id_basis: Float[Array, "Kid V 3"]
  exp_basis: Float[Array, "Kexp V 3"]
  triangles: Int[Array, "F 3"]
  uv: Float[Array, "T 2"]
  uv_triangles: Int[Array, "F 3"]
  landmarks: Int[Array, "68"]
  face_mask: Bool[Array, "V"]
  material: Int[Array, "V"]
  landmark_corners: Int[Array, "68 3"]
  landmark_bary: Float[Array, "68 3"]
  contour: Int[Array, "17 C"]
  dense_corners: Int[Array, "P 3"]
  dense_bary: Float[Array, "P 3"]
  landmark_scatter: Float[Array, "68"]
  dense_scatter: Float[Array, "P"]
  expression_names: Tuple[str, ...] = struct.field(pytree_node=False, default=())
  expression_kind: str = struct.field(pytree_node=False, default=EXPRESSION_GAUSSIAN)
  name: str = struct.field(pytree_node=False, default="model")

  @property
  def num_vertices(self) -> int:
    return int(self.mean.shape[0])

  @property
  def num_identity(self) -> int:
    return int(self.id_basis.shape[0])

  @property
  def num_expression(self) -> int:
    return int(self.exp_basis.shape[0])

  def validate(self) -> "MorphableModel":
    """Checks shapes and index ranges; returns self or raises ValueError."""
    v = self.mean.shape[0]
    problems = []
    if self.mean.ndim != 2 or self.mean.shape[1] != 3:
      problems.append(f"mean must be (V, 3), got {self.mean.shape}")
    if self.id_basis.ndim != 3 or self.id_basis.shape[1:] != (v, 3):
      problems.append(f"id_basis must be (K_id, {v}, 3), got {self.id_basis.shape}")
    if self.exp_basis.ndim != 3 or self.exp_basis.shape[1:] != (v, 3):
      problems.append(f"exp_basis must be (K_exp, {v}, 3), got {self.exp_basis.shape}")
    if self.triangles.ndim != 2 or self.triangles.shape[1] != 3:
      problems.append(f"triangles must be (F, 3), got {self.triangles.shape}")
    if self.uv_triangles.shape != self.triangles.shape:
      problems.append(f"uv_triangles {self.uv_triangles.shape} must match triangles {self.triangles.shape}")
    if self.uv.ndim != 2 or self.uv.shape[1] != 2:
      problems.append(f"uv must be (T, 2), got {self.uv.shape}")
    if self.landmarks.shape != (68,):
      problems.append(f"landmarks must be (68,), got {self.landmarks.shape}")
    if self.landmark_corners.shape != (68, 3) or self.landmark_bary.shape != (68, 3):
      problems.append(f"landmark_corners and landmark_bary must be (68, 3), got {self.landmark_corners.shape} "
                      f"and {self.landmark_bary.shape}")
    if self.contour.ndim != 2 or self.contour.shape[0] != 17:
      problems.append(f"contour must be (17, C), got {self.contour.shape}")
    if (self.dense_corners.ndim != 2 or self.dense_corners.shape[1:] != (3,)
        or self.dense_bary.shape != self.dense_corners.shape):
      problems.append(f"dense_corners and dense_bary must both be (P, 3), got {self.dense_corners.shape} and "
                      f"{self.dense_bary.shape}")
    if self.landmark_scatter.shape != (68,) or self.dense_scatter.shape != self.dense_corners.shape[:1]:
      problems.append(f"landmark_scatter must be (68,) and dense_scatter (P,) = ({self.dense_corners.shape[0]},), "
                      f"got {self.landmark_scatter.shape} and {self.dense_scatter.shape}")
    if self.face_mask.shape != (v,):
      problems.append(f"face_mask must be ({v},), got {self.face_mask.shape}")
    if self.material.shape != (v,):
      problems.append(f"material must be ({v},), got {self.material.shape}")
    if len(self.expression_names) not in (0, self.exp_basis.shape[0]):
      problems.append(f"{len(self.expression_names)} expression names for {self.exp_basis.shape[0]} components")
    if self.expression_kind not in (EXPRESSION_GAUSSIAN, EXPRESSION_BLENDSHAPE):
      problems.append(f"unknown expression_kind {self.expression_kind!r}")
    if not problems:
      tri = np.asarray(self.triangles)
      if tri.size and (tri.min() < 0 or tri.max() >= v):
        problems.append(f"triangle indices outside [0, {v})")
      uvt = np.asarray(self.uv_triangles)
      if uvt.size and (uvt.min() < 0 or uvt.max() >= self.uv.shape[0]):
        problems.append(f"uv_triangles indices outside [0, {self.uv.shape[0]})")
      lm = np.asarray(self.landmarks)
      if lm.min() < 0 or lm.max() >= v:
        problems.append(f"landmark indices outside [0, {v})")
      for name in ("landmark_corners", "contour", "dense_corners"):
        a = np.asarray(getattr(self, name))
        if a.size and (a.min() < 0 or a.max() >= v):
          problems.append(f"{name} indices outside [0, {v})")
      b = np.asarray(self.landmark_bary)
      if not (np.all(np.isfinite(b)) and np.all(b >= -1e-6) and np.allclose(b.sum(1), 1.0, atol=1e-4)):
        problems.append("landmark_bary rows must be barycentric weights (>= 0, summing to 1)")
      for name in ("landmark_scatter", "dense_scatter"):
        a = np.asarray(getattr(self, name))
        if a.size and not (np.all(np.isfinite(a)) and np.all(a > 0)):
          problems.append(f"{name} must be finite and > 0 (ones when not learned)")
      b = np.asarray(self.dense_bary)
      if b.size and not (np.all(np.isfinite(b)) and np.all(b >= -1e-6) and np.allclose(b.sum(1), 1.0, atol=1e-4)):
        problems.append("dense_bary rows must be barycentric weights (>= 0, summing to 1)")
    if problems:
      raise ValueError(f"invalid MorphableModel {self.name!r}: " + "; ".join(problems))
    return self


@struct.dataclass
class FaceParams:
  """The physical parameters of one fitted face: what every consumer of a fit reads.

  Attributes:
    shape: (K_id,) identity coefficients, ~N(0, 1).
    expression: (K_exp,) expression values as the model reads them
      (``MorphableModel.expression_kind``): activations in [0, 1] for
      blendshape models (ICT-FaceKit), ~N(0, 1) coefficients otherwise.
    texture: (L,) texture latent (512 for the GAN, the PCA size for the baseline), ~N(0, 1).
    camera: (10,) camera position (3, mm), look-at point (3, mm), up vector (3),
      focal length (1, in units of the image height: f_pixels = f * H).
    light: (9,) point-light position (3, mm), point-light RGB colour (3),
      ambient RGB colour (3).

  :mod:`ganfit_jax.params` maps the optimiser's variables to these and back.
  """

  shape: Float[Array, "Kid"]
  expression: Float[Array, "Kexp"]
  texture: Float[Array, "L"]
  camera: Float[Array, "10"]
  light: Float[Array, "9"]
