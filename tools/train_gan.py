"""Trains the progressive UV-texture GAN on a UV dataset (train split only) and exports the generator.

  python tools/train_gan.py --data=work/uv128 --workdir=work/gan128          # train (resumes if interrupted)
  python tools/train_gan.py --data=work/uv128 --workdir=work/gan128 --max_minutes=45
  python tools/train_gan.py --workdir=work/gan128 --export=weights/texture_gan_128.npz --data=work/uv128
  python tools/train_gan.py --data=work/uv128_webp90 --config=configs/train_gan_gpu.py --workdir=work/gan128_gpu

--data takes a UV dataset or a packed copy of it (tools/pack_uv_dataset.py).

The work dir gets losses.jsonl, samples/step_*.png (EMA generator on fixed
latents), ckpt/ (orbax; rerunning resumes from the latest). --export writes the
EMA generator (float16) for ganfit_jax.texture.models.
"""

import os
import sys

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from ganfit_jax.data import uv_dataset
from ganfit_jax.texture import gan_train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", os.path.join(os.path.dirname(__file__), "..", "configs", "train_gan.py"),
                                "Training config.")
flags.DEFINE_string("data", "work/uv128", "UV dataset folder (tools/build_uv_dataset.py); only train-*.npz is read.")
flags.DEFINE_string("workdir", "work/gan128", "Checkpoints, samples and losses.")
flags.DEFINE_float("max_minutes", 0.0, "Stop (with a checkpoint) after this many minutes; 0 = no limit.")
flags.DEFINE_string("export", None, "Write the generator of the latest checkpoint here and exit.")
flags.DEFINE_bool("in_memory", True, "Hold the whole train split in memory as uint8 (466 MB for work/uv128) "
                  "instead of streaming shards; batches then go to the device as uint8.")
flags.DEFINE_enum("export_weights", "ema", ["ema", "raw"], "Which generator weights --export writes.")


def chart_from_data(data_dir: str, resolution: int) -> np.ndarray:
  import cv2
  chart = uv_dataset.chart(data_dir, "train")
  if chart.shape[0] != resolution:
    chart = cv2.resize(chart.astype(np.uint8), (resolution, resolution), interpolation=cv2.INTER_NEAREST) > 0
  return chart


def main(argv):
  del argv
  cfg = FLAGS.config
  try:
    chart = chart_from_data(FLAGS.data, cfg.max_resolution)
  except FileNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if FLAGS.export:
    import jax
    state = gan_train.init_state(cfg, jax.random.PRNGKey(cfg.seed))
    restored = gan_train.restore_checkpoint(gan_train.checkpoint_manager(FLAGS.workdir), state)
    if restored is None:
      print(f"error: no checkpoint in {FLAGS.workdir}/ckpt", file=sys.stderr)
      return 2
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.export)), exist_ok=True)
    gan_train.export_generator(FLAGS.export, cfg, restored["ema" if FLAGS.export_weights == "ema" else "g"], chart,
                               extra=dict(steps=int(restored["step"]), images=int(restored["images"]),
                                          weights=FLAGS.export_weights,
                                          data=os.path.basename(os.path.normpath(FLAGS.data))))
    from ganfit_jax import assets
    if os.path.abspath(FLAGS.export).startswith(assets.WEIGHTS_DIR):
      assets.record_weights(FLAGS.export)
    print(f"wrote {FLAGS.export} ({os.path.getsize(FLAGS.export) / 2**20:.1f} MiB), "
          f"step {int(restored['step'])}, {int(restored['images'])} images")
    return 0
  if FLAGS.in_memory:
    print(f"reading the train split of {FLAGS.data} into memory ...", flush=True)
    batches = uv_dataset.memory_stream(uv_dataset.textures(FLAGS.data, "train"), cfg.batch_size, seed=cfg.seed)
  else:
    batches = uv_dataset.stream(FLAGS.data, "train", cfg.batch_size, seed=cfg.seed)
  first = next(batches)
  if first["texture"].shape[1] != cfg.max_resolution:
    print(f"error: data maps are {first['texture'].shape[1]}px but config.max_resolution is "
          f"{cfg.max_resolution}", file=sys.stderr)
    return 2
  gan_train.train(cfg, batches, chart, FLAGS.workdir, max_seconds=60.0 * FLAGS.max_minutes)
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
