"""Training the progressive UV-texture GAN: WGAN-GP + drift, optax Adam, EMA generator, orbax checkpoints.

Real images are the completed UV maps of the UV dataset (observed, mirrored and
inpainted texels alike: the generator must produce complete textures for
fitting) scaled to [-1, 1]. Texels outside the UV chart are set to 0 in real
and generated images before the critic sees them, so no capacity is spent on
them. At lower levels real maps are average-pooled to the level's resolution
and, during a fade-in, blended with their up-sampled half-resolution version
exactly as the generator's output is (ProGAN).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Dict, Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganfit_jax.nets import progan
from ganfit_jax.files import atomic_path
from ganfit_jax.face import image_io


@dataclasses.dataclass(frozen=True)
class Phase:
  level: int
  alpha: float
  resolution: int


def images_per_level(images_per_phase, num_levels):
  """Images in one fade-in (and in one stable phase) of each level; ``images_per_phase``: one number or a list."""
  if isinstance(images_per_phase, int):
    return [images_per_phase] * num_levels
  out = [int(v) for v in images_per_phase]
  if len(out) != num_levels:
    raise ValueError(f"images_per_phase needs one entry per level ({num_levels}), got {out}")
  return out


def schedule(images_seen: int, num_levels: int, images_per_phase) -> Phase:
  """Level and fade alpha after ``images_seen`` real images.

  Level 0 trains (stable) for ``n_0`` images; each later level l fades in over
  ``n_l`` images, then trains stable for ``n_l``; the last level then continues
  stable. ``images_per_phase``: one number for every level, or one per level.
  """
  per = images_per_level(images_per_phase, num_levels)
  res = [2 ** (k + 2) for k in range(num_levels)]
  t = images_seen
  if t < per[0]:
    return Phase(0, 1.0, res[0])
  t -= per[0]
  for level in range(1, num_levels):
    if t < per[level]:
      return Phase(level, float(t / per[level]), res[level])
    t -= per[level]
    if t < per[level]:
      return Phase(level, 1.0, res[level])
    t -= per[level]
  return Phase(num_levels - 1, 1.0, res[-1])


def total_images(num_levels: int, images_per_phase, final_stable: int = 0) -> int:
  per = images_per_level(images_per_phase, num_levels)
  return per[0] + 2 * sum(per[1:]) + final_stable


def channels_dict(cfg) -> Dict[int, int]:
  res = progan.resolutions(cfg.max_resolution)
  if len(cfg.channels) != len(res):
    raise ValueError(f"channels needs one entry per resolution {res}, got {list(cfg.channels)}")
  return {r: int(c) for r, c in zip(res, cfg.channels)}


def make_nets(cfg):
  ch = channels_dict(cfg)
  return (progan.Generator(cfg.max_resolution, cfg.latent_dim, ch),
          progan.Discriminator(cfg.max_resolution, ch))


_INITS: Dict[str, Callable] = {}


def _compiled_init(module):
  """``module.init`` compiled once per network configuration (a new ``jax.jit`` per call would trace again); keyed
  by the module's description (its fields hold dicts: not hashable)."""
  key = repr(module)
  if key not in _INITS:
    _INITS[key] = jax.jit(module.init)
  return _INITS[key]


def make_optimizers(cfg):
  adam = lambda: optax.adam(cfg.learning_rate, b1=cfg.adam_b1, b2=cfg.adam_b2, eps=1e-8)  # noqa: E731
  return adam(), adam()


def init_state(cfg, key) -> Dict[str, Any]:
  gen, disc = make_nets(cfg)
  kg, kd, key = jax.random.split(key, 3)
  r = cfg.max_resolution
  g_params = _compiled_init(gen)(kg, jnp.zeros((1, cfg.latent_dim)))["params"]
  d_params = _compiled_init(disc)(kd, jnp.zeros((2, r, r, 3)))["params"]
  g_opt, d_opt = make_optimizers(cfg)
  return dict(g=g_params, d=d_params, g_opt=g_opt.init(g_params), d_opt=d_opt.init(d_params),
              ema=jax.tree_util.tree_map(jnp.array, g_params), step=jnp.zeros((), jnp.int32),
              images=jnp.zeros((), jnp.int32), key=key)


def resize_real(x, level_res: int, alpha):
  """Average-pools (B, R, R, 3) reals to the level's resolution, with the fade-in blend."""
  while x.shape[1] > level_res:
    x = progan.downsample(x)
  if level_res > 4:
    low = progan.upsample(progan.downsample(x))
    x = low + alpha * (x - low)
  return x


def chart_mask(status_or_mask: np.ndarray, level_res: int) -> jnp.ndarray:
  """(R, R, 1) float mask of the UV chart at a level's resolution (a texel is in if most of it is)."""
  m = jnp.asarray(status_or_mask, jnp.float32)[None, ..., None]
  while m.shape[1] > level_res:
    m = progan.downsample(m)
  return (m[0] > 0.5).astype(jnp.float32)


def make_train_step(cfg, level: int):
  """The jitted step for one level (compiled once per level; ``alpha`` and ``ema_decay`` are traced)."""
  gen, disc = make_nets(cfg)
  g_opt, d_opt = make_optimizers(cfg)

  def step(state, real01, mask, alpha, ema_decay):
    key, kz1, kz2, kgp = jax.random.split(state["key"], 4)
    b = real01.shape[0]
    if real01.dtype == jnp.uint8:  # uint8 batches are scaled here (a quarter of the bytes to copy)
      real01 = real01.astype(jnp.float32) / 255.0
    real = resize_real(real01 * 2.0 - 1.0, progan.resolutions(cfg.max_resolution)[level], alpha) * mask[None]

    def fake_images(g_params, kz):
      z = jax.random.normal(kz, (b, cfg.latent_dim))
      return gen.apply({"params": g_params}, z, level, alpha) * mask[None]

    def d_loss_fn(d_params):
      critic = lambda x: disc.apply({"params": d_params}, x, level, alpha)  # noqa: E731
      fake = jax.lax.stop_gradient(fake_images(state["g"], kz1))
      d_real, d_fake = critic(real), critic(fake)
      gp = progan.gradient_penalty(critic, real, fake, kgp)
      wdist = jnp.mean(d_real) - jnp.mean(d_fake)
      loss = -wdist + cfg.gp_weight * gp + cfg.drift_weight * jnp.mean(jnp.square(d_real))
      return loss, dict(d_loss=loss, wdist=wdist, gp=gp)

    (_, d_aux), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state["d"])
    d_upd, d_opt_state = d_opt.update(d_grads, state["d_opt"], state["d"])
    d_params = optax.apply_updates(state["d"], d_upd)

    def g_loss_fn(g_params):
      return -jnp.mean(disc.apply({"params": d_params}, fake_images(g_params, kz2), level, alpha))

    g_loss, g_grads = jax.value_and_grad(g_loss_fn)(state["g"])
    g_upd, g_opt_state = g_opt.update(g_grads, state["g_opt"], state["g"])
    g_params = optax.apply_updates(state["g"], g_upd)
    ema = jax.tree_util.tree_map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, state["ema"], g_params)
    new = dict(g=g_params, d=d_params, g_opt=g_opt_state, d_opt=d_opt_state, ema=ema, step=state["step"] + 1,
               images=state["images"] + b, key=key)
    return new, dict(d_aux, g_loss=g_loss)

  return jax.jit(step, donate_argnums=(0,))


def generate(cfg, g_params, z, level: int = -1, alpha=1.0):
  gen, _ = make_nets(cfg)
  return gen.apply({"params": g_params}, z, level, alpha)


# --------------------------------------------------------------------------- #
# Checkpoints and export.

def checkpoint_manager(workdir: str, keep: int = 2):
  import orbax.checkpoint as ocp
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "ckpt")),
                               options=ocp.CheckpointManagerOptions(max_to_keep=keep))


def save_checkpoint(mngr, state) -> None:
  import orbax.checkpoint as ocp
  mngr.save(int(state["step"]), args=ocp.args.StandardSave(state))
  mngr.wait_until_finished()


def restore_checkpoint(mngr, like):
  """The latest checkpoint (None if none), restored into the structure of ``like``."""
  import orbax.checkpoint as ocp
  step = mngr.latest_step()
  if step is None:
    return None
  abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
  return mngr.restore(step, args=ocp.args.StandardRestore(abstract))


def export_generator(path: str, cfg, g_params, chart: np.ndarray, dtype=np.float16, extra: Optional[dict] = None):
  """Writes the (EMA) generator as a small .npz: float16 weights + config + UV chart mask."""
  from flax import traverse_util
  flat = traverse_util.flatten_dict(jax.device_get(g_params), sep="/")
  meta = dict(max_resolution=int(cfg.max_resolution), latent_dim=int(cfg.latent_dim),
              channels=[int(c) for c in cfg.channels], output_range=[-1.0, 1.0], **(extra or {}))
  with atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.savez_compressed(f, __meta__=np.array(json.dumps(meta)), __chart__=np.asarray(chart, bool),
                        **{f"params/{k}": np.asarray(v, dtype) for k, v in flat.items()})


# --------------------------------------------------------------------------- #
# The loop.

def sample_grid(images01: np.ndarray, cols: int = 8, size: int = 128) -> np.ndarray:
  import cv2
  ims = [cv2.resize(np.asarray(im), (size, size), interpolation=cv2.INTER_NEAREST) for im in images01]
  n = len(ims)
  rows = -(-n // cols)
  out = np.ones((rows * size, cols * size, 3), np.float32)
  for i, im in enumerate(ims):
    r, c = divmod(i, cols)
    out[r * size:(r + 1) * size, c * size:(c + 1) * size] = im
  return image_io.to_uint8(out)


def train(cfg, batches: Iterator[Dict[str, np.ndarray]], chart: np.ndarray, workdir: str,
          log: Callable[[str], None] = print, max_seconds: float = 0.0) -> Dict[str, Any]:
  """Runs (or resumes) training until ``cfg.total_images`` images or ``max_seconds``.

  Writes ``workdir/losses.jsonl``, ``workdir/samples/*.png`` (EMA generator on
  fixed latents), ``workdir/ckpt`` (orbax) and returns the final state.
  """
  import cv2
  os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
  num_levels = len(progan.resolutions(cfg.max_resolution))
  total = cfg.total_images or total_images(num_levels, cfg.images_per_phase)
  state = init_state(cfg, jax.random.PRNGKey(cfg.seed))
  mngr = checkpoint_manager(workdir)
  restored = restore_checkpoint(mngr, state)
  if restored is not None:
    state = restored
    log(f"resumed from step {int(state['step'])} ({int(state['images'])} images)")
  steps: Dict[int, Callable] = {}
  fixed_z = jax.random.normal(jax.random.PRNGKey(1234), (16, cfg.latent_dim))
  t0 = time.time()
  try:
    from tqdm import tqdm
    bar = tqdm(total=total, initial=int(state["images"]), unit="img", desc="gan", mininterval=5)
  except ImportError:
    bar = None
  losses_f = open(os.path.join(workdir, "losses.jsonl"), "a")
  # Counters live on the host (equal to state["step"], state["images"]) so the loop never waits for the
  # device except to log, sample and checkpoint: steps are dispatched ahead while the host prepares batches.
  step_n, images_n = int(state["step"]), int(state["images"])
  phase = schedule(images_n, num_levels, cfg.images_per_phase)
  level_start = step_n  # EMA warm-up restarts at every new level (and on resume)
  while images_n < total:
    if max_seconds and time.time() - t0 > max_seconds:
      log(f"stopping at the time limit ({max_seconds:.0f} s)")
      break
    phase = schedule(images_n, num_levels, cfg.images_per_phase)
    if phase.level not in steps:
      steps[phase.level] = make_train_step(cfg, phase.level)
      mask_l = chart_mask(chart, phase.resolution)
      level_start = step_n
    batch = next(batches)
    k = step_n - level_start
    decay = min(cfg.ema_decay, (1.0 + k) / (10.0 + k))  # warm-up: new blocks must not average in their init
    state, aux = steps[phase.level](state, jnp.asarray(batch["texture"]), mask_l, jnp.float32(phase.alpha),
                                    jnp.float32(decay))
    step_n += 1
    images_n += batch["texture"].shape[0]
    s = step_n
    if bar is not None:
      bar.update(batch["texture"].shape[0])
    if s % cfg.log_every == 0:
      rec = dict(step=s, images=images_n, level=phase.level, alpha=round(phase.alpha, 4),
                 seconds=round(time.time() - t0, 1), **{k: float(v) for k, v in aux.items()})
      losses_f.write(json.dumps(rec) + "\n")
      losses_f.flush()
      if bar is not None:
        bar.set_postfix(res=phase.resolution, a=f"{phase.alpha:.2f}", w=f"{rec['wdist']:.2f}")
    if s % cfg.sample_every == 0:
      imgs = progan.to_unit(generate(cfg, state["ema"], fixed_z, phase.level, phase.alpha))
      cv2.imwrite(os.path.join(workdir, "samples", f"step_{s:07d}.png"), sample_grid(np.asarray(imgs))[..., ::-1])
    if s % cfg.checkpoint_every == 0:
      save_checkpoint(mngr, state)
  save_checkpoint(mngr, state)
  losses_f.close()
  if bar is not None:
    bar.close()
  imgs = progan.to_unit(generate(cfg, state["ema"], fixed_z, phase.level, phase.alpha))
  cv2.imwrite(os.path.join(workdir, "samples", "final.png"), sample_grid(np.asarray(imgs))[..., ::-1])
  return state
