"""A grid PNG of random textures from a texture model (the shipped GAN by default, or PCA).

  python tools/texture_samples.py --model=gan --out=docs/images/gan_samples.png
  python tools/texture_samples.py --model=pca --out=docs/images/pca_samples.png

Latents ~ N(0, I) (seed --seed); texels outside the UV chart are blacked out as in fitting.
"""

import os
import sys

import jax
import numpy as np
from absl import app, flags

from ganfit_jax.texture import models

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "gan", "'gan', 'pca' or an exported .npz.")
flags.DEFINE_integer("n", 32, "Samples.")
flags.DEFINE_integer("seed", 0, "Latent seed.")
flags.DEFINE_string("out", "docs/images/gan_samples.png", "Output PNG.")


def main(argv):
  del argv
  from ganfit_jax.texture import gan_train
  tm = models.load(FLAGS.model)
  z = tm.sample_latent(jax.random.PRNGKey(FLAGS.seed), (FLAGS.n,))
  tex = np.asarray(jax.jit(tm.decode)(z)) * tm.chart[None, ..., None]
  sheet = gan_train.sample_grid(tex, cols=8, size=tm.resolution)
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  from ganfit_jax.outputs import images
  images.write_png(FLAGS.out, sheet)
  print(f"wrote {FLAGS.out}: {FLAGS.n} samples of {tm.kind} ({tm.latent_dim}-d latent, {tm.resolution}px)")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
