"""Optimiser variables <-> physical :class:`~ganfit_jax.types.FaceParams`: the only copy of the mapping.

Fitting and the regressor move :class:`Variables`; every consumer of a fit
reads :class:`FaceParams`. The mapping is chosen so that one Adam learning
rate suits every group and a zero variable means "the start":

* ``shape``: N(0, 1) identity coefficients as they are.
* ``expression``: blendshape models (ICT-FaceKit) store logits and read
  activations ``sigmoid(logit)`` (kept in [0, 1]; logits start at
  ``EXPRESSION_LOGIT_INIT``, activation 0.018); Gaussian models store the
  coefficients as they are.
* ``texture``: the texture model's N(0, 1) latent as it is.
* ``camera``: the default camera's position, look-at and up vector plus
  ``CAMERA_SCALE * camera`` (100 mm units for position and look-at, 1 for up).
* ``focal``: the default focal length plus ``FOCAL_SCALE * focal`` (units of
  the image height). A separate group so it can be frozen or weakly moved:
  distance and focal length trade against each other under perspective.
* ``light``: the default light plus ``LIGHT_SCALE * light`` (300 mm for the
  position, 0.3 for colour and ambient).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
from flax import struct
from jaxtyping import Array, Float

from ganfit_jax import camera as camera_lib
from ganfit_jax import lighting
from ganfit_jax.types import EXPRESSION_BLENDSHAPE, FaceParams, MorphableModel

CAMERA_SCALE = (100.0,) * 6 + (1.0,) * 3
FOCAL_SCALE = 1.0
LIGHT_SCALE = (300.0,) * 3 + (0.3,) * 6
EXPRESSION_LOGIT_INIT = -4.0
GROUPS = ("shape", "expression", "texture", "camera", "focal", "light")


@struct.dataclass
class Variables:
  """What the optimiser (or the regressor's heads) produces; see the module docstring.

  Attributes:
    shape: (K_id,); expression: (K_exp,); texture: (L,); camera: (9,) offsets of
    position, look-at and up; focal: (1,) focal offset; light: (9,) light offset.
  """

  shape: Float[Array, "Kid"]
  expression: Float[Array, "Kexp"]
  texture: Float[Array, "L"]
  camera: Float[Array, "9"]
  focal: Float[Array, "1"]
  light: Float[Array, "9"]


def labels() -> Variables:
  """Each field's group name (for ``optax.multi_transform``)."""
  return Variables(**{g: g for g in GROUPS})


def expression_values(raw, expression_kind: str):
  """What the model reads from the stored expression variables."""
  return jax.nn.sigmoid(raw) if expression_kind == EXPRESSION_BLENDSHAPE else raw


def to_face(v: Variables, expression_kind: str) -> FaceParams:
  """Variables (one example) -> FaceParams."""
  cam = camera_lib.default_camera() + jnp.concatenate(
      [jnp.asarray(CAMERA_SCALE, jnp.float32) * v.camera, FOCAL_SCALE * v.focal])
  light = lighting.default_light() + jnp.asarray(LIGHT_SCALE, jnp.float32) * v.light
  return FaceParams(shape=v.shape, expression=expression_values(v.expression, expression_kind),
                    texture=v.texture, camera=cam, light=light)


def from_face(f: FaceParams, expression_kind: str, eps: float = 1e-4) -> Variables:
  """FaceParams -> Variables (the inverse of :func:`to_face`; activations are clipped to
  [eps, 1 - eps] before the logit)."""
  expr = f.expression
  if expression_kind == EXPRESSION_BLENDSHAPE:
    a = jnp.clip(expr, eps, 1.0 - eps)
    expr = jnp.log(a) - jnp.log1p(-a)
  d = f.camera - camera_lib.default_camera()
  return Variables(shape=f.shape, expression=expr, texture=f.texture,
                   camera=d[:9] / jnp.asarray(CAMERA_SCALE, jnp.float32), focal=d[9:] / FOCAL_SCALE,
                   light=(f.light - lighting.default_light()) / jnp.asarray(LIGHT_SCALE, jnp.float32))


def init(model: MorphableModel, texture_latent, expression_kind: Optional[str] = None) -> Variables:
  """The start of a fit: mean shape, (near-)neutral expression, the given latent, default camera and light."""
  kind = expression_kind or model.expression_kind
  e0 = EXPRESSION_LOGIT_INIT if kind == EXPRESSION_BLENDSHAPE else 0.0
  latent = jnp.asarray(texture_latent, jnp.float32)
  if latent.ndim != 1:
    raise ValueError(f"texture_latent must be (L,), got {latent.shape}; vmap over batches")
  return Variables(shape=jnp.zeros((model.num_identity,), jnp.float32),
                   expression=jnp.full((model.num_expression,), e0, jnp.float32), texture=latent,
                   camera=jnp.zeros((9,), jnp.float32), focal=jnp.zeros((1,), jnp.float32),
                   light=jnp.zeros((9,), jnp.float32))


__all__ = ["Variables", "GROUPS", "labels", "to_face", "from_face", "init", "expression_values",
           "CAMERA_SCALE", "FOCAL_SCALE", "LIGHT_SCALE", "EXPRESSION_LOGIT_INIT"]
