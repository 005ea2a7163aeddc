"""Trains the Fast-GANFit regressor self-supervised through the fitting loss (ganfit_jax.regressor).

  python tools/train_regressor.py --workdir=work/regressor                          # CPU config
  python tools/train_regressor.py --workdir=work/regressor --export=ganfit_jax/weights/regressor_cpu.npz
  python tools/train_regressor.py --workdir=work/reg_gpu --config=configs/train_regressor.py:gpu

Photos: LFW DevTrain people only, with the 68 landmarks of the cache of tools/detect_lfw.py (--faces;
photos missing from it are detected and appended). Resumable: rerunning the same command continues from
the last checkpoint in --workdir (bit-exactly). --export writes the network as a small .npz (float16) and,
for files in ganfit_jax/weights/, records its sha256 in SHA256SUMS.
Exit codes: 0 ok, 2 bad flags or data, 3 missing asset.
"""

import os
import sys

from absl import app, flags
from ml_collections import config_flags

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", os.path.join(ROOT, "configs", "train_regressor.py"), "Training config.")
flags.DEFINE_string("workdir", None, "Checkpoints and log.jsonl.")
flags.DEFINE_string("export", None, "Write the trained network here (.npz).")
flags.DEFINE_string("faces", os.path.join(ROOT, "work", "lfw_faces.jsonl"), "Landmark cache (tools/detect_lfw.py).")
flags.DEFINE_string("lfw_dir", None, "LFW root (default: ../shared/assets/lfw or $GANFIT_LFW_DIR).")
flags.DEFINE_integer("max_steps", None, "Stop after this global step (a later run resumes).")


def devtrain_photos(lfw_root, faces_path, num, seed):
  """(paths, landmarks) of ``num`` DevTrain photos with a detected subject (0: all), a seeded sample."""
  import numpy as np
  from ganfit_jax.data import lfw
  split = lfw.split_of(lfw_root)
  rel = [p for p in lfw.all_images(lfw_root) if split.get(p.split("/")[0]) == "train"]
  rng = np.random.default_rng(seed)
  order = rng.permutation(len(rel))
  chosen = [rel[i] for i in order]
  want = len(chosen) if num <= 0 else num
  paths, lms, start = [], [], 0
  while len(paths) < want and start < len(chosen):  # detect only what is needed (the cache is resumable)
    block = chosen[start:start + max(64, want - len(paths))]
    start += len(block)
    faces = lfw.detect_cache(lfw_root, block, faces_path)
    for p in block:
      fs = faces[p]
      k = lfw.subject_face(fs, fs[0]["shape"]) if fs else None
      if k is not None and len(paths) < want:
        paths.append(os.path.join(lfw_root, "images_deepfunneled", p))
        lms.append(np.asarray(fs[k]["landmarks"], np.float32))
  return paths, lms


def main(argv):
  del argv
  from absl import logging
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  from ganfit_jax import runtime
  runtime.configure()
  cfg = FLAGS.config
  if not FLAGS.workdir:
    print("error: give --workdir (checkpoints and the log go there)", file=sys.stderr)
    return 2
  if cfg.batch_size < 1 or any(int(s.steps) < 0 for s in cfg.stages.values()):
    print("error: --config: batch_size must be >= 1 and stage steps >= 0", file=sys.stderr)
    return 2
  from tqdm import tqdm
  from ganfit_jax.configs.fit import get_config as fit_config
  from ganfit_jax import assets, objective, regressor
  from ganfit_jax import scene as scene_lib
  from ganfit_jax.data import lfw
  fc = fit_config(cfg.fit_preset)
  try:
    lfw_root = lfw.root(FLAGS.lfw_dir)
    sc = scene_lib.load(fc.model, fc.texture_model, fc.identity_net, landmarks=str(fc.landmarks),
                        canvas_size=fc.canvas_size, texture_size=fc.texture_size)
  except FileNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except assets.AssetError as e:
    print(f"error: {e}", file=sys.stderr)
    return 3
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.faces)), exist_ok=True)
  paths, lms = devtrain_photos(lfw_root, FLAGS.faces, int(cfg.num_photos), int(cfg.seed))
  if not paths:
    print("error: no DevTrain photo with a detected face", file=sys.stderr)
    return 2
  bar = tqdm(total=len(paths), desc="targets", unit="photo")
  data = regressor.prepare_photos(sc, paths, lms, jaw_weight=float(fc.jaw_weight),
                                  progress=lambda i, n: bar.update(i - bar.n))
  bar.close()
  stages = [dict(name=name, steps=int(cfg.stages[name].steps), lr_scale=float(cfg.stages[name].lr_scale),
                 weights=objective.LossWeights.create(**dict(fc.stages[name].weights)))
            for name in ("align", "full")]
  total = sum(s["steps"] for s in stages)
  bar = tqdm(total=total, desc="train", unit="step")

  def progress(step, n, rec):
    bar.update(step - bar.n)
    bar.set_postfix_str(f"{rec['stage']} loss {rec['loss']:.3f} lm {rec['landmark_rmse_px']:.1f}px")

  net = regressor.train(sc, data, stages, workdir=FLAGS.workdir, batch_size=int(cfg.batch_size), lr=float(cfg.lr),
                        seed=int(cfg.seed), net_options=dict(cfg.net), checkpoint_every=int(cfg.checkpoint_every),
                        log_every=int(cfg.log_every), max_steps=FLAGS.max_steps, log=bar.write, progress=progress)
  bar.close()
  if FLAGS.export:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.export)) or ".", exist_ok=True)
    regressor.save(FLAGS.export, net, meta=dict(
        config=cfg.preset, fit_preset=cfg.fit_preset, photos=len(paths), steps={s["name"]: s["steps"] for s in stages},
        batch_size=int(cfg.batch_size), canvas_size=int(fc.canvas_size), model=fc.model,
        texture_model=fc.texture_model, identity_net=fc.identity_net))
    if os.path.dirname(os.path.abspath(FLAGS.export)) == os.path.abspath(assets.WEIGHTS_DIR):
      assets.record_weights(FLAGS.export)
    print(f"wrote {FLAGS.export} ({os.path.getsize(FLAGS.export) / 2**20:.2f} MiB)")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
