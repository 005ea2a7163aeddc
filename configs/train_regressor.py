"""Training the Fast-GANFit regressor (tools/train_regressor.py): ``--config=configs/train_regressor.py:cpu``
(default), ``:gpu`` or ``:tiny`` (tests).

The loss weights of the two stages are the fit's (configs/fit.py:<fit_preset>, stages ``align`` and
``full``): the regressor descends the very loss a fit descends. Photos: LFW DevTrain people only.

cpu:  what 2 CPU cores train in about half an hour: 1,000 photos, 2,000 landmark steps and 100 full-loss steps
      at batch 8 (a full-loss step costs several times a landmark step: WORKSPACE.md, "Fast-GANFit").
gpu:  every DevTrain photo, a wider network, 20,000 + 5,000 steps at batch 32.
tiny: a few photos and steps, a narrow network: for tests.
"""

import ml_collections


def get_config(preset: str = "cpu"):
  if preset not in ("cpu", "gpu", "tiny"):
    raise ValueError(f"unknown preset {preset!r}: use 'cpu', 'gpu' or 'tiny'")
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.fit_preset = "fast"       # configs/fit.py preset whose scene and stage weights are used
  c.num_photos = 1000         # DevTrain photos (a seeded sample over people); 0 = all
  c.batch_size = 8
  c.lr = 1e-3                 # Adam; each stage multiplies it by its lr_scale
  c.seed = 0
  c.checkpoint_every = 100
  c.log_every = 10
  c.net = ml_collections.ConfigDict(dict(widths=(16, 32, 64, 128), blocks=1, hidden=256, feature_width=32))
  c.stages = ml_collections.ConfigDict(dict(
      align=ml_collections.ConfigDict(dict(steps=2000, lr_scale=1.0)),
      full=ml_collections.ConfigDict(dict(steps=100, lr_scale=0.1))))
  if preset == "gpu":
    c.num_photos = 0
    c.batch_size = 32
    c.net.widths = (32, 64, 128, 256)
    c.net.blocks = 2
    c.net.hidden = 512
    c.stages.align.steps = 20000
    c.stages.full.steps = 5000
  elif preset == "tiny":
    c.num_photos = 6
    c.batch_size = 2
    c.checkpoint_every = 3
    c.log_every = 1
    c.net = ml_collections.ConfigDict(dict(widths=(8, 8, 8, 8), blocks=1, hidden=16, feature_width=4))
    c.stages.align.steps = 6
    c.stages.full.steps = 2
  return c
