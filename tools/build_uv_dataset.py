"""Builds the UV texture dataset from LFW: landmarks -> batched landmark fit -> unwrap -> completion.

  python tools/detect_lfw.py                                   # once (resumable landmark cache)
  python tools/build_uv_dataset.py --out=work/uv128            # all of LFW, 128x128 maps
  python tools/build_uv_dataset.py --out=work/uv256 --config.resolution=256
  python tools/build_uv_dataset.py --out=work/uv_tiny --config=configs/uv_dataset_tiny.py

Only peopleDevTrain people go into train-*.npz; peopleDevTest people into
heldout-*.npz (texture-model evaluation only). Resumable: finished shards are
skipped. See ganfit_jax/data/uv_dataset.py for the format and configs/uv_dataset.py
for every setting (fit steps, visibility thresholds, de-shading, quality filters).
"""

import os
import sys
import time

from absl import app, flags
from ml_collections import config_flags

from ganfit_jax import assets, morphable
from ganfit_jax.data import lfw, uv_dataset

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", os.path.join(os.path.dirname(__file__), "..", "configs", "uv_dataset.py"),
                                "Dataset config.")
flags.DEFINE_string("out", "work/uv128", "Output folder (shards, manifest.jsonl, summary.json).")
flags.DEFINE_string("lfw_dir", None, "LFW folder (default ../shared/assets/lfw or $GANFIT_LFW_DIR).")
flags.DEFINE_string("faces_cache", "work/lfw_faces.jsonl", "Landmark cache (tools/detect_lfw.py); "
                    "photos missing from it are detected and appended.")


def main(argv):
  del argv
  cfg = FLAGS.config
  try:
    root = lfw.root(FLAGS.lfw_dir)
    model = morphable.load(cfg.model)
  except (FileNotFoundError, assets.AssetError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2 if isinstance(e, FileNotFoundError) else 3
  files = lfw.all_images(root)
  if cfg.limit:  # only what the limited plan needs: the first photos of each split
    split_of = lfw.split_of(root)
    keep = []
    for s in uv_dataset.SPLITS:
      keep += [f for f in files if split_of.get(f.split("/")[0]) == s][:cfg.limit]
    files = sorted(keep)
  t0 = time.time()
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.faces_cache)), exist_ok=True)
  faces = lfw.detect_cache(root, files, FLAGS.faces_cache,
                           lambda i, n: print(f"  detected {i}/{n}", flush=True) if i % 500 == 0 else None)
  try:
    from tqdm import tqdm
    bar = tqdm(total=None, unit="shard", desc="uv shards")
  except ImportError:
    bar = None

  def progress(i, n):
    if bar is not None:
      bar.total = n
      bar.n = i
      bar.refresh()

  summary = uv_dataset.build(root, faces, FLAGS.out, model, cfg, log=lambda s: print(s, flush=True),
                             progress=progress)
  if bar is not None:
    bar.close()
  for split, s in summary["splits"].items():
    print(f"{split}: kept {s['kept']}/{s['photos']} photos of {s['people']} people; dropped {s['dropped']}")
  print(f"total {time.time() - t0:.0f} s; manifest: {os.path.join(FLAGS.out, 'manifest.jsonl')}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
