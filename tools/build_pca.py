"""Builds the PCA texture baseline from the UV dataset's training maps.

  python tools/build_pca.py --data=work/uv128 --components=100 --out=ganfit_jax/weights/texture_pca_128.npz

Stored as float16 (mean, basis) + float32 std; decode(latent) = mean + (latent * std) @ basis.
"""

import os
import sys
import time

from absl import app, flags

from ganfit_jax.data import uv_dataset
from ganfit_jax.texture import pca

FLAGS = flags.FLAGS
flags.DEFINE_string("data", "work/uv128", "UV dataset folder (train split is used).")
flags.DEFINE_integer("components", 100, "Principal components kept.")
flags.DEFINE_integer("max_samples", 4000, "Maps used (random subset of the train split).")
flags.DEFINE_string("out", "ganfit_jax/weights/texture_pca_128.npz", "Output .npz.")


def main(argv):
  del argv
  t0 = time.time()
  try:
    data = uv_dataset.load_split(FLAGS.data, "train")
  except FileNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  model = pca.fit(data["texture"], FLAGS.components, FLAGS.max_samples)
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  pca.save(FLAGS.out, model, extra=dict(maps=int(min(len(data["files"]), FLAGS.max_samples)),
                                        data=os.path.basename(os.path.normpath(FLAGS.data))))
  from ganfit_jax import assets
  if os.path.abspath(FLAGS.out).startswith(assets.WEIGHTS_DIR):
    assets.record_weights(FLAGS.out)
  var = float((model.std ** 2).sum())
  print(f"wrote {FLAGS.out} ({os.path.getsize(FLAGS.out) / 2**20:.1f} MiB): {model.latent_dim} components, "
        f"variance kept {var:.2f}, {time.time() - t0:.0f} s")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
