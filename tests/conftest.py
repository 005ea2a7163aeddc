"""Shared fixtures: strict numpy rank promotion, the converted ICT model, tiny synthetic meshes."""

import os

import jax
import numpy as np
import pytest

from ganfit_jax import runtime

runtime.configure()  # the project's XLA CPU flag and compilation cache, as the tools use them
jax.config.update("jax_numpy_rank_promotion", "raise")

SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
ICT_DIR = os.environ.get("GANFIT_ICT_DIR") or os.path.join(SHARED, "assets", "ict-facekit")
LFW_DIR = os.path.join(SHARED, "assets", "lfw")


@pytest.fixture(scope="session")
def ict_model():
  """The default model from the asset cache (the README's setup command makes it)."""
  from ganfit_jax import morphable
  return morphable.load("ict")


@pytest.fixture(scope="session")
def ict_dir():
  if not os.path.isdir(os.path.join(ICT_DIR, "FaceXModel")):
    pytest.fail(f"ICT-FaceKit data not found at {ICT_DIR}; set GANFIT_ICT_DIR")
  return ICT_DIR


def make_tiny_model(num_id=2, num_exp=2):
  """A unit cube (8 vertices, 12 outward triangles) with per-vertex UVs as a MorphableModel."""
  from ganfit_jax import morphable
  v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float32) * 50
  faces = []
  quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
  for a, b, c, d in quads:
    faces += [(a, b, c), (a, c, d)]
  faces = np.array(faces)
  # make every triangle outward (counter-clockwise seen from outside)
  n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
  flip = np.einsum("fi,fi->f", n, v[faces].mean(1)) < 0
  faces[flip] = faces[flip][:, [0, 2, 1]]
  rng = np.random.default_rng(0)
  return morphable.from_arrays(
      mean=v, id_basis=rng.normal(size=(num_id, 8, 3)), exp_basis=rng.normal(size=(num_exp, 8, 3)),
      triangles=faces, landmarks=np.arange(68) % 8, name="cube")


def make_tiny_scene(canvas_size=64, seed=0):
  """A cheap full scene: the cube model, a 4-d PCA texture at 16 px, a random 1-1-1-1 IResNet."""
  import jax
  import jax.numpy as jnp
  from ganfit_jax import scene
  from ganfit_jax.nets import identity
  from ganfit_jax.texture.models import TextureModel
  rng = np.random.default_rng(seed)
  t, k = 16, 4
  basis = np.linalg.qr(rng.normal(size=(t * t * 3, k)))[0].T.astype(np.float32)
  tex = TextureModel(params=dict(mean=jnp.full((t * t * 3,), 0.5), basis=jnp.asarray(basis),
                                 std=jnp.full((k,), 2.0)), chart=jnp.ones((t, t), bool), kind="pca", latent_dim=k,
                     resolution=t)
  module = identity.make_module("arcface", "1-1-1-1")
  variables = module.init(jax.random.PRNGKey(seed), jnp.zeros((1, 112, 112, 3)))
  net = identity.IdentityNet(variables=variables, net="arcface", arch="1-1-1-1")
  return scene.make(make_tiny_model(), tex, net, canvas_size=canvas_size, texture_size=t)
