"""Fitting: a stage schedule run by compiled K-step chunks, over photos and random texture starts.

One fit, for B photos and N random texture initialisations each:

1. variables (B, N, ...) start from :func:`ganfit_jax.params.init` (N random
   texture latents, or a given start such as the regressor's prediction);
2. for each :class:`Stage` of the :class:`Schedule` (the paper's two: landmarks
   + regularisers, then every term), an optax optimiser is built from the
   stage's active parameter groups and per-group learning rates
   (``optax.multi_transform``, ``optax.zero_nans`` in front);
3. the stage's steps run in chunks of K (:func:`chunk`: one ``lax.scan`` of K
   steps, or on CPUs K asynchronous calls of one compiled step; one
   compilation per stage structure and batch shape, reused by every photo and
   call; one host sync per chunk, for progress): each step differentiates
   :func:`ganfit_jax.objective.loss_fn` (``vmap`` over inits and photos), with
   its random id-hat key ``fold_in(key, step)``, applies the update and, for
   several photos of one person (``shared_identity``), replaces shape and
   texture latent by their mean over the photos (paper Eq. 14);
4. per photo the init with the lowest final loss wins (the lowest sum over the
   photos when they share an identity).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from ganfit_jax import compiled, objective
from ganfit_jax import params as params_lib
from ganfit_jax.scene import Scene
from ganfit_jax.types import FaceParams


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stage of a fit.

  Attributes:
    name: for logs ('align', 'full').
    steps: Adam steps (0 skips the stage).
    weights: ((term, weight), ...) of :class:`ganfit_jax.objective.LossWeights`; unnamed terms are 0.
    groups: the parameter groups that move (``ganfit_jax.params.GROUPS``); the others stay fixed.
    lr_scale: multiplies every group's learning rate.
    solver: 'adam' (first-order steps at the groups' learning rates) or 'newton': damped Newton steps
      (Levenberg-Marquardt style, :func:`newton_step`) on the exact loss of the active groups, for stages
      without image terms (the landmark stage: a few hundred parameters, a loss of point projections);
      ``steps`` then counts Newton iterations.
    extra_weights: ((name, weight), ...) of terms of your own (:func:`fit`'s ``extra_terms``).
    direction_groups: groups whose Adam step keeps the gradient's direction within the group
      (:func:`scale_by_adam_direction`: one second-moment estimate for the group's whole vector of a photo
      instead of one per coefficient), so coefficients the loss barely sees move less than those it sees
      well, instead of as much.
  """

  name: str
  steps: int
  weights: Tuple[Tuple[str, float], ...]
  groups: Tuple[str, ...]
  lr_scale: float = 1.0
  solver: str = "adam"
  extra_weights: Tuple[Tuple[str, float], ...] = ()
  direction_groups: Tuple[str, ...] = ()

  def __post_init__(self):
    if int(self.steps) != self.steps or self.steps < 0:
      raise ValueError(f"stage {self.name!r}: steps must be an integer >= 0, got {self.steps}")
    bad = [g for g in self.groups + tuple(self.direction_groups) if g not in params_lib.GROUPS]
    if bad:
      raise ValueError(f"stage {self.name!r}: unknown parameter group(s) {bad}; groups are {params_lib.GROUPS}")
    if not np.isfinite(self.lr_scale) or self.lr_scale <= 0:
      raise ValueError(f"stage {self.name!r}: lr_scale must be a finite number > 0, got {self.lr_scale}")
    weights = self.loss_weights()  # validates names and values
    if self.solver not in SOLVERS:
      raise ValueError(f"stage {self.name!r}: solver must be one of {SOLVERS}, got {self.solver!r}")
    if self.solver == "newton" and weights.uses_images():
      raise ValueError(f"stage {self.name!r}: the newton solver is for stages without image terms (identity, "
                       "identity_hat, content, pixel weights 0); use solver 'adam'")
    if self.solver == "newton" and "texture" in self.groups:
      raise ValueError(f"stage {self.name!r}: the newton solver does not move the texture latent (no image terms "
                       "see it): leave 'texture' out of its groups")

  def loss_weights(self) -> objective.LossWeights:
    return objective.LossWeights.create(extra=dict(self.extra_weights), **dict(self.weights))


@dataclasses.dataclass(frozen=True)
class Schedule:
  """Stages, per-group learning rates and the fit's other knobs (``configs/fit.py`` has the presets).

  Attributes:
    stages: the stages, in order.
    learning_rates: ((group, Adam learning rate), ...) for every group of ``params.GROUPS``.
    chunk: steps per compiled chunk (K); a stage runs in chunks of the largest divisor of
      its step count that is <= K.
    num_inits: random texture initialisations per photo, fitted in parallel (vmap).
    init_latent_std: texture latents start at N(0, std^2).
    zero_first_init: init 0 starts at latent 0 (PCA: the mean texture; never for the GAN,
      whose pixel-normed input makes latent 0 a flat, degenerate texture).
  """

  stages: Tuple[Stage, ...]
  learning_rates: Tuple[Tuple[str, float], ...]
  chunk: int = 10
  num_inits: int = 1
  init_latent_std: float = 1.0
  zero_first_init: bool = False

  def __post_init__(self):
    lrs = dict(self.learning_rates)
    missing = [g for g in params_lib.GROUPS if g not in lrs]
    unknown = [g for g in lrs if g not in params_lib.GROUPS]
    if missing or unknown:
      raise ValueError(f"learning_rates must name every group {params_lib.GROUPS}; missing {missing}, "
                       f"unknown {unknown}")
    for g, lr in lrs.items():
      if not np.isfinite(lr) or lr < 0:
        raise ValueError(f"learning rate of {g!r} must be a finite number >= 0, got {lr}")
    if int(self.chunk) != self.chunk or self.chunk < 1:
      raise ValueError(f"chunk must be an integer >= 1, got {self.chunk}")
    if int(self.num_inits) != self.num_inits or self.num_inits < 1:
      raise ValueError(f"num_inits must be an integer >= 1, got {self.num_inits}")
    if not np.isfinite(self.init_latent_std) or self.init_latent_std < 0:
      raise ValueError(f"init_latent_std must be a finite number >= 0, got {self.init_latent_std}")

  @property
  def total_steps(self) -> int:
    return sum(s.steps for s in self.stages)


def schedule_from_config(cfg, zero_first_init: bool = False) -> Schedule:
  """The :class:`Schedule` of a ``configs/fit.py`` config (sections ``stages``, ``lr``)."""
  stages = []
  for name in cfg.stage_order:
    st = cfg.stages[name]
    stages.append(Stage(name=name, steps=int(st.steps), weights=tuple(sorted(dict(st.weights).items())),
                        groups=tuple(st.groups), lr_scale=float(st.lr_scale), solver=str(st.solver),
                        direction_groups=tuple(st.get("direction_groups", ()))))
  return Schedule(stages=tuple(stages), learning_rates=tuple(sorted(dict(cfg.lr).items())),
                  chunk=int(cfg.chunk), num_inits=int(cfg.num_inits), init_latent_std=float(cfg.init_latent_std),
                  zero_first_init=zero_first_init)


def scale_by_adam_direction(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
  """Adam's moments with ONE second moment per leaf: the mean of the squared gradient over the leaf (one
  photo's whole group under ``vmap``). The step is the bias-corrected first moment over that scalar's root,
  so it points along the (averaged) gradient; Adam's per-coefficient scaling would move a coefficient with a
  tiny but steady gradient as far as one with a large gradient. (optax's ``scale_by_adam`` has no option for
  a shared second moment.)"""
  if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0 and eps > 0.0):
    raise ValueError(f"scale_by_adam_direction needs 0 <= b1 < 1, 0 <= b2 < 1 and eps > 0; got b1={b1}, b2={b2}, "
                     f"eps={eps}")

  def init(params):
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    scalars = jax.tree_util.tree_map(lambda x: jnp.zeros((), x.dtype), params)
    return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=scalars)

  def update(updates, state, params=None):
    del params
    count = optax.safe_int32_increment(state.count)
    mu = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree_util.tree_map(lambda n, g: b2 * n + (1 - b2) * jnp.mean(jnp.square(g)), state.nu, updates)
    c1, c2 = 1 - b1 ** count.astype(jnp.float32), 1 - b2 ** count.astype(jnp.float32)
    out = jax.tree_util.tree_map(lambda m, n: (m / c1) / (jnp.sqrt(n / c2) + eps), mu, nu)
    return out, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init, update)


def make_optimizer(learning_rates: Tuple[Tuple[str, float], ...], groups: Sequence[str],
                   lr_scale: float = 1.0, direction_groups: Sequence[str] = ()) -> optax.GradientTransformation:
  """Adam per group at ``lr * lr_scale`` for the active groups (:func:`scale_by_adam_direction` for those in
  ``direction_groups``), no update for the others; NaN gradients are zeroed first (``optax.zero_nans``)."""
  def adam(g, lr):
    if g in direction_groups:
      return optax.chain(scale_by_adam_direction(), optax.scale(-lr * lr_scale))
    return optax.adam(lr * lr_scale)
  txs = {g: adam(g, lr) if (g in groups and lr > 0) else optax.set_to_zero() for g, lr in learning_rates}
  return optax.chain(optax.zero_nans(), optax.multi_transform(txs, params_lib.labels()))


@dataclasses.dataclass(frozen=True)
class ChunkSpec:
  """The static structure of a compiled chunk (hashable)."""
  length: int
  learning_rates: Tuple[Tuple[str, float], ...]
  groups: Tuple[str, ...]
  lr_scale: float
  images: bool
  shared_identity: bool
  solver: str = "adam"
  direction_groups: Tuple[str, ...] = ()
  # ((name, fn), ...) user terms; out of repr (the disk cache's key has the functions' code through the
  # fingerprint of the program that holds this spec, not their addresses)
  extra_terms: Tuple[Tuple[str, Callable], ...] = dataclasses.field(default=(), repr=False)

  def optimizer(self) -> optax.GradientTransformation:
    return make_optimizer(self.learning_rates, self.groups, self.lr_scale, self.direction_groups)


SOLVERS = ("adam", "newton")
NEWTON_DAMPING = 1e-2  # the first Newton iteration's damping (lambda of newton_step)


def newton_step(loss, x, lam):
  """One damped Newton iteration on ``loss`` (a scalar function of a flat vector ``x``): the step solves
  ``(H + lam D) dx = -g`` with H the exact Hessian, g the gradient and D = diag(max(|H_ii|, 1e-2))
  (Marquardt's scaling); it is taken when the loss falls (then lam / 3), else refused (lam x 4), as
  Levenberg-Marquardt does. Returns (x, lam, accepted). Non-finite steps are refused. (A cap on the step
  length made fits worse: WORKSPACE.md, "Geometry".)"""
  f0, g = jax.value_and_grad(loss)(x)
  h = jax.hessian(loss)(x)
  d = jnp.maximum(jnp.abs(jnp.diagonal(h)), 1e-2)
  dx = jnp.linalg.solve(h + lam * jnp.diag(d), -g)
  dx = jnp.where(jnp.all(jnp.isfinite(dx)), dx, 0.0)
  f1 = loss(x + dx)
  ok = jnp.isfinite(f1) & (f1 < f0)
  return jnp.where(ok, x + dx, x), jnp.clip(jnp.where(ok, lam / 3.0, lam * 4.0), 1e-6, 1e8), ok


def _flat(fn, n: int):
  """Applies ``fn`` to a flat batch of ``n`` examples: a plain call when n == 1 (vmap of one example
  still costs its batching rules at trace time: each level of vmap lengthens tracing the full chunk;
  WORKSPACE.md, "Measured: fitting")."""
  if n == 1:
    def one(*args):
      out = fn(*jax.tree_util.tree_map(lambda x: x[0], args))
      return jax.tree_util.tree_map(lambda x: x[None], out)
    return one
  return jax.vmap(fn)


def _step(spec: ChunkSpec, variables, opt_state, scene, targets, weights, keys, step):
  """One optimiser step of (B, N) fits (keys: (B, N, ...) raw key data); returns (variables, opt_state, aux),
  each (B, N, ...)."""
  tx = spec.optimizer()
  b, n = keys.shape[:2]

  def one(v, s, target, key_data):
    key = jax.random.fold_in(jax.random.wrap_key_data(key_data), step)
    if spec.solver == "newton":  # s: the damping lambda
      moving = {g: getattr(v, g) for g in params_lib.GROUPS if g in spec.groups}
      x, unravel = jax.flatten_util.ravel_pytree(moving)
      loss = lambda x: objective.loss_fn(v.replace(**unravel(x)), scene, target, weights, key,  # noqa: E731
                                         images=False, extra_terms=spec.extra_terms)[0]
      x, s, _ = newton_step(loss, x, s)
      v = v.replace(**unravel(x))
      _, aux = objective.loss_fn(v, scene, target, weights, key, images=False, extra_terms=spec.extra_terms)
      return v, s, aux
    grad_fn = jax.value_and_grad(objective.loss_fn, has_aux=True)
    (_, aux), g = grad_fn(v, scene, target, weights, key, images=spec.images, extra_terms=spec.extra_terms)
    upd, s = tx.update(g, s, v)
    return optax.apply_updates(v, upd), s, aux

  # photos x inits as one flat batch: targets repeated per init
  flat = lambda x: x.reshape((b * n,) + x.shape[2:])  # noqa: E731
  rep = jax.tree_util.tree_map(lambda x: jnp.repeat(x, n, axis=0), targets)
  args = jax.tree_util.tree_map(flat, (variables, opt_state)) + (rep, flat(keys))
  v, s, aux = _flat(one, b * n)(*args)
  v, s, aux = jax.tree_util.tree_map(lambda x: x.reshape((b, n) + x.shape[1:]), (v, s, aux))
  if spec.shared_identity:  # paper Eq. 14: shape and texture averaged over the photos after every step
    mean = lambda x: jnp.broadcast_to(jnp.mean(x, axis=0, keepdims=True), x.shape)  # noqa: E731
    v = v.replace(shape=mean(v.shape), texture=mean(v.texture))
  return v, s, aux


def run_chunk(variables, opt_state, scene: Scene, targets: objective.Target, weights: objective.LossWeights,
              keys, start, *, spec: ChunkSpec, donate: bool = False, mesh=None):
  """``spec.length`` steps (from step index ``start``) in one ``lax.scan``; aux per step (K, B, N).

  ``keys``: (B, N) raw PRNG key data (``jax.random.key_data``). ``donate``: the buffers of ``variables``
  and ``opt_state`` are reused for the outputs (do not use them afterwards). ``mesh``: SPMD over these
  devices (:func:`ganfit_jax.compiled.call`; the photo axis already sharded by :func:`fit`).
  """

  def scan(variables, opt_state, scene, targets, weights, keys, start):
    def body(carry, i):
      v, s = carry
      v, s, aux = _step(spec, v, s, scene, targets, weights, keys, i)
      return (v, s), aux

    (v, s), aux = jax.lax.scan(body, (variables, opt_state), start + jnp.arange(spec.length))
    return v, s, aux

  v, s, aux = compiled.call(scan, variables, opt_state, scene, targets, weights, keys, np.int32(start),
                            name="fit_chunk", static=spec, donate=2 if donate else 0, mesh=mesh)
  return _on_photos(v, mesh), _on_photos(s, mesh), aux


def _on_photos(tree, mesh):
  """``tree``'s (B, ...) leaves sharded over ``mesh``'s photo axis (no-op without a mesh, or where they are).
  XLA may return a leaf replicated (the shared identity's mean, an optimiser state built from zeros): the next
  call would see another placement and compile the same program again, once per stage."""
  if mesh is None or mesh.size <= 1:
    return tree
  photos = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names[0]))
  return jax.tree_util.tree_map(lambda x: x if x.sharding == photos else jax.device_put(x, photos), tree)


def run_step(variables, opt_state, scene: Scene, targets: objective.Target, weights: objective.LossWeights,
             keys, step, *, spec: ChunkSpec, donate: bool = False, mesh=None):
  """One step (the ``dispatch`` loop's unit); aux (B, N). ``donate``, ``mesh``: as :func:`run_chunk`."""
  spec = dataclasses.replace(spec, length=1)  # one program for every chunk length of the same stage structure
  v, s, aux = compiled.call(lambda *a: _step(spec, *a), variables, opt_state, scene, targets, weights, keys,
                            np.int32(step), name="fit_step", static=spec, donate=2 if donate else 0, mesh=mesh)
  return _on_photos(v, mesh), _on_photos(s, mesh), aux


def chunk(variables, opt_state, scene, targets, weights, keys, start: int, spec: ChunkSpec, loop: str,
          donate: bool = False, mesh=None):
  """K steps from ``start``; aux (K, B, N), still on the device (``donate``: as :func:`run_chunk`).

  ``loop='scan'``: one compiled ``lax.scan`` of K steps (:func:`run_chunk`).
  ``loop='dispatch'``: K asynchronous calls of the compiled single step (:func:`run_step`), aux stacked
  on the device: the same one host sync per chunk. XLA's CPU backend runs the texture GAN's
  convolutions about twice as slowly inside a while loop (WORKSPACE.md, "Objective and fitting"), so CPUs
  use this loop.
  """
  if loop == "scan":
    return run_chunk(variables, opt_state, scene, targets, weights, keys, start, spec=spec, donate=donate, mesh=mesh)
  if loop != "dispatch":
    raise ValueError(f"loop must be 'scan' or 'dispatch', got {loop!r}")
  auxes = []
  for i in range(spec.length):
    variables, opt_state, aux = run_step(variables, opt_state, scene, targets, weights, keys, start + i, spec=spec,
                                         donate=donate, mesh=mesh)
    auxes.append(aux)
  return variables, opt_state, jax.tree_util.tree_map(lambda *a: jnp.stack(a), *auxes)


def default_loop() -> str:
  """'dispatch' on CPU (see :func:`chunk`), 'scan' elsewhere (stages with image terms)."""
  return "dispatch" if jax.default_backend() == "cpu" else "scan"


def init_opt_state(variables, *, spec: ChunkSpec, mesh=None):
  """The optimiser state of (B, N) variables for a chunk of ``spec`` (one compiled call; ``mesh``: as
  :func:`run_chunk`)."""
  def run(variables):
    b, n = variables.shape.shape[:2]
    if spec.solver == "newton":
      return jnp.full((b, n), NEWTON_DAMPING, jnp.float32)
    flat = jax.tree_util.tree_map(lambda x: x.reshape((b * n,) + x.shape[2:]), variables)
    state = jax.vmap(spec.optimizer().init)(flat)
    return jax.tree_util.tree_map(lambda x: x.reshape((b, n) + x.shape[1:]), state)

  return _on_photos(compiled.call(run, variables, name="init_opt_state", static=spec, mesh=mesh), mesh)


def chunk_length(steps: int, chunk: int) -> int:
  """The largest divisor of ``steps`` that is <= ``chunk`` (so every chunk of a stage has one shape)."""
  return max(d for d in range(1, min(chunk, max(steps, 1)) + 1) if steps % d == 0)


@dataclasses.dataclass
class FitResult:
  """A fit of B photos (the best init of each).

  faces: FaceParams with a leading photo axis (B, ...); variables: the optimiser's
  Variables (B, ...); final: each aux term at the last step (B,); history: term ->
  (steps, B); init_losses: (B, N) final loss of every init; best_init: (B,);
  seconds: wall time of the fit; stages: (name, steps) per stage run.
  """
  faces: FaceParams
  variables: params_lib.Variables
  final: Dict[str, np.ndarray]
  history: Dict[str, np.ndarray]
  init_losses: np.ndarray
  best_init: np.ndarray
  seconds: float
  stages: Tuple[Tuple[str, int], ...]


def initial_variables(scene: Scene, batch: int, schedule: Schedule, key, init: Optional[params_lib.Variables] = None):
  """(B, N) starting variables: ``init`` (B, ...) when given (its latent for init 0, random latents for the
  others), else the mean face with N random texture latents."""
  n = schedule.num_inits
  latent_dim = scene.texture.latent_dim if scene.texture is not None else 1
  lat = jax.random.normal(key, (n, latent_dim)) * schedule.init_latent_std
  if schedule.zero_first_init:
    lat = lat.at[0].set(0.0)
  if init is None:
    base = params_lib.init(scene.model, jnp.zeros((latent_dim,)))
    v = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (batch, n) + x.shape), base)
    return v.replace(texture=jnp.broadcast_to(lat, (batch, n, latent_dim)))
  v = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(jnp.asarray(x)[:, None], (batch, n) + x.shape[1:]), init)
  return v.replace(texture=v.texture.at[:, 1:].set(jnp.broadcast_to(lat[1:], (batch, n - 1, latent_dim))))


def fit(scene: Scene, targets: objective.Target, schedule: Schedule, *, key, shared_identity: bool = False,
        init: Optional[params_lib.Variables] = None,
        progress: Optional[Callable[[int, int, dict], None]] = None, loop: Optional[str] = None,
        mesh: Optional[jax.sharding.Mesh] = None, photo_keys: Optional[Sequence[int]] = None,
        extra_terms: Optional[Dict[str, Callable]] = None) -> FitResult:
  """Fits B photos (``targets``: a :class:`~ganfit_jax.objective.Target` with a leading photo axis).

  Args:
    scene: model, texture model and identity network.
    targets: from :func:`ganfit_jax.objective.prepare_targets`.
    schedule: stages and learning rates.
    key: a PRNG key (``jax.random.key``) for texture starts and id-hat renders.
    shared_identity: the photos show one person; shape and texture are shared (Eq. 14).
    init: optional starting Variables (B, ...), e.g. the regressor's (GANfit++).
    progress: called as ``progress(done_steps, total_steps, means)`` after every chunk,
      ``means`` holding the mean of each aux term over photos plus ``stage``.
    loop: 'scan' or 'dispatch' (:func:`chunk`); default: 'scan' for landmark-only stages,
      :func:`default_loop` for stages with image terms.
    mesh: shard the photos over these devices (a 1-d ``jax.sharding.Mesh``; B must be a multiple of its
      size): targets, variables and optimiser state are split on the photo axis, the scene replicated,
      and every step runs SPMD (XLA inserts the cross-device mean of ``shared_identity``).
    photo_keys: one integer per photo (e.g. a hash of its path): its random id-hat renders come from
      ``fold_in(key, photo_key)``, so a photo fits the same whatever batch it is in (dataset jobs);
      default: from its position in the batch.
    extra_terms: {name: fn(face, variables, target) -> scalar}: terms of your own added to the objective
      (:func:`ganfit_jax.objective.loss_fn`), weighted by each stage's ``extra_weights`` (0 where a stage
      does not name them) and reported in the history under their names; part of the compiled programs'
      keys (their code), so a changed function compiles anew. Example, a symmetry prior on the shape::

        def symmetry(face, variables, target):
          v = morphable.vertices(model, face.shape)
          return jnp.mean(jnp.square(v[left] - v[right] * jnp.array([-1.0, 1.0, 1.0])))
        stage = Stage("align", 100, weights, groups, extra_weights=(("symmetry", 0.1),))
        fit(scene, targets, Schedule((stage,), lrs), key=key, extra_terms={"symmetry": symmetry})
  """
  t0 = time.perf_counter()
  extra = tuple(sorted((extra_terms or {}).items()))
  clash = sorted(set(n for n, _ in extra) & set(objective.TERMS))
  if clash:
    raise ValueError(f"extra_terms {clash} are built-in terms' names; name your terms otherwise")
  if not all(callable(f) for _, f in extra):
    raise ValueError("extra_terms must map names to functions fn(face, variables, target) -> scalar")
  for st in schedule.stages:
    missing = sorted(set(n for n, _ in st.extra_weights) - set(n for n, _ in extra))
    if missing:
      raise ValueError(f"stage {st.name!r} weighs extra term(s) {missing} that extra_terms does not define")
  b = int(targets.landmarks.shape[0])
  if photo_keys is not None and len(photo_keys) != b:
    raise ValueError(f"photo_keys has {len(photo_keys)} keys for {b} photos")
  # the starting variables (new buffers: the chunks donate them, and ``init`` belongs to the caller) and the
  # id-hat keys, in one compiled call
  variables, keys = _start(scene, init, key, photo_keys, b, schedule)
  if mesh is not None and mesh.size > 1:
    if b % mesh.size:
      raise ValueError(f"{b} photos cannot be split over {mesh.size} devices; pad the batch to a multiple")
    photos = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names[0]))
    variables, targets, keys = jax.device_put((variables, targets, keys), photos)
    scene = jax.device_put(scene, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
  if shared_identity and any(st.solver == "newton" and st.steps for st in schedule.stages):
    raise ValueError("the newton solver fits one photo at a time: with shared_identity (several photos of one "
                     "person) use solver 'adam' (per-photo Newton steps averaged over the photos diverge: "
                     "WORKSPACE.md, 'Geometry')")
  total, done, chunks, stages_run = schedule.total_steps, 0, [], []
  for stage in schedule.stages:
    if stage.steps == 0:
      continue
    weights = stage.loss_weights()
    spec = ChunkSpec(length=chunk_length(stage.steps, schedule.chunk), learning_rates=schedule.learning_rates,
                     groups=stage.groups, lr_scale=stage.lr_scale,
                     images=weights.uses_images(), shared_identity=shared_identity, solver=stage.solver,
                     direction_groups=stage.direction_groups, extra_terms=extra)
    opt_state = init_opt_state(variables, spec=spec, mesh=mesh)
    for start in range(0, stage.steps, spec.length):
      stage_loop = loop or (default_loop() if spec.images else "scan")
      variables, opt_state, aux = chunk(variables, opt_state, scene, targets, weights, keys, done, spec, stage_loop,
                                        donate=True, mesh=mesh)
      aux = jax.device_get(aux)  # the chunk's one host sync
      chunks.append(aux)
      done += spec.length
      if progress is not None:
        progress(done, total, dict({k: float(np.mean(v[-1])) for k, v in aux.items()}, stage=stage.name))
    stages_run.append((stage.name, stage.steps))
  if not chunks:  # nothing to run: report the start
    raise ValueError("the schedule has no steps; give at least one stage steps > 0")
  hist = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}  # (steps, B, N)
  final_losses = hist["loss"][-1]  # (B, N)
  if shared_identity:
    best = np.full((b,), int(np.argmin(final_losses.sum(0))))
  else:
    best = np.argmin(final_losses, axis=1)
  rows = np.arange(b)
  chosen, faces = _finish(variables, best.astype(np.int32), scene.model.expression_kind)
  history = {k: v[:, rows, best] for k, v in hist.items()}
  return FitResult(faces=faces, variables=chosen, final={k: v[-1] for k, v in history.items()}, history=history,
                   init_losses=final_losses, best_init=best, seconds=time.perf_counter() - t0,
                   stages=tuple(stages_run))


def _start(scene: Scene, init, key, photo_keys, b: int, schedule: Schedule):
  """(variables (B, N, ...), id-hat key data (B, N, ...)) of :func:`fit`, in one compiled call."""
  n = schedule.num_inits

  def run(scene, init, key_data, photo_keys):
    k_lat, k_run = jax.random.split(jax.random.wrap_key_data(key_data))
    variables = initial_variables(scene, b, schedule, k_lat, init)
    if photo_keys is None:
      keys = jax.random.key_data(jax.random.split(k_run, b * n)).reshape((b, n, -1))
    else:  # each photo's id-hat keys from its own key: its result does not depend on its batch neighbours
      keys = jax.vmap(lambda s: jax.random.key_data(jax.random.split(jax.random.fold_in(k_run, s), n)))(photo_keys)
    return variables, keys

  pk = None
  if photo_keys is not None:
    pk = [int(s) for s in photo_keys]
    if any(not 0 <= s < 2 ** 32 for s in pk):
      raise ValueError(f"photo_keys must be integers in [0, 2**32) (e.g. ganfit_jax.jobs.inputs.seed), got {pk}")
    pk = np.asarray(pk, np.uint32)
  return compiled.call(run, scene, init, jax.random.key_data(key), pk, name="fit_start",
                       static=(b, n, schedule.init_latent_std, schedule.zero_first_init))


def _finish(variables, best, expression_kind: str):
  """(chosen Variables (B, ...), their FaceParams): init ``best[i]`` of photo i, in one compiled call."""
  def run(variables, best):
    chosen = jax.tree_util.tree_map(lambda x: x[jnp.arange(x.shape[0]), best], variables)
    return chosen, jax.vmap(lambda v: params_lib.to_face(v, expression_kind))(chosen)

  return compiled.call(run, variables, best, name="fit_finish", static=expression_kind)


__all__ = ["Stage", "Schedule", "schedule_from_config", "make_optimizer", "ChunkSpec", "SOLVERS", "newton_step",
           "run_chunk", "run_step",
           "chunk", "default_loop", "init_opt_state", "chunk_length", "FitResult", "initial_variables", "fit"]
