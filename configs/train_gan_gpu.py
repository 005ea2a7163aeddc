"""Config of tools/train_gan.py for one GPU (the shipped 128x128 generator): wider nets, batch 64.

  python tools/pack_uv_dataset.py --data=work/uv128 --out=work/uv128_webp90     # 40 MiB, to carry to the GPU
  python tools/train_gan.py --data=work/uv128_webp90 --config=configs/train_gan_gpu.py:0.5 --workdir=work/gan128_gpu

Generator ~5.6 M parameters (11 MiB in float16). The optional argument after
the colon scales every phase's image count (default 1.0: 2.5 M images);
``python benchmarks/gan_step.py --config=configs/train_gan_gpu.py --budget_minutes=15``
prints the scale whose schedule fits a time budget on the machine at hand.
"""

import importlib.util
import os


def get_config(scale=None):
  spec = importlib.util.spec_from_file_location("train_gan_base", os.path.join(os.path.dirname(__file__),
                                                                               "train_gan.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config()
  c.channels = [256, 256, 256, 128, 64, 32]   # per resolution 4 .. 128
  c.batch_size = 64
  f = float(scale) if scale else 1.0
  if f <= 0:
    raise ValueError(f"the schedule scale after ':' must be positive, got {scale!r}")
  c.images_per_phase = [int(round(f * n / c.batch_size)) * c.batch_size
                        for n in (100_000, 150_000, 200_000, 250_000, 300_000, 300_000)]
  c.total_images = 0
  c.log_every = 100
  c.sample_every = 2000
  c.checkpoint_every = 2000
  return c
