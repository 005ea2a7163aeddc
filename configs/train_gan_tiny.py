"""A tiny GAN config for tests: 16x16, few channels, a few hundred images per phase."""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.max_resolution = 16
  c.latent_dim = 32
  c.channels = [32, 16, 8]
  c.batch_size = 8
  c.images_per_phase = 160
  c.total_images = 0
  c.learning_rate = 1e-3
  c.adam_b1 = 0.0
  c.adam_b2 = 0.99
  c.gp_weight = 10.0
  c.drift_weight = 1e-3
  c.ema_decay = 0.9
  c.seed = 0
  c.log_every = 2
  c.sample_every = 50
  c.checkpoint_every = 50
  return c
