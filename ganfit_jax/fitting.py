"""Fitting. Stage 1 (this module so far): landmarks + regularisers over shape, expression and camera.

GANFit's stage 2 (identity, content, pixel losses through the renderer and the texture GAN) is issue 8;
stage 1 is complete on its own and gives the geometry and camera that stage 2 starts from.

Parameterisation (so one Adam learning rate suits every group):
  * shape: N(0,1) coefficients as they are;
  * expression: for blendshape models (ICT) activations = sigmoid(logits), kept in [0, 1], logits start
    at -4 (activation 0.018); for Gaussian models, coefficients as they are;
  * camera: default camera + CAMERA_SCALE * delta (position/look-at in 100 mm units, up and focal in 1s).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from ganfit_jax import camera as camera_lib
from ganfit_jax import morphable
from ganfit_jax.types import EXPRESSION_BLENDSHAPE, MorphableModel

CAMERA_SCALE = jnp.array([100.0] * 6 + [1.0] * 3 + [1.0], jnp.float32)
EXPRESSION_LOGIT_INIT = -4.0


@struct.dataclass
class Stage1Params:
  """Free variables of stage 1: shape (K_id,), expression (K_exp,) logits/coefficients, camera delta (10,)."""

  shape: jnp.ndarray
  expression: jnp.ndarray
  camera_delta: jnp.ndarray


@dataclasses.dataclass(frozen=True)
class Stage1Config:
  steps: int = 300
  learning_rate: float = 0.05
  landmark_weight: float = 1.0  # on mean squared landmark error in units of (canvas size / 100) pixels
  shape_reg: float = 0.05
  expression_reg: float = 0.01
  image_size: int = 224


def expression_values(model: MorphableModel, raw):
  return jax.nn.sigmoid(raw) if model.expression_kind == EXPRESSION_BLENDSHAPE else raw


def init_params(model: MorphableModel) -> Stage1Params:
  e0 = EXPRESSION_LOGIT_INIT if model.expression_kind == EXPRESSION_BLENDSHAPE else 0.0
  return Stage1Params(shape=jnp.zeros((model.num_identity,), jnp.float32),
                      expression=jnp.full((model.num_expression,), e0, jnp.float32),
                      camera_delta=jnp.zeros((10,), jnp.float32))


def camera_of(p: Stage1Params):
  return camera_lib.default_camera() + CAMERA_SCALE * p.camera_delta


def project_landmarks(model: MorphableModel, p: Stage1Params, size: int):
  verts = morphable.vertices(model, p.shape, expression_values(model, p.expression))
  xy, _ = camera_lib.project(camera_of(p), morphable.landmarks(model, verts), size, size)
  return xy


def stage1_loss(p: Stage1Params, model: MorphableModel, target_landmarks, cfg: Stage1Config):
  """(loss, aux) with aux = dict of the terms; landmark error in pixels of the canvas."""
  xy = project_landmarks(model, p, cfg.image_size)
  unit = cfg.image_size / 100.0
  lm = jnp.mean(jnp.sum(jnp.square((xy - target_landmarks) / unit), -1))
  ev = expression_values(model, p.expression)
  reg_s = jnp.mean(jnp.square(p.shape))
  reg_e = jnp.mean(jnp.square(ev))
  loss = cfg.landmark_weight * lm + cfg.shape_reg * reg_s + cfg.expression_reg * reg_e
  rmse_px = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(xy - target_landmarks), -1)))
  return loss, dict(landmark=lm, reg_shape=reg_s, reg_expression=reg_e, landmark_rmse_px=rmse_px)


def _optimizer(cfg: Stage1Config):
  return optax.adam(cfg.learning_rate)


@functools.partial(jax.jit, static_argnames=("cfg",))
def stage1_step(params: Stage1Params, state, model: MorphableModel, target, cfg: Stage1Config):
  """One Adam step of stage 1; compiled once per (model shapes, cfg), reused across photos."""
  (loss, aux), g = jax.value_and_grad(stage1_loss, has_aux=True)(params, model, target, cfg)
  updates, state = _optimizer(cfg).update(g, state, params)
  return optax.apply_updates(params, updates), state, dict(aux, loss=loss)


def fit_stage1(model: MorphableModel, target_landmarks, cfg: Stage1Config = Stage1Config(),
               callback: Optional[Callable[[int, dict], None]] = None):
  """Fits one face's 68 canvas landmarks. Returns (params, history: dict of per-step arrays)."""
  target = jnp.asarray(target_landmarks, jnp.float32)
  if target.shape != (68, 2):
    raise ValueError(f"target_landmarks must be (68, 2), got {target.shape}")
  if not bool(jnp.all(jnp.isfinite(target))):
    raise ValueError("target landmarks contain NaN or infinity")
  params = init_params(model)
  state = _optimizer(cfg).init(params)
  history = []
  for i in range(cfg.steps):
    params, state, aux = stage1_step(params, state, model, target, cfg)
    if callback is not None or i == cfg.steps - 1 or i % 10 == 0:
      aux = jax.device_get(aux)
      history.append(dict(step=i, **{k: float(v) for k, v in aux.items()}))
      if callback is not None:
        callback(i, history[-1])
  return params, history


def export_obj(path: str, verts: np.ndarray, model: MorphableModel) -> None:
  """Writes an OBJ with per-corner UVs (millimetres, model frame), atomically."""
  import os
  tri = np.asarray(model.triangles) + 1
  uvt = np.asarray(model.uv_triangles) + 1
  lines = ["# ganfit_jax fitted mesh, millimetres, model frame"]
  lines += [f"v {x:.4f} {y:.4f} {z:.4f}" for x, y, z in np.asarray(verts)]
  lines += [f"vt {u:.6f} {v:.6f}" for u, v in np.asarray(model.uv)]
  lines += [f"f {a}/{d} {b}/{e} {c}/{f}" for (a, b, c), (d, e, f) in zip(tri, uvt)]
  tmp = path + ".partial"
  with open(tmp, "w") as fh:
    fh.write("\n".join(lines) + "\n")
  os.replace(tmp, path)
