"""Does de-shading make UV maps of the same person more alike?

  python benchmarks/uv_deshade.py --people=40

Takes --people DevTrain people with at least two photos (first two photos each),
builds their UV maps with and without ``deshade`` (configs/uv_dataset.py otherwise),
and reports the mean absolute colour difference over texels observed in both maps,
for same-person pairs and for different-person pairs (each person's first photo
against the next person's), plus their ratio (lower = identity more consistent).
"""

import sys
import time

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from ganfit_jax import morphable
from ganfit_jax.data import lfw, uv_dataset

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/uv_dataset.py", "Dataset config.")
flags.DEFINE_integer("people", 40, "DevTrain people with >= 2 photos to use.")
flags.DEFINE_string("lfw_dir", None, "LFW folder.")
flags.DEFINE_string("faces_cache", "work/lfw_faces.jsonl", "Landmark cache (tools/detect_lfw.py).")


def maps_for(items, cfg, model, root):
  arrays = uv_dataset.build_shard(uv_dataset.Builder(model, cfg), root, items)
  return {f: (t.astype(np.float32) / 255.0, s == 3) for f, t, s in
          zip(arrays["files"], arrays["texture"], arrays["status"])}


def pair_distance(a, b):
  (ta, va), (tb, vb) = a, b
  both = va & vb
  return float(np.abs(ta - tb)[both].mean()) if both.sum() > 100 else np.nan


def main(argv):
  del argv
  root = lfw.root(FLAGS.lfw_dir)
  model = morphable.load(FLAGS.config.model)
  people = [(n, c) for n, c in lfw.read_people(f"{root}/peopleDevTrain.txt") if c >= 2][:FLAGS.people]
  rels = [f"{n}/{n}_{i:04d}.jpg" for n, _ in people for i in (1, 2)]
  faces = lfw.detect_cache(root, rels, FLAGS.faces_cache)
  items = [it for it in uv_dataset.plan(root, faces)["train"] if it["file"] in set(rels)]
  rows = []
  for deshade in (False, True):
    cfg = FLAGS.config.copy_and_resolve_references()
    cfg.deshade = deshade
    t0 = time.time()
    maps = maps_for(items, cfg, model, root)
    same, diff = [], []
    for (n, _), (m, _) in zip(people, people[1:] + people[:1]):
      a, b, c = f"{n}/{n}_0001.jpg", f"{n}/{n}_0002.jpg", f"{m}/{m}_0001.jpg"
      if a in maps and b in maps:
        same.append(pair_distance(maps[a], maps[b]))
      if a in maps and c in maps:
        diff.append(pair_distance(maps[a], maps[c]))
    s, d = np.nanmean(same), np.nanmean(diff)
    rows.append((deshade, len(maps), s, d, s / d, time.time() - t0))
  print(f"\n## De-shading and same-person consistency ({len(people)} DevTrain people, 2 photos each)\n")
  print("| deshade | maps | same-person L1 | different-person L1 | ratio | seconds |\n|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]:.4f} | {r[3]:.4f} | {r[4]:.3f} | {r[5]:.0f} |")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
