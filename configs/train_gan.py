"""Config of tools/train_gan.py: the default 128x128 UV texture GAN, sized for a 2-core CPU.

  python tools/train_gan.py --data=work/uv128 --workdir=work/gan128
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.max_resolution = 128
  c.latent_dim = 512
  c.channels = [128, 128, 64, 32, 16, 8]   # per resolution 4 .. 128 (a CPU budget)
  c.batch_size = 16
  # images in each fade-in and each stable phase, per level (4 .. 128 px)
  c.images_per_phase = [6000, 6000, 6000, 6000, 5000, 4000]
  c.total_images = 0            # 0: the schedule above (11 phases); larger: more stable training at 128
  c.learning_rate = 1e-3
  c.adam_b1 = 0.0
  c.adam_b2 = 0.99
  c.gp_weight = 10.0
  c.drift_weight = 1e-3
  c.ema_decay = 0.999
  c.seed = 0
  c.log_every = 20
  c.sample_every = 500
  c.checkpoint_every = 500
  return c
