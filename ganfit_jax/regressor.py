"""Fast-GANFit and GANFit++: a regressor trained self-supervised through the fitting loss.

  net = regressor.init(scene, key, **net_options)      # untrained: predicts the fit's start exactly
  targets, result = regressor.fast_ganfit(net, scene, images, landmarks, weights, key=k)   # Fast-GANFit
  init = regressor.start(net, scene, targets)           # GANFit++: the prediction starts ...
  fitting.fit(scene, targets, regressor.short_schedule(schedule), key=k, init=init)  # ... a shortened fit

Which of GANFit / Fast-GANFit / GANFit++ runs (:data:`MODES`, ``configs/fit.py``'s ``mode``) is decided here
(:func:`resolve_mode`): ``auto`` is GANFit++ where the configured regressor was trained for the scene.

Training (:func:`train`, ``tools/train_regressor.py``) moves the network's weights by the gradient of
:func:`ganfit_jax.objective.loss_fn` (the very loss a fit descends) of its predictions: no ground-truth
parameters. Two stages as in the paper: landmarks + regularisers, then every term. Photos: LFW DevTrain
(the landmark cache of ``tools/detect_lfw.py``); their targets (canvas, landmarks, identity embedding and
content features) are computed once and kept on the host (features in float16).

Checkpoints (orbax, ``workdir/ckpt``) hold the weights, the optimiser state and the step; each step's batch
and random keys come from ``fold_in(seed, step)``, so a resumed run continues bit-exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Any, Callable, Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from ganfit_jax import objective
from ganfit_jax import params as params_lib
from ganfit_jax.nets.regressor import INPUT_SIZE, Regressor
from ganfit_jax.scene import Scene
from ganfit_jax.types import EXPRESSION_BLENDSHAPE
from ganfit_jax.files import atomic_path


@struct.dataclass
class RegressorNet:
  """The network's weights (leaves) and its module (static)."""
  params: Any
  module: Regressor = struct.field(pytree_node=False)


def group_sizes(scene: Scene) -> Dict[str, int]:
  latent = scene.texture.latent_dim if scene.texture is not None else 1
  return dict(shape=scene.model.num_identity, expression=scene.model.num_expression, texture=latent, camera=9,
              focal=1, light=9)


def make_module(scene: Scene, widths: Sequence[int] = (16, 32, 64, 128), blocks: int = 1, hidden: int = 256,
                feature_width: int = 32) -> Regressor:
  return Regressor(sizes=tuple(group_sizes(scene).items()), widths=tuple(int(w) for w in widths), blocks=int(blocks),
                   hidden=int(hidden), feature_width=int(feature_width))


def _inputs(scene: Scene, target: objective.Target):
  """The network's inputs for targets with a leading batch axis."""
  s = scene.canvas_size
  b = target.image.shape[0]
  image = jax.image.resize(target.image, (b, INPUT_SIZE, INPUT_SIZE, 3), "linear", antialias=True)
  landmarks = target.landmarks / s * 2.0 - 1.0
  feats = {k: v.astype(jnp.float32) for k, v in target.features.items()}
  return image, landmarks, target.embedding.astype(jnp.float32), feats


def init(scene: Scene, key, **net_options) -> RegressorNet:
  """An untrained regressor for ``scene`` (its heads are zero: it predicts the fit's start)."""
  module = make_module(scene, **net_options)
  dummy = objective.Target(
      image=jnp.zeros((1, scene.canvas_size, scene.canvas_size, 3)), landmarks=jnp.zeros((1, 68, 2)),
      landmark_weight=jnp.ones((1, 68)), dense=jnp.zeros((1, scene.model.dense_corners.shape[0], 2)),
      dense_weight=jnp.zeros((1, scene.model.dense_corners.shape[0])), embedding=jnp.zeros((1, _embedding_dim(scene))),
      features=_dummy_features(scene), align_matrix=jnp.zeros((1, 2, 3)))
  variables = _compiled_init(module)(key, *_inputs(scene, dummy))
  return RegressorNet(params=variables["params"], module=module)


@functools.lru_cache(maxsize=None)
def _compiled_init(module: Regressor):
  """``module.init`` compiled once per network configuration (eagerly it would run operation by operation)."""
  return jax.jit(module.init)


def _embedding_dim(scene: Scene) -> int:
  if scene.identity is None:
    return 1
  emb, _ = jax.eval_shape(scene.identity, jnp.zeros((1, 112, 112, 3)))  # shapes only: no forward pass
  return int(emb.shape[-1])


def _dummy_features(scene: Scene):
  if scene.identity is None:
    return {}
  _, feats = jax.eval_shape(scene.identity, jnp.zeros((1, 112, 112, 3)))
  return {k: jnp.zeros(feats[k].shape) for k in scene.identity.content_layers}


def predict_variables(net: RegressorNet, scene: Scene, targets: objective.Target) -> params_lib.Variables:
  """Variables (B, ...) for targets (B, ...): the fit's start plus the network's offsets."""
  out = net.module.apply({"params": net.params}, *_inputs(scene, targets))
  latent = out["texture"].shape[-1]
  base = params_lib.init(scene.model, jnp.zeros((latent,)))
  return params_lib.Variables(**{g: getattr(base, g)[None] + out[g] for g in params_lib.GROUPS})


def predict(net: RegressorNet, scene: Scene, targets: objective.Target):
  """FaceParams (B, ...) predicted in one compiled forward pass (Fast-GANFit)."""
  from ganfit_jax import compiled

  def run(net, scene, targets):
    v = predict_variables(net, scene, targets)
    return v, jax.vmap(lambda x: params_lib.to_face(x, scene.model.expression_kind))(v)

  return compiled.call(run, net, scene, targets, name="regressor_predict")


def regress(net: RegressorNet, scene: Scene, images, landmarks, landmark_weight=None,
            weights: Optional[objective.LossWeights] = None):
  """Fast-GANFit of canvases (B, S, S, 3) with landmarks (B, 68, 2) in one compiled call: the targets, the
  predicted Variables and FaceParams, and their :func:`ganfit_jax.objective.geometry_terms` (B, ...) each.
  ``landmark_weight`` (B, 68): 1 when omitted; ``weights``: the terms' weights (default: align 1)."""
  from ganfit_jax import compiled
  images, landmarks = np.asarray(images, np.float32), np.asarray(landmarks, np.float32)
  s = scene.canvas_size
  if images.ndim != 4 or images.shape[1:] != (s, s, 3) or landmarks.shape != (images.shape[0], 68, 2):
    raise ValueError(f"regress needs (B, {s}, {s}, 3) canvases and (B, 68, 2) landmarks, got {images.shape} and "
                     f"{landmarks.shape}; make them with face.prepare at this scene's canvas size")
  if landmark_weight is None:
    landmark_weight = np.ones(landmarks.shape[:2], np.float32)
  if weights is None:
    weights = objective.LossWeights.create(align=1.0)

  def run(net, scene, images, landmarks, landmark_weight, weights):
    t = jax.vmap(objective.prepare_target, in_axes=(None, 0, 0, 0))(scene, images, landmarks, landmark_weight)
    v = predict_variables(net, scene, t)
    faces = jax.vmap(lambda x: params_lib.to_face(x, scene.model.expression_kind))(v)
    return t, v, faces, jax.vmap(lambda vi, ti: objective.geometry_terms(vi, scene, ti, weights))(v, t)

  return compiled.call(run, net, scene, compiled.float32(images), compiled.float32(landmarks),
                       compiled.float32(landmark_weight), weights, name="regress")


# ----------------------------------------------------------------------------- modes (GANFit / Fast-GANFit / GANFit++)

# fit: GANFit (from the mean face); regress: Fast-GANFit (the prediction alone); regress_fit: GANFit++ (the
# prediction starts a fit of a fraction of the steps); auto: regress_fit where the configured regressor was trained
# for this scene (model, texture model, identity network, canvas), fit otherwise (ModeChoice.note says why)
MODES = ("auto", "fit", "regress", "regress_fit")


def load_for(name_or_path: str, scene: Scene, *, canvas_size: int, identity_net: str) -> RegressorNet:
  """The regressor of ``--config.regressor`` (asset name or .npz), checked against the scene it must serve;
  a ValueError names the mismatch."""
  from ganfit_jax import assets
  net, meta = load(assets.resolve(name_or_path))
  want = dict(group_sizes(scene))
  got = dict(net.module.sizes)
  # the identity network's features are inputs of the regressor: another network is another input space
  ident = meta.get("identity_net")
  same_ident = ident is None or scene.identity is None or ident in (identity_net, scene.identity.name)
  if got != want or int(meta.get("canvas_size", canvas_size)) != int(canvas_size) or not same_ident:
    raise ValueError(f"the regressor {name_or_path!r} was trained for another model, texture model, identity "
                     f"network or canvas (outputs {got}, identity network {ident!r}, canvas "
                     f"{meta.get('canvas_size')}; this config needs {want}, {identity_net!r}, canvas "
                     f"{canvas_size}); train one with tools/train_regressor.py or use --config.mode=fit")
  return net


@dataclasses.dataclass(frozen=True)
class ModeChoice:
  """The mode a config runs: ``mode`` in fit / regress / regress_fit, the regressor it needs (None for fit)
  and, when ``auto`` fell back to fit, ``note`` saying why."""
  mode: str
  net: Optional[RegressorNet] = None
  note: Optional[str] = None


def resolve_mode(mode: str, regressor: str, scene: Scene, *, canvas_size: int, identity_net: str) -> ModeChoice:
  """The policy of :data:`MODES`: ``auto`` -> regress_fit where ``regressor`` loads and was trained for the
  scene, fit otherwise (with a note); ``regress`` / ``regress_fit`` need that regressor (ValueError if not)."""
  if mode not in MODES:
    raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
  if mode == "fit":
    return ModeChoice("fit")
  try:
    net = load_for(regressor, scene, canvas_size=canvas_size, identity_net=identity_net)
  except ValueError as e:
    if mode != "auto":
      raise
    return ModeChoice("fit", note=f"mode auto: fitting from the mean face (GANFit), because {e}")
  return ModeChoice("regress_fit" if mode == "auto" else mode, net)


def short_schedule(schedule, scale: float):
  """GANFit++'s schedule: every stage's steps times ``scale`` (at least one step), one texture init."""
  if not (0.0 < scale <= 1.0):
    raise ValueError(f"regress_fit_scale must be in (0, 1], got {scale}")
  stages = tuple(dataclasses.replace(st, steps=max(1, int(round(st.steps * scale))) if st.steps else 0)
                 for st in schedule.stages)
  return dataclasses.replace(schedule, stages=stages, num_inits=1)


def _shared(v: params_lib.Variables) -> params_lib.Variables:
  """Several photos of one person: the per-photo predictions of shape and texture averaged."""
  return v.replace(**{g: jnp.broadcast_to(jnp.mean(getattr(v, g), 0, keepdims=True), getattr(v, g).shape)
                      for g in ("shape", "texture")})


def check_expression_floor(value) -> float:
  """``value`` as :func:`start`'s ``expression_floor``: a number below +inf (-inf: no floor); else ValueError
  naming the fix."""
  x = float(value)
  if np.isnan(x) or x == np.inf:
    raise ValueError(f"--config.regress_expression_floor={value} must be a number below +inf (a logit, e.g. -4; "
                     "-inf: no floor)")
  return x


def start(net: RegressorNet, scene: Scene, targets: objective.Target, shared_identity: bool = False,
          expression_floor: float = -np.inf):
  """GANFit++'s starting Variables (B, ...): the prediction (identity averaged when the photos share one).

  ``expression_floor``: a blendshape model's expression logits are raised to at least this (a fit's Adam step
  moves a logit by about its learning rate, so a shape predicted at a logit far below the fit's neutral start
  stays at zero through a short fit whatever the photo shows: ``configs/fit.py``'s
  ``regress_expression_floor``). Gaussian expression coefficients are left as they are."""
  expression_floor = check_expression_floor(expression_floor)
  v, _ = predict(net, scene, targets)
  if scene.model.expression_kind == EXPRESSION_BLENDSHAPE and np.isfinite(expression_floor):
    v = v.replace(expression=jnp.maximum(v.expression, jnp.float32(expression_floor)))
  return _shared(v) if shared_identity else v


def fast_ganfit(net: RegressorNet, scene: Scene, images, landmarks, landmark_weight, weights: objective.LossWeights,
                *, key, shared_identity: bool = False, image_terms: bool = False, progress=None):
  """Fast-GANFit of canvases (B, S, S, 3) with landmarks (B, 68, 2): ``(targets, FitResult)``, the result
  holding the prediction and its loss terms (one 'step').

  The terms are the landmark and regulariser ones (:func:`ganfit_jax.objective.geometry_terms`), all in one
  compiled call with the targets and the prediction (:func:`regress`); ``image_terms`` adds the image terms
  and the total (one render and two identity passes more). ``shared_identity``: one person's photos."""
  from ganfit_jax import fitting
  t0 = time.perf_counter()
  if not shared_identity and not image_terms:
    targets, v, faces, aux = regress(net, scene, images, landmarks, landmark_weight, weights)
  else:
    targets = objective.prepare_targets(scene, images, landmarks, landmark_weight)
    v = start(net, scene, targets, shared_identity)
    aux = objective.evaluate(scene, v, targets, weights, key, images=image_terms)
    faces = jax.vmap(lambda x: params_lib.to_face(x, scene.model.expression_kind))(v)
  aux = {k: np.asarray(x)[None] for k, x in jax.device_get(aux).items()}  # (1 step, B)
  if progress is not None:
    progress(1, 1, dict({k: float(np.mean(x)) for k, x in aux.items()}, stage="regress"))
  total = aux.get("loss", aux["landmark"])
  return targets, fitting.FitResult(faces=faces, variables=v, final={k: x[-1] for k, x in aux.items()}, history=aux,
                                    init_losses=total.T, best_init=np.zeros((total.shape[1],), int),
                                    seconds=time.perf_counter() - t0, stages=(("regress", 0),))


# ----------------------------------------------------------------------------- training


def batch_loss(net_params, module: Regressor, scene: Scene, targets: objective.Target, weights, keys,
               images: bool):
  """Mean over the batch of ``objective.loss_fn`` of the network's predictions, and the mean aux."""
  v = predict_variables(RegressorNet(net_params, module), scene, targets)
  loss, aux = jax.vmap(lambda vi, ti, ki: objective.loss_fn(vi, scene, ti, weights, jax.random.wrap_key_data(ki),
                                                            images=images))(v, targets, keys)
  return jnp.mean(loss), jax.tree_util.tree_map(jnp.mean, aux)


@functools.lru_cache(maxsize=None)
def make_optimizer(lr: float, clip: float = 1.0):
  """Adam with non-finite gradients zeroed and the global norm clipped (one object per setting: it is a
  static argument of the compiled step, so a resumed run reuses the compiled program)."""
  return optax.chain(optax.zero_nans(), optax.clip_by_global_norm(clip), optax.adam(lr))


@functools.partial(jax.jit, static_argnames=("module", "images", "optimizer"), donate_argnums=(0, 1))
def train_step(net_params, opt_state, scene, targets, weights, keys, *, module, images: bool, optimizer):
  (loss, aux), grads = jax.value_and_grad(batch_loss, has_aux=True)(net_params, module, scene, targets, weights,
                                                                    keys, images)
  updates, opt_state = optimizer.update(grads, opt_state, net_params)
  return optax.apply_updates(net_params, updates), opt_state, aux


@dataclasses.dataclass
class HostTargets:
  """Training targets kept on the host (numpy, features float16), gathered per batch."""
  target: objective.Target

  @property
  def size(self) -> int:
    return int(self.target.landmarks.shape[0])

  def batch(self, idx) -> objective.Target:
    return jax.tree_util.tree_map(lambda x: jnp.asarray(np.asarray(x[idx], np.float32)), self.target)


def prepare_photos(scene: Scene, photos: Sequence[str], landmarks: Sequence[np.ndarray], *, jaw_weight: float,
                   chunk: int = 16, progress: Optional[Callable[[int, int], None]] = None) -> HostTargets:
  """Canvas + targets of photos with known 68 landmarks (photo pixels), computed in chunks.

  ``jaw_weight``: the fit's (``configs/fit.py``), so the targets carry the landmark weights a fit uses
  (:func:`ganfit_jax.objective.landmark_weights`) and training descends the loss the fit descends."""
  from ganfit_jax import face
  if len(photos) != len(landmarks) or not photos:
    raise ValueError(f"give one (68, 2) landmark array per photo: {len(photos)} photos, {len(landmarks)} arrays")
  parts = []
  for i in range(0, len(photos), chunk):
    preps = [face.prepare(p, scene.canvas_size, landmarks=np.asarray(lm, np.float32))
             for p, lm in zip(photos[i:i + chunk], landmarks[i:i + chunk])]
    n = len(preps)
    images = np.stack([p.canvas for p in preps] + [preps[0].canvas] * (chunk - n)).astype(np.float32)
    lms = np.stack([p.landmarks for p in preps] + [preps[0].landmarks] * (chunk - n)).astype(np.float32)
    t = jax.device_get(objective.prepare_targets(scene, images, lms, objective.landmark_weights(chunk, jaw_weight)))
    t = jax.tree_util.tree_map(lambda x: np.asarray(x)[:n], t)
    t = t.replace(features={k: v.astype(np.float16) for k, v in t.features.items()})
    parts.append(t)
    if progress:
      progress(min(i + chunk, len(photos)), len(photos))
  return HostTargets(jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *parts))


def _step_batch(seed: int, step: int, n: int, batch: int):
  """The photos and random keys of one step: a function of (seed, step) only, so resuming is exact."""
  key = jax.random.fold_in(jax.random.key(seed), step)
  k_idx, k_run = jax.random.split(key)
  idx = np.asarray(jax.random.choice(k_idx, n, (batch,), replace=n < batch))
  keys = jax.random.key_data(jax.random.split(k_run, batch))
  return idx, keys


def stage_of(stages: Sequence[dict], step: int):
  """(index, stage) of the global step (stages: dicts with ``steps``)."""
  end = 0
  for i, st in enumerate(stages):
    end += int(st["steps"])
    if step < end:
      return i, st
  return len(stages) - 1, stages[-1]


def train(scene: Scene, data: HostTargets, stages: Sequence[dict], *, workdir: str, batch_size: int, lr: float,
          seed: int = 0, net_options: Optional[dict] = None, checkpoint_every: int = 100, log_every: int = 10,
          max_steps: Optional[int] = None, log: Callable[[str], None] = print, progress=None) -> RegressorNet:
  """Trains (or resumes) a regressor; ``stages``: [{'name', 'steps', 'weights': LossWeights, 'lr_scale'}] in
  order.

  Every ``checkpoint_every`` steps (and at the end, or at ``max_steps``, a stop for tests) the weights,
  optimiser state and step are saved under ``workdir/ckpt``; losses go to ``workdir/log.jsonl``.
  Returns the network.
  """
  from ganfit_jax.texture.gan_train import checkpoint_manager, restore_checkpoint, save_checkpoint
  os.makedirs(workdir, exist_ok=True)
  net = init(scene, jax.random.key(seed), **(net_options or {}))
  # one optimiser (and state) per stage, as a fit restarts Adam per stage; stage lr = lr * lr_scale
  optimizers = [make_optimizer(lr * float(st.get("lr_scale", 1.0))) for st in stages]
  state = dict(params=net.params, opt=optimizers[0].init(net.params), step=np.asarray(0, np.int64))
  mngr = checkpoint_manager(workdir)
  restored = restore_checkpoint(mngr, state)
  if restored is not None:
    state = restored
    log(f"resumed from step {int(state['step'])}")
  total = sum(int(s["steps"]) for s in stages)
  stop = total if max_steps is None else min(total, int(max_steps))
  params_, opt_state, step = state["params"], state["opt"], int(state["step"])
  current = stage_of(stages, step)[0] if step < total else None
  t0 = time.perf_counter()
  with open(os.path.join(workdir, "log.jsonl"), "a") as logf:
    while step < stop:
      k, st = stage_of(stages, step)
      if k != current:  # a new stage: a fresh Adam state
        opt_state = optimizers[k].init(params_)
        current = k
      weights = st["weights"]
      idx, keys = _step_batch(seed, step, data.size, batch_size)
      params_, opt_state, aux = train_step(params_, opt_state, scene, data.batch(idx), weights, keys,
                                           module=net.module, images=weights.uses_images(), optimizer=optimizers[k])
      step += 1
      if step % log_every == 0 or step == stop:
        a = {k2: float(v) for k2, v in jax.device_get(aux).items()}
        rec = dict(step=step, stage=st["name"], seconds=round(time.perf_counter() - t0, 2), **a)
        logf.write(json.dumps(rec) + "\n")
        logf.flush()
        if progress:
          progress(step, total, rec)
      if step % checkpoint_every == 0 or step == stop:
        save_checkpoint(mngr, dict(params=params_, opt=opt_state, step=np.asarray(step, np.int64)))
  return RegressorNet(params=params_, module=net.module)


# ----------------------------------------------------------------------------- files


def save(path: str, net: RegressorNet, meta: Optional[dict] = None, dtype=np.float16) -> None:
  """The network as a small .npz (weights in ``dtype``, the module's options in ``__meta__``)."""
  from flax import traverse_util
  flat = traverse_util.flatten_dict(jax.device_get(net.params), sep="/")
  m = net.module
  info = dict(sizes=[list(x) for x in m.sizes], widths=list(m.widths), blocks=m.blocks, hidden=m.hidden,
              feature_width=m.feature_width, **(meta or {}))
  with atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.savez_compressed(f, __meta__=np.array(json.dumps(info)),
                        **{f"params/{k}": np.asarray(v, dtype) for k, v in flat.items()})


def load(path: str) -> tuple:
  """(RegressorNet, meta) from :func:`save`'s file; a missing or unreadable file is an AssetError."""
  import zipfile
  from flax import traverse_util
  from ganfit_jax import assets
  if not os.path.exists(path):
    raise assets.AssetError(f"regressor weights {path} not found (make them with tools/train_regressor.py)")
  try:
    with np.load(path) as z:
      meta = json.loads(str(z["__meta__"]))
      flat = {k[len("params/"):]: np.asarray(z[k], np.float32) for k in z.files if k.startswith("params/")}
  except (zipfile.BadZipFile, EOFError, KeyError, ValueError, OSError) as e:
    raise assets.AssetError(f"regressor weights {path} are unreadable ({e}); retrain or re-fetch them") from e
  module = Regressor(sizes=tuple((str(g), int(n)) for g, n in meta["sizes"]), widths=tuple(meta["widths"]),
                     blocks=int(meta["blocks"]),
                     hidden=int(meta["hidden"]), feature_width=int(meta["feature_width"]))
  net = RegressorNet(params=traverse_util.unflatten_dict(flat, sep="/"), module=module)
  return jax.device_put(net, jax.local_devices()[0]), meta  # committed once (see compiled.call)


__all__ = ["RegressorNet", "init", "predict", "predict_variables", "regress", "batch_loss", "train_step", "train",
           "prepare_photos", "HostTargets", "save", "load", "group_sizes", "make_module", "make_optimizer", "MODES",
           "ModeChoice", "resolve_mode", "load_for", "short_schedule", "check_expression_floor", "start",
           "fast_ganfit"]
