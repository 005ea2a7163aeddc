"""The one mapping between optimiser variables and physical FaceParams."""

import jax
import jax.numpy as jnp
import numpy as np

from conftest import make_tiny_model
from ganfit_jax import camera, lighting
from ganfit_jax import params as P
from ganfit_jax.types import EXPRESSION_BLENDSHAPE, EXPRESSION_GAUSSIAN


def test_init_is_the_start(ict_model):
  v = P.init(ict_model, jnp.ones(512))
  f = P.to_face(v, ict_model.expression_kind)
  np.testing.assert_allclose(np.asarray(f.camera), np.asarray(camera.default_camera()))
  np.testing.assert_allclose(np.asarray(f.light), np.asarray(lighting.default_light()))
  assert f.shape.shape == (100,) and np.all(np.asarray(f.shape) == 0)
  # ICT activations start near 0 and stay in [0, 1]
  assert f.expression.shape == (53,) and 0 < float(f.expression.max()) < 0.02
  assert len(jax.tree_util.tree_leaves(f)) == 5


def test_round_trip_both_expression_kinds():
  rng = np.random.default_rng(0)
  for kind in (EXPRESSION_BLENDSHAPE, EXPRESSION_GAUSSIAN):
    v = P.Variables(shape=jnp.asarray(rng.normal(size=3), jnp.float32),
                    expression=jnp.asarray(rng.normal(size=2), jnp.float32),
                    texture=jnp.asarray(rng.normal(size=4), jnp.float32),
                    camera=jnp.asarray(rng.normal(size=9) * 0.1, jnp.float32),
                    focal=jnp.asarray(rng.normal(size=1) * 0.1, jnp.float32),
                    light=jnp.asarray(rng.normal(size=9) * 0.1, jnp.float32))
    f = P.to_face(v, kind)
    back = P.from_face(f, kind)
    for a, b in zip(jax.tree_util.tree_leaves(v), jax.tree_util.tree_leaves(back)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-4)
    if kind == EXPRESSION_BLENDSHAPE:
      assert float(f.expression.min()) > 0 and float(f.expression.max()) < 1


def test_labels_name_every_group_and_init_validates():
  assert jax.tree_util.tree_leaves(P.labels()) == list(P.GROUPS)
  import pytest
  with pytest.raises(ValueError, match="texture_latent"):
    P.init(make_tiny_model(), jnp.zeros((2, 4)))
