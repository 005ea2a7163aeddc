"""A contact sheet PNG of random UV maps from a built UV dataset (or of any .npz of textures).

  python tools/uv_contact_sheet.py --data=work/uv128 --split=train --out=docs/images/uv_contact_sheet.png

--show=status tints texels by origin (observed as is, mirrored blue-ish, inpainted red-ish).
"""

import os
import sys

import numpy as np
from absl import app, flags

from ganfit_jax.data import uv_dataset

FLAGS = flags.FLAGS
flags.DEFINE_string("data", "work/uv128", "Dataset folder (tools/build_uv_dataset.py).")
flags.DEFINE_enum("split", "train", list(uv_dataset.SPLITS), "Which split.")
flags.DEFINE_integer("n", 64, "Maps on the sheet (a square grid).")
flags.DEFINE_integer("seed", 0, "Which maps (random choice).")
flags.DEFINE_enum("show", "texture", ["texture", "status"], "Plain maps, or tinted by texel origin.")
flags.DEFINE_string("out", "docs/images/uv_contact_sheet.png", "Output PNG.")


def grid(images: np.ndarray, cols: int) -> np.ndarray:
  n, h, w, c = images.shape
  rows = -(-n // cols)
  out = np.full((rows * (h + 2) + 2, cols * (w + 2) + 2, c), 255, np.uint8)
  for i, im in enumerate(images):
    r, k = divmod(i, cols)
    out[2 + r * (h + 2):2 + r * (h + 2) + h, 2 + k * (w + 2):2 + k * (w + 2) + w] = im
  return out


def tint(tex: np.ndarray, status: np.ndarray) -> np.ndarray:
  t = tex.astype(np.float32)
  t[status == 2] = 0.6 * t[status == 2] + 0.4 * np.array([60, 90, 255])
  t[status == 1] = 0.6 * t[status == 1] + 0.4 * np.array([255, 60, 60])
  return np.clip(t, 0, 255).astype(np.uint8)


def main(argv):
  del argv
  try:
    data = uv_dataset.load_split(FLAGS.data, FLAGS.split)
  except FileNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  rng = np.random.default_rng(FLAGS.seed)
  idx = rng.choice(len(data["files"]), size=min(FLAGS.n, len(data["files"])), replace=False)
  tex = data["texture"][idx]
  if FLAGS.show == "status":
    tex = np.stack([tint(t, s) for t, s in zip(tex, data["status"][idx])])
  sheet = grid(tex, int(np.ceil(np.sqrt(len(idx)))))
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  from ganfit_jax.outputs import images
  images.write_png(FLAGS.out, sheet)
  print(f"wrote {FLAGS.out} ({len(idx)} maps of {len(data['files'])} in {FLAGS.data} {FLAGS.split})")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
