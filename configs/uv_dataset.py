"""Config of tools/build_uv_dataset.py (LFW -> UV texture shards).

  python tools/build_uv_dataset.py --config=configs/uv_dataset.py --config.resolution=256
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.model = "ict"             # morphable-model asset
  c.resolution = 128          # UV map size (128 default; 256 possible)
  c.canvas_size = 224         # fitting canvas (ganfit_jax.face.crop_to_canvas)
  c.shard_size = 512          # maps per shard file
  c.batch_size = 32           # photos fitted and unwrapped together (vmap)
  c.fit_steps = 200           # landmark fit (one align stage of fitting.fit)
  c.fit_learning_rate = 0.05
  c.shape_reg = 0.05
  c.expression_reg = 0.01
  c.normal_threshold = 0.25   # min cos(normal, view) for a texel to count as seen
  c.depth_tolerance = 5.0     # mm behind the z-buffer surface still counted visible
  c.deshade = False           # divide out a fitted ambient + point-light shading
  c.max_fit_error = 0.08      # landmark RMSE / outer-eye-corner distance
  c.max_yaw = 40.0            # degrees
  c.min_visible = 0.25        # fraction of the UV chart that must be observed
  c.limit = 0                 # only the first N photos of each split (0 = all; for quick runs)
  return c
