"""Writes a small copy of one split of a UV dataset (WebP textures + the UV chart), to move it to another machine.

  python tools/pack_uv_dataset.py --data=work/uv128 --out=work/uv128_webp90               # train split, WebP q90
  python tools/pack_uv_dataset.py --data=work/uv128 --out=work/uv128_lossless --quality=101

The packed folder is read like the original by tools/train_gan.py and every
reader in ganfit_jax.data.uv_dataset (textures and chart only: no status or
confidence). The 9,479 train maps of work/uv128: 466 MB raw, 39 MB at quality
90 (mean absolute error about 2 of 255); lossless about 161 MB (estimated from 200 maps).
"""

import json
import os
import sys

from absl import app, flags

from ganfit_jax.data import uv_dataset

FLAGS = flags.FLAGS
flags.DEFINE_string("data", "work/uv128", "UV dataset folder written by tools/build_uv_dataset.py.")
flags.DEFINE_string("out", None, "Output folder for the packed shards.", required=True)
flags.DEFINE_enum("split", "train", list(uv_dataset.SPLITS), "Which split to pack.")
flags.DEFINE_integer("quality", 90, "WebP quality 1..100 (lossy) or 101 (lossless).")


def main(argv):
  del argv
  if os.path.abspath(FLAGS.out) == os.path.abspath(FLAGS.data):
    print("error: --out must differ from --data (packing replaces nothing in place)", file=sys.stderr)
    return 2
  try:
    info = uv_dataset.pack(FLAGS.data, FLAGS.out, FLAGS.split, FLAGS.quality)
  except (FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  with open(os.path.join(FLAGS.out, "packed.json"), "w") as f:
    json.dump(dict(info, source=os.path.abspath(FLAGS.data)), f, indent=1)
  print(f"{info['maps']} maps, {info['bytes'] / 2**20:.1f} MiB, mean abs error {info['mean_abs_error']:.2f}/255 "
        f"-> {FLAGS.out}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
