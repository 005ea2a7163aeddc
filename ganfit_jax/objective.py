"""GANFit's objective (paper Eq. 13) as one pure function of the optimiser's variables.

``loss_fn(variables, scene, target, weights, key) -> (loss, aux)`` is what
fitting and regressor training differentiate:

* ``variables`` (:class:`ganfit_jax.params.Variables`), mapped to physical
  :class:`~ganfit_jax.types.FaceParams` by :func:`ganfit_jax.params.to_face`;
* ``scene`` (:class:`ganfit_jax.scene.Scene`): model, texture model and
  identity network, a pytree (one compilation serves every photo);
* ``target`` (:class:`Target`, from :func:`prepare_target`): the photo's
  canvas, its 68 landmarks (and per-landmark weights), the identity embedding
  and content features of its aligned 112 crop;
* ``weights`` (:class:`LossWeights`): traced scalars, built by name only;
* ``key``: PRNG key of the random second render (id-hat).

``images=False`` (static) leaves out every image term (no render, no identity
network): the landmark stage of a fit, and fits whose scene has no texture
model or identity network.

Terms (units in :mod:`ganfit_jax.losses`; every weight's default lives in
``configs/fit.py``, nowhere else): the paper's identity, identity_hat, content,
pixel, landmark (Eq. 12, canvas pixels), reg_shape, reg_expression, reg_light. Additions:
``align`` (mean squared landmark error in canvas/100 px: the paper's 0.001 x
||dL|| alone does not hold the camera once the image terms pull), ``dense`` (the same for a dense
detector's points: MediaPipe's 478, weighted per point; :mod:`ganfit_jax.face.facemesh`) and
``reg_texture`` (mean square of the N(0, 1) texture latent) and ``sparse_expression``
(mean absolute expression value: an L1 prior, so a face uses few blendshapes) and
``light_chroma`` (variance across R, G, B of the light's colour and ambient terms: white light unless the
photo demands colour; without it the light drifts to a grey/green cast the texture then compensates).

Priors of the id-hat render (substitutes for the paper's 300W-3D statistics):
expression activations ``clip(N(0, 0.5), 0, 1)`` for blendshape models
(``N(0, 0.5)`` coefficients otherwise); camera orbiting the face with
yaw ~ N(0, 20 deg), pitch ~ N(0, 10 deg); light = default + N(0, 300 mm)
position, N(0, 0.1) colour and ambient. Grey background.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ganfit_jax import camera as camera_lib
from ganfit_jax import compiled
from ganfit_jax import lighting, losses, morphable
from ganfit_jax import params as params_lib
from ganfit_jax.face import align
from ganfit_jax.render import pipeline
from ganfit_jax.scene import Scene
from ganfit_jax.types import EXPRESSION_BLENDSHAPE, FaceParams

IMAGE_TERMS = ("identity", "identity_hat", "content", "pixel")
TERMS = IMAGE_TERMS + ("landmark", "align", "dense", "reg_shape", "reg_expression", "sparse_expression", "reg_light",
                       "light_chroma", "reg_texture")


@struct.dataclass(kw_only=True)
class LossWeights:
  """The weight of every term, by name (see the module docstring; :func:`LossWeights.create`)."""

  identity: jax.Array
  identity_hat: jax.Array
  content: jax.Array
  pixel: jax.Array
  landmark: jax.Array
  align: jax.Array
  dense: jax.Array
  reg_shape: jax.Array
  reg_expression: jax.Array
  sparse_expression: jax.Array
  reg_light: jax.Array
  light_chroma: jax.Array
  reg_texture: jax.Array
  extra: Dict[str, jax.Array] = struct.field(default_factory=dict)  # weights of user terms (extra_terms)

  @classmethod
  def create(cls, extra: Optional[Dict[str, float]] = None, **weights) -> "LossWeights":
    """Weights by name; terms not named are 0. A name that is not a term, or a negative or
    non-finite value, is a ValueError. ``extra``: weights of user-defined terms by name (the
    ``extra_terms`` of :func:`loss_fn` / :func:`ganfit_jax.fitting.fit`; they must not reuse a term's name)."""
    unknown = sorted(set(weights) - set(TERMS))
    if unknown:
      raise ValueError(f"unknown loss term(s) {unknown}; the terms are {list(TERMS)} (a term of your own: "
                       "give it in extra_terms and its weight in the stage's extra_weights)")
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(TERMS))
    if clash:
      raise ValueError(f"extra term name(s) {clash} are built-in terms; name your terms otherwise")
    for k, v in list(weights.items()) + list(extra.items()):
      v = float(v)
      if not np.isfinite(v) or v < 0:
        raise ValueError(f"loss weight {k}={v} must be a finite number >= 0")
    # device_put of host scalars: jnp.asarray would compile a conversion program per term
    put = lambda v: jax.device_put(np.float32(v))  # noqa: E731
    return cls(**{k: put(weights.get(k, 0.0)) for k in TERMS}, extra={k: put(v) for k, v in sorted(extra.items())})

  def as_dict(self) -> Dict[str, float]:
    return dict({k: float(getattr(self, k)) for k in TERMS}, **{k: float(v) for k, v in self.extra.items()})

  def uses_images(self) -> bool:
    """Whether any image term has a non-zero weight (needs concrete weights)."""
    return any(float(getattr(self, k)) > 0 for k in IMAGE_TERMS)


@struct.dataclass
class Target:
  """The photo side of the losses, for one photo.

  image: (S, S, 3) canvas in [0, 1]; landmarks: (68, 2) canvas pixels;
  landmark_weight: (68,) per-landmark weights of the landmark terms;
  dense: (P, 2) canvas pixels of the dense detector's points (P = the model's ``dense_corners``);
  dense_weight: (P,) their weights (0: no dense detection for this photo);
  embedding: (D,) identity embedding of the photo's aligned 112 crop;
  features: the identity network's content layers of that crop;
  align_matrix: (2, 3) canvas -> 112 crop (from the photo's landmarks).
  """

  image: jax.Array
  landmarks: jax.Array
  landmark_weight: jax.Array
  dense: jax.Array
  dense_weight: jax.Array
  embedding: jax.Array
  features: Dict[str, jax.Array]
  align_matrix: jax.Array


def prepare_target(scene: Scene, image, landmarks, landmark_weight=None, dense=None, dense_weight=None) -> Target:
  """Precomputes the photo side of the identity and content losses (one photo). ``dense``: (P, 2) the dense
  detector's points (canvas pixels) or None (the dense term then has weight 0 for this photo)."""
  image = jnp.asarray(image, jnp.float32)
  landmarks = jnp.asarray(landmarks, jnp.float32)
  s = scene.canvas_size
  if image.shape != (s, s, 3) or landmarks.shape != (68, 2):
    raise ValueError(f"a target needs a ({s}, {s}, 3) canvas and (68, 2) landmarks, got {image.shape} and "
                     f"{landmarks.shape}")
  w = jnp.ones((68,), jnp.float32) if landmark_weight is None else jnp.asarray(landmark_weight, jnp.float32)
  p = scene.model.dense_corners.shape[0]
  if dense is None:
    dense, dense_weight = jnp.zeros((p, 2), jnp.float32), jnp.zeros((p,), jnp.float32)
  dense = jnp.asarray(dense, jnp.float32)
  dense_weight = jnp.ones((p,), jnp.float32) if dense_weight is None else jnp.asarray(dense_weight, jnp.float32)
  if dense.shape != (p, 2) or dense_weight.shape != (p,):
    raise ValueError(f"the model {scene.model.name!r} has {p} dense points: a target's dense points must be "
                     f"({p}, 2) and their weights ({p},), got {dense.shape} and {dense_weight.shape}")
  m = align.arcface_transform_jax(landmarks)
  if scene.identity is not None:
    emb, feats = scene.identity(align.warp_affine(image, m, 112, 112))
    feats = {k: feats[k] for k in scene.identity.content_layers}
  else:
    emb, feats = jnp.zeros((1,), jnp.float32), {}
  return Target(image=image, landmarks=landmarks, landmark_weight=w, dense=dense, dense_weight=dense_weight,
                embedding=emb, features=feats, align_matrix=m)


JAW = slice(0, 17)  # iBUG 0-16: the jaw contour


def confidence_weights(scatter, max_ratio: float = 16.0) -> np.ndarray:
  """(P,) per-point weights from the detector's learned scatter (``MorphableModel.landmark_scatter`` /
  ``dense_scatter``): the inverse square (independent Gaussian errors: the maximum-likelihood weighting),
  relative to the median point, clipped to [1 / max_ratio, max_ratio] and scaled to mean 1 (so a term's
  size stays that of equal weights). Equal scatter (a model without a learned file) gives ones."""
  s = np.asarray(scatter, np.float64).reshape(-1)
  if not s.size:
    return np.zeros((0,), np.float32)
  if not (np.all(np.isfinite(s)) and np.all(s > 0)):
    raise ValueError("landmark scatter must be finite and > 0 (tools/learn_landmarks.py writes it)")
  w = np.clip((np.median(s) / s) ** 2, 1.0 / max_ratio, max_ratio)
  return (w / w.mean()).astype(np.float32)


def landmark_weights(num: int, jaw_weight: float, scatter=None) -> np.ndarray:
  """(num, 68) weights of the landmark terms (``Target.landmark_weight``): ``jaw_weight`` on the 17 jaw-contour
  points (iBUG 0-16: silhouette points of the photo, fixed vertices of the model), 1 elsewhere, times
  :func:`confidence_weights` of ``scatter`` (68,) when given (the model's ``landmark_scatter``: config
  ``landmark_confidence``). Fits and the regressor's training both take their targets' weights from here
  (``configs/fit.py``: ``jaw_weight``)."""
  if not np.isfinite(jaw_weight) or jaw_weight < 0:
    raise ValueError(f"jaw_weight={jaw_weight} must be a finite number >= 0 (configs/fit.py: --config.jaw_weight)")
  w = np.ones((num, 68), np.float32)
  w[:, JAW] = jaw_weight
  if scatter is not None:
    w = w * confidence_weights(scatter)[None]
  return w


IRISES = slice(468, 478)  # MediaPipe's iris points (after its 468 mesh points)


def dense_targets(dense_points, num_points: int, iris_weight: float = 0.0, scatter=None):
  """(points (B, P, 2), weights (B, P)) of the dense term from B photos' dense points ((P, 2) each, or None
  where a photo has none: weight 0). ``num_points``: the model's P (0: the model has no dense points; every
  weight is 0). Iris points (MediaPipe's 468-477) get ``iris_weight``, the others 1; times
  :func:`confidence_weights` of ``scatter`` (P,) when given (the model's ``dense_scatter``)."""
  if not np.isfinite(iris_weight) or iris_weight < 0:
    raise ValueError(f"iris_weight={iris_weight} must be a finite number >= 0 (configs/fit.py: dense_iris_weight)")
  b = len(dense_points)
  pts = np.zeros((b, num_points, 2), np.float32)
  w = np.zeros((b, num_points), np.float32)
  for i, d in enumerate(dense_points):
    if d is None or not num_points:
      continue
    if np.shape(d) != (num_points, 2):
      raise ValueError(f"photo {i}'s dense points are {np.shape(d)}, the model's correspondence has ({num_points}, 2): "
                       "learn it for this detector (tools/learn_landmarks.py --points=dense) or set "
                       "--config.dense=False")
    if np.all(np.isfinite(d)):
      pts[i], w[i] = d, 1.0
      if num_points > IRISES.start:
        w[i, IRISES] = iris_weight
  if scatter is not None and num_points:
    if np.shape(scatter) != (num_points,):
      raise ValueError(f"scatter must be ({num_points},), got {np.shape(scatter)}")
    w = w * confidence_weights(scatter)[None]
  return pts, w


def prepare_targets(scene: Scene, images, landmarks, landmark_weight=None, dense=None, dense_weight=None) -> Target:
  """:func:`prepare_target` for B photos: images (B, S, S, 3), landmarks (B, 68, 2), weights (B, 68); dense
  points (B, P, 2) and their weights (B, P) (None: no dense points, weight 0).

  Compiled once per scene structure and batch shape (:func:`ganfit_jax.compiled.call`)."""
  images, landmarks = compiled.float32(images), compiled.float32(landmarks)
  b, p = landmarks.shape[0], scene.model.dense_corners.shape[0]
  if landmark_weight is None:
    landmark_weight = np.ones(landmarks.shape[:2], np.float32)
  if dense is None:
    dense, dense_weight = np.zeros((b, p, 2), np.float32), np.zeros((b, p), np.float32)
  elif dense_weight is None:
    dense_weight = np.ones((b, p), np.float32)
  return compiled.call(jax.vmap(prepare_target, in_axes=(None, 0, 0, 0, 0, 0)), scene, images, landmarks,
                       compiled.float32(landmark_weight), compiled.float32(dense), compiled.float32(dense_weight),
                       name="prepare_targets")


def sample_conditions(key, scene: Scene):
  """Random expression, camera and light of the id-hat render (see the module docstring)."""
  model = scene.model
  ke, ky, kp, kl = jax.random.split(key, 4)
  z = jax.random.normal(ke, (model.num_expression,)) * 0.5
  expr = jnp.clip(z, 0.0, 1.0) if model.expression_kind == EXPRESSION_BLENDSHAPE else z
  yaw = jnp.deg2rad(20.0) * jax.random.normal(ky)
  pitch = jnp.deg2rad(10.0) * jax.random.normal(kp)
  cam = camera_lib.orbit_camera(yaw, pitch)
  light = lighting.default_light() + jnp.array([300.0] * 3 + [0.1] * 6) * jax.random.normal(kl, (9,))
  return expr, cam, light


def render_mesh(scene: Scene, verts, texture, camera, light, background, size: Optional[int] = None):
  """Renders the model's mesh; only the textured UV tile is composited (ICT's untextured scalp/neck
  would otherwise show the texture's border colour). Returns (RenderOutput, face mask (H, W))."""
  s = size or scene.canvas_size
  m = scene.model
  out = pipeline.render(verts, m.triangles, m.uv, m.uv_triangles, texture, camera, light, background,
                        height=s, width=s)
  face = out.mask & (out.uv[..., 0] <= 1.0)
  return out._replace(image=jnp.where(face[..., None], out.shaded, background)), face


def render_face(scene: Scene, face: FaceParams, background, *, size: Optional[int] = None, texture=None):
  """(RenderOutput, face mask, composed texture) of physical parameters (one example)."""
  verts = morphable.vertices(scene.model, face.shape, face.expression)
  texture = scene.texture_image(face.texture) if texture is None else texture
  out, mask = render_mesh(scene, verts, texture, face.camera, face.light, background, size)
  return out, mask, texture


def light_chroma(light):
  """Variance across the three channels of the light's colour and ambient terms (0 for white light)."""
  _, colour, ambient = lighting.split(light)
  return jnp.var(colour) + jnp.var(ambient)


def project_landmarks(scene: Scene, face: FaceParams):
  """(68, 2) canvas pixels of the model's landmarks (:func:`landmarks_2d`)."""
  return landmarks_2d(scene.model, face.shape, face.expression, face.camera, scene.canvas_size)


def landmarks_2d(model, shape, expression, camera, size: int):
  """(68, 2) pixels of the model's landmarks seen by ``camera`` in a ``size`` square image.

  Inner points (iBUG 17-67) are fixed surface points (``MorphableModel.landmark_corners`` / ``landmark_bary``).
  The jaw contour (0-16) is where the photo's outline is, which moves over the mesh as the head turns: for a
  model with ``contour`` candidates, each jaw point is the candidate that projects farthest along its
  outward direction (:func:`slide_jaw`): on the silhouette (dynamic contour correspondence, as 3DDFA and eos
  do). The choice is not differentiated (a piecewise-constant index); the chosen point's position is.
  """
  lm3d = morphable.landmark_points(model, shape, expression)
  xy = camera_lib.project(camera, lm3d, size, size)[0]
  if model.contour.shape[1] == 0:
    return xy
  return xy.at[JAW].set(slide_jaw(lm3d[JAW], morphable.contour_points(model, shape, expression), camera, size))


def dense_2d(model, shape, expression, camera, size: int):
  """(P, 2) pixels of the model's dense points (``MorphableModel.dense_corners`` / ``dense_bary``: fixed surface
  points) seen by ``camera`` in a ``size`` square image."""
  return camera_lib.project(camera, morphable.dense_points(model, shape, expression), size, size)[0]


def jaw_outward(jaw):
  """(17, 3) unit outward directions of the jaw contour points (17, 3) in the model's frontal (x, y) plane:
  the contour's tangent (neighbours' difference) turned a quarter (iBUG order runs from the subject's right
  ear down round the chin to the left: the turn points away from the face)."""
  t = jnp.concatenate([jaw[1:2] - jaw[0:1], jaw[2:] - jaw[:-2], jaw[-1:] - jaw[-2:-1]])
  out = jnp.stack([t[:, 1], -t[:, 0], jnp.zeros_like(t[:, 0])], -1)
  return out / jnp.maximum(jnp.linalg.norm(out, axis=-1, keepdims=True), 1e-6)


def slide_jaw(jaw, candidates, camera, size: int):
  """(17, 2) pixels of the jaw-contour points: of each point's candidates (17, C, 3), the one that projects
  farthest along the point's outward direction (:func:`jaw_outward`, as the camera sees it)."""
  jaw_c = jax.lax.stop_gradient(jaw)
  xy = camera_lib.project(camera, jaw_c, size, size)[0]
  ahead = camera_lib.project(camera, jaw_c + 10.0 * jaw_outward(jaw_c), size, size)[0]
  direction = jax.lax.stop_gradient(ahead - xy)  # (17, 2) outward in the image
  c = candidates.shape[1]
  cxy = camera_lib.project(camera, candidates.reshape(-1, 3), size, size)[0].reshape(17, c, 2)
  pick = jnp.argmax(jnp.einsum("jcd,jd->jc", jax.lax.stop_gradient(cxy), direction), axis=1)
  return jnp.take_along_axis(cxy, pick[:, None, None], axis=1)[:, 0]


def loss_fn(variables: params_lib.Variables, scene: Scene, target: Target, weights: LossWeights, key, *,
            images: bool = True, extra_terms: Tuple[Tuple[str, Callable], ...] = ()):
  """(loss, aux) of one photo; aux holds every term and ``landmark_rmse_px`` (see the module docstring).

  ``extra_terms``: ((name, fn), ...) terms of your own, each ``fn(face, variables, target) -> scalar`` (a
  traced function of the photo's :class:`~ganfit_jax.types.FaceParams`, the optimiser's Variables and the
  :class:`Target`), weighted by ``weights.extra[name]`` (0 when absent) and reported in aux under its name.
  """
  face = params_lib.to_face(variables, scene.model.expression_kind)
  s = scene.canvas_size
  lm2d = project_landmarks(scene, face)
  d2 = jnp.sum(jnp.square(lm2d - target.landmarks), -1)  # (68,) squared pixel distances
  w = target.landmark_weight
  unit = s / 100.0
  terms = dict(
      align=jnp.sum(w * d2) / jnp.maximum(jnp.sum(w), 1e-6) / (unit * unit),
      landmark=losses.landmark_loss(jnp.sqrt(w)[:, None] * lm2d, jnp.sqrt(w)[:, None] * target.landmarks),
      dense=_dense_term(scene, face, target) / (unit * unit),
      reg_shape=losses.l2_reg(face.shape),
      reg_expression=losses.l2_reg(face.expression),
      sparse_expression=jnp.mean(jnp.abs(face.expression)) if face.expression.size else jnp.zeros(()),
      reg_light=losses.l2_reg(variables.light),
      light_chroma=light_chroma(face.light),
      reg_texture=losses.l2_reg(variables.texture))
  if images:
    if not scene.has_images:
      raise ValueError("image terms need a scene with a texture model and an identity network")
    texture = scene.texture_image(face.texture)
    # the fit's render and id-hat's (same shape and texture; random expression, pose and light) in one
    # batch of two: one render and one identity-network pass to compile and run
    e_hat, c_hat, l_hat = sample_conditions(key, scene)
    hat = face.replace(expression=e_hat, camera=c_hat, light=l_hat)
    pair = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), face, hat)
    grey = jnp.full((s, s, 3), 0.5, jnp.float32)
    outs, masks, _ = jax.vmap(lambda f, bg: render_face(scene, f, bg, texture=texture))(
        pair, jnp.stack([target.image, grey]))
    m_hat = align.arcface_transform_jax(jax.lax.stop_gradient(project_landmarks(scene, hat)))
    crops = jax.vmap(lambda im, m: align.warp_affine(im, m, 112, 112))(outs.image,
                                                                        jnp.stack([target.align_matrix, m_hat]))
    embs, feats = scene.identity(crops)
    layers = scene.identity.content_layers
    terms["identity"] = losses.identity_loss(embs[0], target.embedding)
    terms["identity_hat"] = losses.identity_loss(embs[1], target.embedding)
    terms["content"] = losses.content_loss({k: feats[k][0] for k in layers}, target.features, layers)
    terms["pixel"] = losses.pixel_loss(outs.image[0], target.image, masks[0])
  else:
    terms.update({k: jnp.zeros((), jnp.float32) for k in IMAGE_TERMS})
  loss = sum(getattr(weights, k) * terms[k] for k in TERMS)
  for name, fn in extra_terms:
    terms[name] = jnp.asarray(fn(face, variables, target), jnp.float32).reshape(())
    if name in weights.extra:
      loss = loss + weights.extra[name] * terms[name]
  aux = dict(terms, loss=loss, landmark_rmse_px=jnp.sqrt(jnp.mean(d2)))
  return loss, aux


def _dense_term(scene: Scene, face: FaceParams, target: Target):
  """Weighted mean squared pixel distance of the dense points (0 when the photo or the model has none)."""
  if scene.model.dense_corners.shape[0] == 0:
    return jnp.zeros((), jnp.float32)
  xy = dense_2d(scene.model, face.shape, face.expression, face.camera, scene.canvas_size)
  d2 = jnp.sum(jnp.square(xy - target.dense), -1)
  return jnp.sum(target.dense_weight * d2) / jnp.maximum(jnp.sum(target.dense_weight), 1e-6)


def evaluate(scene: Scene, variables: params_lib.Variables, targets: Target, weights: LossWeights, key, *,
             images: bool = True) -> Dict[str, jax.Array]:
  """The loss terms (aux, (B,) each) of given Variables (B, ...) without optimising, in one compiled call.

  ``images=False`` (or a scene without images): the landmark and regulariser terms only (:func:`geometry_terms`),
  without a render or an identity-network pass; the image terms and the total ``loss`` are left out.
  """
  keys = jax.random.key_data(jax.random.split(key, int(targets.landmarks.shape[0])))
  images = bool(images and scene.has_images)

  def run(sc, v, t, w, k):
    if not images:
      return jax.vmap(lambda vi, ti: geometry_terms(vi, sc, ti, w))(v, t)
    return jax.vmap(lambda vi, ti, ki: loss_fn(vi, sc, ti, w, jax.random.wrap_key_data(ki))[1])(v, t, k)

  return compiled.call(run, scene, variables, targets, weights, keys, name="evaluate_variables", static=images)


def geometry_terms(variables: params_lib.Variables, scene: Scene, target: Target, weights: LossWeights):
  """The landmark and regulariser terms of :func:`loss_fn` and ``landmark_rmse_px`` (one photo): no render,
  no identity network; the image terms and the total (which would count them as 0) are left out."""
  _, aux = loss_fn(variables, scene, target, weights, jax.random.key(0), images=False)  # the key is unused
  return {k: v for k, v in aux.items() if k not in IMAGE_TERMS + ("loss",)}


__all__ = ["LossWeights", "Target", "TERMS", "IMAGE_TERMS", "JAW", "IRISES", "landmark_weights", "dense_targets",
           "confidence_weights",
           "prepare_target",
           "prepare_targets", "loss_fn", "evaluate", "geometry_terms", "render_face", "render_mesh",
           "project_landmarks", "landmarks_2d", "dense_2d", "jaw_outward", "slide_jaw",
           "sample_conditions"]
