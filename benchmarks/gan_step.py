"""GAN training speed: images per second of one WGAN-GP step (critic + generator + EMA) at every level.

  python benchmarks/gan_step.py                                   # configs/train_gan.py (CPU sizes)
  python benchmarks/gan_step.py --config=configs/train_gan_gpu.py # the GPU config

Random uint8 batches (the step's input type under tools/train_gan.py --in_memory);
"median (minimum)" milliseconds per step over --reps steps after one compile.
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from ganfit_jax.nets import progan
from ganfit_jax.texture import gan_train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", os.path.join(os.path.dirname(__file__), "..", "configs", "train_gan.py"),
                                "Training config.")
flags.DEFINE_integer("reps", 20, "Timed steps per level.")
flags.DEFINE_float("budget_minutes", 0.0, "Also print the factor by which the config's images per phase must be "
                   "scaled for the whole schedule to take this long here (the last line, alone).")


def main(argv):
  del argv
  cfg = FLAGS.config
  res = progan.resolutions(cfg.max_resolution)
  state = gan_train.init_state(cfg, jax.random.PRNGKey(0))
  n_g = sum(x.size for x in jax.tree_util.tree_leaves(state["g"]))
  n_d = sum(x.size for x in jax.tree_util.tree_leaves(state["d"]))
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), batch {cfg.batch_size}, "
        f"G {n_g / 1e6:.2f} M params, D {n_d / 1e6:.2f} M params")
  rng = np.random.default_rng(0)
  batch = rng.integers(0, 256, (cfg.batch_size, cfg.max_resolution, cfg.max_resolution, 3), dtype=np.uint8)
  per = gan_train.images_per_level(cfg.images_per_phase, len(res))
  print("| level | px | ms/step median (min) | images/s (median) | schedule images | schedule minutes |")
  print("|---|---|---|---|---|---|")
  total_s = 0.0
  for level, r in enumerate(res):
    step = gan_train.make_train_step(cfg, level)
    mask = jnp.ones((r, r, 1))
    state, aux = step(state, jnp.asarray(batch), mask, jnp.float32(0.5), jnp.float32(0.99))
    jax.block_until_ready(aux)
    times = []
    for _ in range(FLAGS.reps):
      t = time.perf_counter()
      state, aux = step(state, jnp.asarray(batch), mask, jnp.float32(0.5), jnp.float32(0.99))
      jax.block_until_ready(aux)
      times.append(1e3 * (time.perf_counter() - t))
    med = float(np.median(times))
    images = per[0] if level == 0 else 2 * per[level]
    if level == len(res) - 1 and cfg.total_images:
      images = max(images, cfg.total_images - gan_train.total_images(len(res), per) + images)
    secs = images / cfg.batch_size * med / 1e3
    total_s += secs
    print(f"| {level} | {r} | {med:.2f} ({min(times):.2f}) | {cfg.batch_size / med * 1e3:,.0f} | {images:,} | "
          f"{secs / 60:.1f} |", flush=True)
  print(f"whole schedule: {total_s / 60:.1f} min of steps (compiles, samples and checkpoints not counted)")
  if FLAGS.budget_minutes:
    print(f"{FLAGS.budget_minutes * 60 / total_s:.3f}")


if __name__ == "__main__":
  app.run(main)
