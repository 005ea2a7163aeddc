"""Fitting presets for tools/fit.py: ``--config=configs/fit.py:fast`` (default) or ``:paper``.

fast:  CPU-friendly: 100 landmark steps, 60 full steps, one texture initialisation.
paper: the paper's schedule shape: Adam 0.01, 300 + 1000 steps, 4 random texture
       initialisations run in parallel (vmap), the best final loss wins.
Loss weights default to the paper's (ganfit_jax.objective.LossWeights); override
any with e.g. --config.weights.content=20.
"""

import ml_collections


def get_config(preset: str = "fast"):
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.model = "ict"
  c.texture_model = "gan"          # 'gan' (shipped generator), 'pca' (baseline) or a path to an exported .npz
  c.identity_net = "sface"         # asset name or a converted .npz (tools/convert_arcface.py)
  c.canvas_size = 224
  c.seed = 0
  c.stage1_steps = 100
  c.stage2_steps = 60
  c.num_inits = 1
  c.init_latent_std = 1.0
  c.lr_shape = 0.02
  c.lr_expression = 0.05
  c.lr_texture = 0.01
  c.lr_camera = 0.01
  c.lr_light = 0.02
  c.stage1_lr_scale = 3.0
  c.batch_size = 4                 # photos fitted together with --input_dir
  c.weights = ml_collections.ConfigDict(dict(
      identity=2.0, identity_hat=2.0, content=50.0, pixel=1.0, landmark=0.001, align=0.1,
      reg_shape=0.05, reg_expression=0.01, reg_light=0.01))
  if preset == "paper":
    c.stage1_steps = 300
    c.stage2_steps = 1000
    c.num_inits = 4
  elif preset != "fast":
    raise ValueError(f"unknown preset {preset!r}: use 'fast' or 'paper'")
  return c
