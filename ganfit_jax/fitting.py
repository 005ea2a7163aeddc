"""Fitting: GANFit's two stages, batches, random texture initialisations and multi-image fitting.

* :func:`fit` runs the full method on ``objective.Objective``: stage 1
  (landmarks + regularisers; shape, expression, camera) then stage 2 (every
  term, every parameter), both through one compiled step (the stage is only
  the traced ``LossWeights`` and learning-rate scale). It ``vmap``s over
  photos and over random texture initialisations (best final loss wins), and
  with ``shared_identity=True`` fits several photos of one person: per-photo
  expression, camera and light; shape and texture latent averaged over the
  photos after every step (paper Eq. 14).
* :func:`fit_stage1` / :func:`fit_stage1_batch`: the landmark-only fit on its
  own (cheap; used by the UV-dataset builder).

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
  pts = morphable.landmark_points(model, p.shape, expression_values(model, p.expression))
  xy, _ = camera_lib.project(camera_of(p), pts, size, size)
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


@functools.partial(jax.jit, static_argnames=("cfg",))
def fit_stage1_batch(model: MorphableModel, targets, cfg: Stage1Config = Stage1Config()):
  """Fits a batch of faces at once: ``targets`` (B, 68, 2) canvas landmarks.

  The whole optimisation is one compiled ``lax.scan`` of ``cfg.steps`` Adam
  steps, ``vmap``-ed over the batch. Returns (params with a leading batch axis,
  final aux dict of (B,) arrays, including ``landmark_rmse_px``).
  """
  targets = jnp.asarray(targets, jnp.float32)

  def one(target):
    params = init_params(model)
    opt = _optimizer(cfg)

    def step(carry, _):
      p, st = carry
      (_, aux), g = jax.value_and_grad(stage1_loss, has_aux=True)(p, model, target, cfg)
      upd, st = opt.update(g, st, p)
      return (optax.apply_updates(p, upd), st), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=cfg.steps)
    _, aux = stage1_loss(params, model, target, cfg)
    return params, aux

  return jax.vmap(one)(targets)


def export_obj(path: str, verts: np.ndarray, model: MorphableModel, material: Optional[str] = None) -> None:
  """Writes an OBJ with per-corner UVs (millimetres, model frame); see :mod:`ganfit_jax.export`."""
  from ganfit_jax import export
  export.write_obj(path, verts, model, material)


# --------------------------------------------------------------------------- #
# The full two-stage fit.

@dataclasses.dataclass(frozen=True)
class FitConfig:
  """Schedule of :func:`fit` (``configs/fit.py`` has the presets)."""
  stage1_steps: int = 150
  stage2_steps: int = 150
  num_inits: int = 1
  init_latent_std: float = 1.0     # texture latents start at N(0, std^2) (the GAN's prior)
  zero_first_init: bool = False    # init 0 at latent 0 (PCA: the mean texture; never for the GAN, whose
                                   # pixel-normed input makes latent 0 a flat, degenerate texture)
  lr_shape: float = 0.02
  lr_expression: float = 0.05
  lr_texture: float = 0.01         # the paper's Adam rate
  lr_camera: float = 0.01
  lr_light: float = 0.02
  stage1_lr_scale: float = 3.0     # stage 1 only moves shape/expression/camera, and faster
  weights: tuple = ()              # overrides of LossWeights fields for stage 2, as (name, value) pairs


@dataclasses.dataclass
class FitResult:
  params: object          # FitParams with a leading photo axis (B, ...)
  final: dict             # loss terms of the chosen init at the last step, each (B,)
  history: dict           # term -> (steps, B) for the chosen init
  init_losses: np.ndarray  # (B, num_inits) final losses of every init
  best_init: np.ndarray   # (B,)
  seconds: float
  steps: int


def _lr_tree(cfg: FitConfig):
  from ganfit_jax.objective import FitParams
  return FitParams(shape=cfg.lr_shape, expression=cfg.lr_expression, texture=cfg.lr_texture,
                   camera_delta=cfg.lr_camera, light_delta=cfg.lr_light)


def make_fit_step(objective, cfg: FitConfig):
  """jit(vmap over photos (vmap over inits (Adam step))). Weights and lr scale are traced arguments."""
  adam = optax.scale_by_adam()
  lrs = _lr_tree(cfg)

  def one(params, opt_state, frozen, target, weights, lr_scale, key):
    target = target._replace(key=key)
    (_, aux), g = jax.value_and_grad(objective.loss_fn, has_aux=True)(params, frozen, target, weights)
    g = jax.tree_util.tree_map(lambda x: jnp.where(jnp.isfinite(x), x, 0.0), g)
    upd, opt_state = adam.update(g, opt_state, params)
    upd = jax.tree_util.tree_map(lambda u, lr: -lr * lr_scale * u, upd, lrs)
    return optax.apply_updates(params, upd), opt_state, aux

  over_inits = jax.vmap(one, in_axes=(0, 0, None, None, None, None, 0))
  over_photos = jax.vmap(over_inits, in_axes=(0, 0, None, 0, None, None, 0))
  return jax.jit(over_photos), adam


def fit(objective, frozen, targets, cfg: FitConfig, key, latent_dim: int, shared_identity: bool = False,
        callback=None, step_fn=None) -> FitResult:
  """Fits B photos (``targets``: an ``objective.Target`` with a leading photo axis).

  Args:
    shared_identity: the photos show one person; shape and texture are shared (Eq. 14).
    callback: called as ``callback(step, total, aux_of_best_so_far)`` for progress.
    step_fn: a step from :func:`make_fit_step` to reuse (one compilation across calls).
  """
  import time
  from ganfit_jax.objective import LossWeights
  t0 = time.perf_counter()
  model = frozen["model"]
  b = targets.landmarks.shape[0]
  n = cfg.num_inits
  k_lat, k_run = jax.random.split(key)
  lat = jax.random.normal(k_lat, (n, latent_dim)) * cfg.init_latent_std
  if cfg.zero_first_init:
    lat = lat.at[0].set(0.0)
  base = objective.init_params(model, latent_dim)
  params = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (b, n) + x.shape), base)
  params = params.replace(texture=jnp.broadcast_to(lat, (b, n, latent_dim)))
  step, adam = (step_fn, optax.scale_by_adam()) if step_fn is not None else make_fit_step(objective, cfg)
  opt_state = jax.vmap(jax.vmap(adam.init))(params)
  w1 = LossWeights.stage1()
  w2 = LossWeights(**dict(cfg.weights)).as_arrays()
  total = cfg.stage1_steps + cfg.stage2_steps
  hist = []
  for i in range(total):
    stage2 = i >= cfg.stage1_steps
    keys = jax.random.split(jax.random.fold_in(k_run, i), b * n).reshape(b, n, -1)
    params, opt_state, aux = step(params, opt_state, frozen, targets, w2 if stage2 else w1,
                                  jnp.float32(1.0 if stage2 else cfg.stage1_lr_scale), keys)
    if shared_identity:
      params = params.replace(
          shape=jnp.broadcast_to(params.shape.mean(0, keepdims=True), params.shape.shape),
          texture=jnp.broadcast_to(params.texture.mean(0, keepdims=True), params.texture.shape))
    aux = jax.device_get(aux)
    hist.append(aux)
    if callback is not None:
      callback(i, total, dict({k: float(np.mean(v)) for k, v in aux.items()}, stage=2 if stage2 else 1))
  final_losses = np.asarray(hist[-1]["loss"])  # (B, N)
  if shared_identity:
    best = np.full((b,), int(np.argmin(final_losses.sum(0))))
  else:
    best = np.argmin(final_losses, axis=1)
  rows = np.arange(b)
  chosen = jax.tree_util.tree_map(lambda x: x[rows, best], params)
  history = {k: np.stack([h[k][rows, best] for h in hist]) for k in hist[0]}
  final = {k: v[-1] for k, v in history.items()}
  return FitResult(params=chosen, final=final, history=history, init_losses=final_losses, best_init=best,
                   seconds=time.perf_counter() - t0, steps=total)


def prepare_targets(objective, frozen, images, landmarks, key):
  """Stacks the photo side of the losses for B canvases: images (B, S, S, 3), landmarks (B, 68, 2)."""
  keys = jax.random.split(key, images.shape[0])
  f = jax.jit(jax.vmap(objective.target, in_axes=(None, 0, 0, 0)))
  return f(frozen, jnp.asarray(images, jnp.float32), jnp.asarray(landmarks, jnp.float32), keys)
