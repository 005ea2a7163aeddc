"""Each loss term on tiny hand-made cases."""

import jax
import jax.numpy as jnp
import numpy as np

from ganfit_jax import losses


def test_identity_loss():
  a = jnp.array([1.0, 0.0, 0.0])
  assert float(losses.identity_loss(a, 3.0 * a)) == 0.0
  np.testing.assert_allclose(float(losses.identity_loss(a, -a)), 2.0, atol=1e-6)
  np.testing.assert_allclose(float(losses.identity_loss(a, jnp.array([0.0, 2.0, 0.0]))), 1.0, atol=1e-6)
  g = jax.grad(lambda x: losses.identity_loss(x, a))(jnp.zeros(3))
  assert np.all(np.isfinite(np.asarray(g)))  # zero embedding: finite gradient


def test_content_loss_is_eq10():
  fa = {"x": jnp.zeros((2, 2, 3)), "y": jnp.zeros((1, 1, 4))}
  fb = {"x": jnp.full((2, 2, 3), 2.0), "y": jnp.array([[[3.0, 4.0, 0.0, 0.0]]])}
  # ||2 * ones(12)|| / 12 + ||(3, 4, 0, 0)|| / 4
  expected = np.sqrt(12 * 4.0) / 12 + 5.0 / 4
  np.testing.assert_allclose(float(losses.content_loss(fa, fb)), expected, rtol=1e-6)
  np.testing.assert_allclose(float(losses.content_loss(fa, fb, ["y"])), 1.25, rtol=1e-6)


def test_pixel_loss_masked_mean():
  img = jnp.zeros((2, 2, 3))
  tgt = jnp.array([[[0.3, 0.3, 0.3], [1.0, 1.0, 1.0]], [[0.0, 0.0, 0.6], [9.0, 9.0, 9.0]]])
  mask = jnp.array([[True, False], [True, False]])
  np.testing.assert_allclose(float(losses.pixel_loss(img, tgt, mask)), (0.9 + 0.6) / 6, rtol=1e-6)
  assert float(losses.pixel_loss(img, tgt, jnp.zeros((2, 2), bool))) == 0.0


def test_landmark_loss_and_regulariser():
  p = jnp.zeros((68, 2))
  t = p.at[0].set(jnp.array([3.0, 4.0]))
  np.testing.assert_allclose(float(losses.landmark_loss(p, t)), 5.0, rtol=1e-6)
  np.testing.assert_allclose(float(losses.l2_reg(jnp.array([1.0, -3.0]))), 5.0)
  assert float(losses.l2_reg(jnp.zeros((0,)))) == 0.0
