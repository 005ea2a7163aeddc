"""Progressive GAN: shapes, fade-in continuity, gradient penalty, tiny training, checkpoints."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_variables
from ganfit_jax.nets import progan
from ganfit_jax.texture import gan_train

CH = {4: 16, 8: 8, 16: 8, 32: 4}


@pytest.fixture(scope="module")
def nets():
  g = progan.Generator(32, 24, CH)
  d = progan.Discriminator(32, CH)
  gp = random_variables(g, (1, 24), 0)["params"]  # from the shapes: no forward pass to compile
  dp = random_variables(d, (2, 32, 32, 3), 1)["params"]
  return g, d, gp, dp


def test_every_block_and_head_exists_at_init(nets):
  _, _, gp, dp = nets
  for r in (4, 8, 16, 32):
    assert f"to_rgb_{r}" in gp and f"from_rgb_{r}" in dp
  for r in (8, 16, 32):
    assert f"block_{r}_conv0" in gp and f"block_{r}_conv0" in dp


def _compiled(nets):
  """The nets' apply functions compiled (the level static); eagerly they would run operation by operation."""
  g, d, gp, dp = nets
  return jax.jit(g.apply, static_argnums=2), jax.jit(d.apply, static_argnums=2)


def test_shapes_at_each_level(nets):
  g, d, gp, dp = nets
  g_apply, d_apply = _compiled(nets)
  z = jax.random.normal(jax.random.PRNGKey(2), (4, 24))
  for level, r in enumerate((4, 8, 16, 32)):
    x = g_apply({"params": gp}, z, level, 0.5)
    assert x.shape == (4, r, r, 3)
    assert d_apply({"params": dp}, x, level, 0.5).shape == (4,)
  with pytest.raises(ValueError, match="expects 16x16"):
    d.apply({"params": dp}, jnp.zeros((2, 8, 8, 3)), 2, 1.0)


def test_fade_in_alpha_zero_equals_lower_level_upsampled(nets):
  g, d, gp, dp = nets
  g_apply, d_apply = _compiled(nets)
  z = jax.random.normal(jax.random.PRNGKey(3), (4, 24))
  for level in (1, 2, 3):
    faded = g_apply({"params": gp}, z, level, 0.0)
    lower = progan.upsample(g_apply({"params": gp}, z, level - 1, 1.0))
    np.testing.assert_allclose(np.asarray(faded), np.asarray(lower), atol=1e-5)
    full = g_apply({"params": gp}, z, level, 1.0)
    assert not np.allclose(np.asarray(full), np.asarray(lower), atol=1e-3)
    x = jax.random.normal(jax.random.PRNGKey(level), (4, 4 * 2 ** level, 4 * 2 ** level, 3))
    np.testing.assert_allclose(np.asarray(d_apply({"params": dp}, x, level, 0.0)),
                               np.asarray(d_apply({"params": dp}, progan.downsample(x), level - 1, 1.0)),
                               atol=1e-4)


def test_alpha_is_traced_not_static(nets):
  g, _, gp, _ = nets
  f = jax.jit(lambda a: g.apply({"params": gp}, jnp.ones((1, 24)), 2, a))
  f(jnp.float32(0.1))
  f(jnp.float32(0.9))
  assert f._cache_size() == 1


def test_gradient_penalty_known_value():
  w = jnp.full((1, 2, 2, 3), 2.0 / np.sqrt(12.0))  # ||w|| = 2 for a linear critic
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))  # noqa: E731
  real = jax.random.normal(jax.random.PRNGKey(0), (5, 2, 2, 3))
  fake = jax.random.normal(jax.random.PRNGKey(1), (5, 2, 2, 3))
  gp = progan.gradient_penalty(critic, real, fake, jax.random.PRNGKey(2))
  np.testing.assert_allclose(float(gp), 1.0, rtol=1e-5)  # (||grad|| - 1)^2 = (2 - 1)^2


def test_schedule():
  assert gan_train.schedule(0, 3, 100) == gan_train.Phase(0, 1.0, 4)
  assert gan_train.schedule(150, 3, 100) == gan_train.Phase(1, 0.5, 8)
  assert gan_train.schedule(250, 3, 100) == gan_train.Phase(1, 1.0, 8)
  assert gan_train.schedule(10_000, 3, 100) == gan_train.Phase(2, 1.0, 16)
  assert gan_train.total_images(3, 100) == 500
  assert gan_train.schedule(130, 3, [100, 20, 40]) == gan_train.Phase(1, 1.0, 8)
  assert gan_train.schedule(150, 3, [100, 20, 40]) == gan_train.Phase(2, 0.25, 16)
  assert gan_train.total_images(3, [100, 20, 40]) == 220


def _tiny_cfg():
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      "tiny", os.path.join(os.path.dirname(__file__), "..", "configs", "train_gan_tiny.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config()


def _blob_batches(batch, res, seed=0):
  """Synthetic 'textures': a face-like bright ellipse with random colour on a dark chart."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:res, 0:res] / res
  while True:
    col = rng.uniform(0.3, 0.9, (batch, 1, 1, 3))
    cx = 0.5 + rng.normal(0, 0.03, (batch, 1, 1, 1))
    blob = (((xx[None, ..., None] - cx) / 0.3) ** 2 + ((yy[None, ..., None] - 0.5) / 0.4) ** 2) < 1
    yield dict(texture=(blob * col + (~blob) * 0.1).astype(np.float32))


def test_tiny_training_improves_critic_loss_and_resumes(tmp_path):
  cfg = _tiny_cfg()
  chart = np.ones((16, 16), bool)
  wd = str(tmp_path / "gan")
  cfg.total_images = 400  # level 0 stable (160) + level 1 fade (160) + part of stable
  state = gan_train.train(cfg, _blob_batches(cfg.batch_size, 16), chart, wd, log=lambda s: None)
  assert int(state["images"]) == 400
  recs = [json.loads(l) for l in open(os.path.join(wd, "losses.jsonl"))]
  level0 = [r["d_loss"] for r in recs if r["level"] == 0]
  assert np.mean(level0[-3:]) < level0[0] - 0.3, level0  # the critic learns to separate
  assert os.path.exists(os.path.join(wd, "samples", "final.png"))
  # resume: a larger budget continues from the checkpoint instead of starting over
  cfg.total_images = 480
  logs = []
  state2 = gan_train.train(cfg, _blob_batches(cfg.batch_size, 16, seed=1), chart, wd, log=logs.append)
  assert any("resumed from step 50" in l for l in logs)
  assert int(state2["images"]) == 480


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
  cfg = _tiny_cfg()
  state = gan_train.init_state(cfg, jax.random.PRNGKey(5))
  step = gan_train.make_train_step(cfg, 1)
  batch = next(_blob_batches(cfg.batch_size, 16))["texture"]
  state, _ = step(state, jnp.asarray(batch), jnp.ones((8, 8, 1)), jnp.float32(0.3), jnp.float32(0.9))
  mngr = gan_train.checkpoint_manager(str(tmp_path))
  gan_train.save_checkpoint(mngr, state)
  fresh = gan_train.init_state(cfg, jax.random.PRNGKey(6))
  back = gan_train.restore_checkpoint(gan_train.checkpoint_manager(str(tmp_path)), fresh)
  flat_a = jax.tree_util.tree_leaves_with_path(state)
  flat_b = dict(jax.tree_util.tree_leaves_with_path(back))
  assert len(flat_a) == len(flat_b)
  for path, a in flat_a:
    b = flat_b[path]
    if jnp.issubdtype(jnp.asarray(a).dtype, jax.dtypes.prng_key):
      a, b = jax.random.key_data(a), jax.random.key_data(b)
    assert np.array_equal(np.asarray(a), np.asarray(b)), path


def test_export_round_trip_float16(tmp_path):
  from ganfit_jax.texture import models
  cfg = _tiny_cfg()
  state = gan_train.init_state(cfg, jax.random.PRNGKey(7))
  path = str(tmp_path / "g.npz")
  gan_train.export_generator(path, cfg, state["ema"], np.ones((16, 16), bool))
  tm = models.load_gan(path)
  z = jax.random.normal(jax.random.PRNGKey(8), (cfg.latent_dim,))
  tex = tm.decode(z)
  ref = progan.to_unit(gan_train.generate(cfg, state["ema"], z[None]))[0]
  assert tex.shape == (16, 16, 3)
  np.testing.assert_allclose(np.asarray(tex), np.asarray(ref), atol=2e-2)  # float16 storage


def test_uint8_batches_equal_float_batches():
  cfg = _tiny_cfg()
  step = gan_train.make_train_step(cfg, 2)
  u8 = np.random.default_rng(0).integers(0, 256, (cfg.batch_size, 16, 16, 3), dtype=np.uint8)
  outs = []
  for batch in (jnp.asarray(u8), jnp.asarray(u8.astype(np.float32) / 255.0)):
    state = gan_train.init_state(cfg, jax.random.PRNGKey(9))
    outs.append(step(state, batch, jnp.ones((16, 16, 1)), jnp.float32(1.0), jnp.float32(0.9)))
  (s_a, aux_a), (s_b, aux_b) = outs
  for k in aux_a:
    np.testing.assert_allclose(float(aux_a[k]), float(aux_b[k]), rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree_util.tree_leaves(s_a["g"]), jax.tree_util.tree_leaves(s_b["g"])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
