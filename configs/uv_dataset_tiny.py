"""A tiny UV-dataset config for tests: 64x64 maps, few fit steps, small shards."""

import importlib.util
import os


def _base():
  spec = importlib.util.spec_from_file_location("uv_dataset_base", os.path.join(os.path.dirname(__file__),
                                                                                "uv_dataset.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config()


def get_config():
  c = _base()
  c.resolution = 64
  c.shard_size = 4
  c.batch_size = 4
  c.fit_steps = 60
  c.limit = 6
  return c
