"""Detects faces and 68 landmarks on every LFW photo into a resumable cache (JSON lines).

  python tools/detect_lfw.py --out=work/lfw_faces.jsonl

Used by tools/build_uv_dataset.py and the identity/fitting benchmarks; rerunning
skips photos already in the file. On the 2-core CPU it takes about 15 minutes.
"""

import os
import sys
import time

from absl import app, flags

from ganfit_jax.data import lfw

FLAGS = flags.FLAGS
flags.DEFINE_string("lfw_dir", None, "LFW folder (default ../shared/assets/lfw or $GANFIT_LFW_DIR).")
flags.DEFINE_string("out", "work/lfw_faces.jsonl", "Cache file (JSON lines, appended).")
flags.DEFINE_integer("limit", 0, "Only the first N photos (0 = all).")


def main(argv):
  del argv
  try:
    root = lfw.root(FLAGS.lfw_dir)
  except FileNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  files = lfw.all_images(root)
  if FLAGS.limit:
    files = files[:FLAGS.limit]
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  t0 = time.time()

  def progress(i, n):
    if i % 200 == 0 or i == n:
      el = time.time() - t0
      print(f"  {i}/{n} photos, {el:.0f} s, ~{el / i * (n - i):.0f} s left", flush=True)

  faces = lfw.detect_cache(root, files, FLAGS.out, progress)
  n1 = sum(len(v) == 1 for v in faces.values())
  n0 = sum(len(v) == 0 for v in faces.values())
  print(f"{len(faces)} photos: one face {n1}, none {n0}, several {len(faces) - n1 - n0}; {time.time() - t0:.0f} s")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
