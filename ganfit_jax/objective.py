"""GANFit's full objective (paper Eq. 13) as one pure, jit-able function.

``Objective.loss_fn(params, frozen, target, weights) -> (loss, aux)`` is what
fitting (and later regressor training) differentiates:

  * ``params`` (:class:`FitParams`): shape, expression (logits for blendshape
    models), texture latent, camera and light offsets (scaled, see below);
  * ``frozen``: arrays that are never optimised (the morphable model, texture
    model and identity network variables): a pytree, so it is an argument of
    the compiled step, not a constant baked into it;
  * ``target``: the photo's canvas image, its 68 landmarks, the identity
    embedding and features of its aligned 112 crop, a PRNG key for the
    random second render (id-hat);
  * ``weights`` (:class:`LossWeights`): traced scalars, so stage 1 and stage 2
    are the same compiled function with different numbers. When every image
    term has weight 0 (stage 1) a ``lax.cond`` skips rendering altogether.

Weights (defaults = the paper's, in this project's units; see ``losses``):
identity 2.0, identity_hat 2.0, content 50, pixel 1, landmark 0.001 (Eq. 12 in
canvas pixels), reg shape 0.05, reg expression 0.01, reg light 0.01. One
addition: ``align``, the stage-1 landmark term (mean squared error in units of
canvas/100 px), weight 1 in stage 1 and 0.1 in stage 2: the paper's 0.001 x
||dL||_2 alone does not hold the camera once the image terms pull.

Priors of the id-hat render (documented substitutes for the paper's 300W-3D
statistics): expression activations ``clip(N(0, 0.5), 0, 1)`` for blendshape
models (``N(0, 0.5)`` coefficients otherwise); camera orbiting the face with
yaw ~ N(0, 20 deg), pitch ~ N(0, 10 deg); light = default + N(0, 300 mm)
position, N(0, 0.1) colour and ambient. Grey background.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from ganfit_jax import camera as camera_lib
from ganfit_jax import losses, morphable
from ganfit_jax.face import align
from ganfit_jax.render import pipeline, shading
from ganfit_jax.types import EXPRESSION_BLENDSHAPE

CAMERA_SCALE = jnp.array([100.0] * 6 + [1.0] * 3 + [1.0], jnp.float32)
LIGHT_SCALE = jnp.array([300.0] * 3 + [0.3] * 6, jnp.float32)
EXPRESSION_LOGIT_INIT = -4.0
CONTENT_KEYS_SFACE = ("res56", "res28", "res14")


@struct.dataclass
class FitParams:
  shape: jnp.ndarray          # (K_id,) N(0, 1) coefficients
  expression: jnp.ndarray     # (K_exp,) logits (blendshape models) or coefficients
  texture: jnp.ndarray        # (latent,) texture-model latent, N(0, 1) prior
  camera_delta: jnp.ndarray   # (10,) camera = default + CAMERA_SCALE * delta
  light_delta: jnp.ndarray    # (9,) light = default + LIGHT_SCALE * delta


@struct.dataclass
class LossWeights:
  identity: Any = 2.0
  identity_hat: Any = 2.0
  content: Any = 50.0
  pixel: Any = 1.0
  landmark: Any = 0.001
  align: Any = 0.1
  reg_shape: Any = 0.05
  reg_expression: Any = 0.01
  reg_light: Any = 0.01

  @staticmethod
  def stage1(reg_shape=0.05, reg_expression=0.01) -> "LossWeights":
    return LossWeights(0.0, 0.0, 0.0, 0.0, 0.001, 1.0, reg_shape, reg_expression, 0.0).as_arrays()

  def as_arrays(self) -> "LossWeights":
    return jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), self)


class Target(NamedTuple):
  image: jnp.ndarray        # (S, S, 3) canvas photo in [0, 1]
  landmarks: jnp.ndarray    # (68, 2) canvas landmarks
  embedding: jnp.ndarray    # (D,) identity embedding of the aligned photo
  features: Dict[str, jnp.ndarray]  # intermediate identity features of the aligned photo
  align_matrix: jnp.ndarray  # (2, 3) canvas -> 112 crop (from the photo's landmarks)
  key: jnp.ndarray          # PRNG key for the id-hat render


def expression_values(expression_kind: str, raw):
  return jax.nn.sigmoid(raw) if expression_kind == EXPRESSION_BLENDSHAPE else raw


def camera_of(p: FitParams):
  return camera_lib.default_camera() + CAMERA_SCALE * p.camera_delta


def light_of(p: FitParams):
  return shading.default_light() + LIGHT_SCALE * p.light_delta


@dataclasses.dataclass(frozen=True)
class Objective:
  """Static parts of the objective: which model kind, texture decoder, identity net, canvas size."""
  expression_kind: str
  decode_texture: Callable[[Any, jnp.ndarray], jnp.ndarray]  # (tex_params, latent) -> (T, T, 3)
  identity_module: Any                                       # flax module: (B,112,112,3) -> (emb, feats)
  canvas_size: int = 224
  content_keys: tuple = CONTENT_KEYS_SFACE

  # ---------------------------------------------------------------- pieces
  def identity(self, id_variables, image_112):
    emb, feats = self.identity_module.apply(id_variables, image_112[None])
    return emb[0], {k: v[0] for k, v in feats.items()}

  def target(self, frozen, image, landmarks, key) -> Target:
    """Precomputes the photo side of the identity and content losses."""
    m = align.arcface_transform_jax(jnp.asarray(landmarks))
    crop = align.warp_affine(jnp.asarray(image), m, 112, 112)
    emb, feats = self.identity(frozen["identity"], crop)
    return Target(jnp.asarray(image), jnp.asarray(landmarks), emb, {k: feats[k] for k in self.content_keys},
                  m, key)

  def init_params(self, model, latent_dim: int, texture_latent=None) -> FitParams:
    e0 = EXPRESSION_LOGIT_INIT if self.expression_kind == EXPRESSION_BLENDSHAPE else 0.0
    return FitParams(shape=jnp.zeros((model.num_identity,), jnp.float32),
                     expression=jnp.full((model.num_expression,), e0, jnp.float32),
                     texture=jnp.zeros((latent_dim,), jnp.float32) if texture_latent is None else texture_latent,
                     camera_delta=jnp.zeros((10,), jnp.float32), light_delta=jnp.zeros((9,), jnp.float32))

  def random_conditions(self, key, model):
    ke, ky, kp, kl = jax.random.split(key, 4)
    z = jax.random.normal(ke, (model.num_expression,)) * 0.5
    expr = jnp.clip(z, 0.0, 1.0) if self.expression_kind == EXPRESSION_BLENDSHAPE else z
    yaw = jnp.deg2rad(20.0) * jax.random.normal(ky)
    pitch = jnp.deg2rad(10.0) * jax.random.normal(kp)
    cam = camera_lib.orbit_camera(yaw, pitch)
    light = shading.default_light() + jnp.array([300.0] * 3 + [0.1] * 6) * jax.random.normal(kl, (9,))
    return expr, cam, light

  def render(self, model, verts, texture, cam, light, background):
    s = self.canvas_size
    out = pipeline.render(verts, model.triangles, model.uv, model.uv_triangles, texture, cam, light, background,
                          height=s, width=s)
    face = out.mask & (out.uv[..., 0] <= 1.0)  # the textured UV tile (not ICT's head/neck tile)
    # only the textured face is composited: the untextured scalp/neck would show the texture's border
    # colour to the identity network and in every picture
    out = out._replace(image=jnp.where(face[..., None], out.shaded, background))
    return out, face

  # ---------------------------------------------------------------- the loss
  def loss_fn(self, params: FitParams, frozen, target: Target, weights: LossWeights):
    model = frozen["model"]
    s = self.canvas_size
    expr = expression_values(self.expression_kind, params.expression)
    cam = camera_of(params)
    lm3d = morphable.landmark_points(model, params.shape, expr)
    lm2d, _ = camera_lib.project(cam, lm3d, s, s)
    unit = s / 100.0
    align_term = jnp.mean(jnp.sum(jnp.square((lm2d - target.landmarks) / unit), -1))
    lan = losses.landmark_loss(lm2d, target.landmarks)
    reg_s = losses.l2_reg(params.shape)
    reg_e = losses.l2_reg(expr)
    reg_l = losses.l2_reg(params.light_delta)
    image_weight = weights.identity + weights.identity_hat + weights.content + weights.pixel

    def image_terms(_):
      verts = morphable.vertices(model, params.shape, expr)
      texture = self.decode_texture(frozen["texture"], params.texture)
      out, face = self.render(model, verts, texture, cam, light_of(params), target.image)
      crop = align.warp_affine(out.image, target.align_matrix, 112, 112)
      emb, feats = self.identity(frozen["identity"], crop)
      l_id = losses.identity_loss(emb, target.embedding)
      l_con = losses.content_loss({k: feats[k] for k in self.content_keys}, target.features, self.content_keys)
      l_pix = losses.pixel_loss(out.image, target.image, face)
      # id-hat: same shape and texture, random expression, pose and light
      e_hat, c_hat, li_hat = self.random_conditions(target.key, model)
      v_hat = morphable.vertices(model, params.shape, e_hat)
      grey = jnp.full((s, s, 3), 0.5, jnp.float32)
      out_hat, _ = self.render(model, v_hat, texture, c_hat, li_hat, grey)
      lm_hat, _ = camera_lib.project(c_hat, morphable.landmark_points(model, params.shape, e_hat), s, s)
      m_hat = align.arcface_transform_jax(jax.lax.stop_gradient(lm_hat))
      emb_hat, _ = self.identity(frozen["identity"], align.warp_affine(out_hat.image, m_hat, 112, 112))
      l_id_hat = losses.identity_loss(emb_hat, target.embedding)
      return jnp.stack([l_id, l_id_hat, l_con, l_pix])

    img = jax.lax.cond(image_weight > 0, image_terms, lambda _: jnp.zeros((4,), jnp.float32), None)
    l_id, l_id_hat, l_con, l_pix = img[0], img[1], img[2], img[3]
    loss = (weights.identity * l_id + weights.identity_hat * l_id_hat + weights.content * l_con
            + weights.pixel * l_pix + weights.landmark * lan + weights.align * align_term
            + weights.reg_shape * reg_s + weights.reg_expression * reg_e + weights.reg_light * reg_l)
    rmse = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(lm2d - target.landmarks), -1)))
    aux = dict(loss=loss, identity=l_id, identity_hat=l_id_hat, content=l_con, pixel=l_pix, landmark=lan,
               align=align_term, reg_shape=reg_s, reg_expression=reg_e, reg_light=reg_l, landmark_rmse_px=rmse)
    return loss, aux

  # ---------------------------------------------------------------- outputs
  def render_params(self, frozen, params: FitParams, background):
    """(RenderOutput, texture) of fitted parameters (for pictures and exports)."""
    model = frozen["model"]
    expr = expression_values(self.expression_kind, params.expression)
    verts = morphable.vertices(model, params.shape, expr)
    texture = self.decode_texture(frozen["texture"], params.texture)
    out, _ = self.render(model, verts, texture, camera_of(params), light_of(params), background)
    return out, texture


def frozen_arrays(model, texture_model, identity_net) -> Dict[str, Any]:
  return dict(model=model, texture=texture_model.params, identity=identity_net.variables)


def make_objective(model, texture_model, identity_net, canvas_size: int = 224) -> Objective:
  keys = CONTENT_KEYS_SFACE if identity_net.name == "sface" else ("layer1", "layer2", "layer3")

  def decode(tex_params, latent):
    return texture_model._decode(tex_params, latent[None])[0]

  return Objective(expression_kind=model.expression_kind, decode_texture=decode,
                   identity_module=identity_net.module, canvas_size=canvas_size, content_keys=keys)


__all__ = ["FitParams", "LossWeights", "Target", "Objective", "make_objective", "frozen_arrays",
           "camera_of", "light_of", "expression_values", "CAMERA_SCALE", "LIGHT_SCALE"]
