"""A tiny GAN config for tests: 16x16, few channels, a few hundred images per phase."""

import importlib.util
import os


def get_config():
  spec = importlib.util.spec_from_file_location("train_gan_base", os.path.join(os.path.dirname(__file__),
                                                                               "train_gan.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config()
  c.max_resolution = 16
  c.latent_dim = 32
  c.channels = [32, 16, 8]
  c.batch_size = 8
  c.images_per_phase = [160, 160, 160]
  c.ema_decay = 0.9
  c.log_every = 2
  c.sample_every = 50
  c.checkpoint_every = 50
  return c
