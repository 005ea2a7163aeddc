"""Shared fixtures: strict numpy rank promotion, the converted ICT model, tiny synthetic meshes, the main job
run in process (:func:`run_cli`) and one real tiny fit shared by the tests that only read its outputs."""

import contextlib
import dataclasses
import functools
import io
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from ganfit_jax import runtime

runtime.configure()  # the project's XLA CPU flag and compilation cache, as the tools use them
jax.config.update("jax_numpy_rank_promotion", "raise")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
ICT_DIR = os.environ.get("GANFIT_ICT_DIR") or os.path.join(SHARED, "assets", "ict-facekit")
LFW_DIR = os.path.join(SHARED, "assets", "lfw")
LFW = os.path.join(LFW_DIR, "images_deepfunneled")
TINY = ["--config=" + os.path.join(ROOT, "configs", "fit.py") + ":tiny"]  # a few steps, small outputs


def lfw_photo(name: str, i: int = 1) -> str:
  return os.path.join(LFW, name, f"{name}_{i:04d}.jpg")


@dataclasses.dataclass
class CliRun:
  code: int
  out: str
  err: str


def run_cli(args, tiny: bool = True) -> CliRun:
  """``tools/fit.py ARGS`` in this process (its parser, checks, loaders and job): exit code, stdout, stderr.
  The compiled programs stay in the process, so the next run reuses them. ``tiny``: the tiny preset first (its
  --config.FIELD overrides may follow in ``args``)."""
  from ganfit_jax import cli
  out, err = io.StringIO(), io.StringIO()
  try:
    req, cfg = cli.parse(["fit.py"] + (TINY if tiny else []) + list(args))
  except cli.UsageError as e:
    return CliRun(2, "", f"error: {e}\n")
  with contextlib.redirect_stderr(err):  # progress bars and warnings that print to sys.stderr
    code = cli.execute(req, cfg, out, err)
  return CliRun(code, out.getvalue(), err.getvalue())


def run_tool(args, env=None, cwd=None, timeout=900):
  """``python tools/fit.py ARGS`` in a child process (the witnesses of the real command line)."""
  return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fit.py")] + list(args), capture_output=True,
                        text=True, cwd=cwd or ROOT, env=env, timeout=timeout)


@pytest.fixture(scope="session")
def tiny_fit(tmp_path_factory):
  """One real fit (an LFW DevTest photo, the tiny preset, every export) through the command line, in process;
  the tests that only read a fit's outputs share it. Returns (output folder, CliRun)."""
  out = tmp_path_factory.mktemp("tiny_fit") / "res"
  r = run_cli([f"--image={lfw_photo('Aaron_Eckhart')}", f"--out={out}"])
  assert r.code == 0, r.err[-3000:]
  return out, r


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


def random_variables(module, input_shape, seed=0):
  """Random Flax variables for ``module`` made on the host from its shapes (``module.init`` runs the network,
  eagerly or compiled: seconds for a test that needs only some fixed weights): kernels N(0, 1/fan_in), batch-norm
  scale and variance 1, biases and means 0, PReLU slopes 0.25."""
  import jax
  import jax.numpy as jnp
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros(input_shape))
  rng = np.random.default_rng(seed)

  def make(path, x):
    name = str(path[-1].key)
    if name == "kernel":
      fan_in = int(np.prod(x.shape[:-1]))
      return (rng.normal(size=x.shape) / np.sqrt(fan_in)).astype(x.dtype)
    fill = {"scale": 1.0, "var": 1.0, "negative_slope": 0.25}.get(name, 0.0)
    return np.full(x.shape, fill, x.dtype)

  return jax.tree_util.tree_map_with_path(make, shapes)


@functools.lru_cache(maxsize=None)
def make_tiny_scene(canvas_size=64, seed=0):
  """A cheap full scene: the cube model, a 4-d PCA texture at 16 px, a random narrow 1-1-1-1 IResNet. One per
  (canvas_size, seed) in a process (a scene is immutable: tests derive variants with ``replace``)."""
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
  arch = "1-1-1-1w8"  # a small IResNet (8 channels at 112 px): the real networks keep their exactness tests
  variables = random_variables(identity.make_module("arcface", arch), (1, 112, 112, 3), seed)
  net = identity.IdentityNet(variables=variables, net="arcface", arch=arch)
  return scene.make(make_tiny_model(), tex, net, canvas_size=canvas_size, texture_size=t)
