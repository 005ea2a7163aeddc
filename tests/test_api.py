"""The public surface: ``ganfit_jax.NAME`` for the functions and types a researcher composes."""

import subprocess
import sys

import jax.numpy as jnp
import numpy as np

import ganfit_jax
from conftest import ROOT


def test_public_names_resolve_to_the_modules_objects_with_docstrings():
  from ganfit_jax import fitting, morphable, objective, render, scene
  assert ganfit_jax.fit is fitting.fit and ganfit_jax.LossWeights is objective.LossWeights
  assert ganfit_jax.load_model is morphable.load and ganfit_jax.load_scene is scene.load
  assert ganfit_jax.render_model is render.pipeline.render_model
  for name in ganfit_jax.__all__:
    obj = getattr(ganfit_jax, name)
    assert (obj.__doc__ or "").strip(), f"ganfit_jax.{name} has no docstring"
  assert set(ganfit_jax.__all__) <= set(dir(ganfit_jax))
  try:
    ganfit_jax.no_such_name
  except AttributeError as e:
    assert "no_such_name" in str(e)
  else:
    raise AssertionError("an unknown name must raise AttributeError")


def test_importing_the_package_loads_nothing_heavy():
  code = "import sys, ganfit_jax; print(sorted(m for m in ('jax', 'cv2', 'flax') if m in sys.modules))"
  r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert r.returncode == 0 and r.stdout.strip() == "[]", (r.stdout, r.stderr[-2000:])


def test_the_public_names_compose(ict_model):
  """The package docstring's example, small: vertices, a camera, a light and a render through the top level."""
  m = ict_model
  v = ganfit_jax.vertices(m, jnp.zeros(m.num_identity))
  out = ganfit_jax.render_model(m, jnp.zeros(m.num_identity), jnp.zeros(m.num_expression), jnp.ones((8, 8, 3)),
                                ganfit_jax.orbit_camera(0.2), ganfit_jax.default_light(), height=32, width=32)
  assert v.shape == (m.mean.shape[0], 3) and out.image.shape == (32, 32, 3) and bool(np.asarray(out.mask).any())


def test_version_comes_from_pyproject():
  """``ganfit_jax.__version__`` is the installed metadata's, which pyproject.toml (the one place) sets."""
  import tomllib
  with open(f"{ROOT}/pyproject.toml", "rb") as fh:
    version = tomllib.load(fh)["project"]["version"]
  assert ganfit_jax.__version__ == version


def test_reconstructor_fit_refuses_a_batch_it_cannot_pad():
  """``Reconstructor.fit(batch=N)`` pads 1..N independent photos; more photos, or a shared identity (copies would
  weigh in the shared shape), are refused with the reason before any work."""
  import types

  import pytest
  from ganfit_jax.reconstruct import Reconstructor
  fake = types.SimpleNamespace()
  with pytest.raises(ValueError, match="pads 1 to 2 independent photos; got 3 photos"):
    Reconstructor.fit(fake, [object()] * 3, ["a", "b", "c"], batch=2)
  with pytest.raises(ValueError, match="one shared identity"):
    Reconstructor.fit(fake, [object()] * 2, ["a", "b"], shared_identity=True, batch=4)
