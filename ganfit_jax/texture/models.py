"""Texture models behind one interface: ``decode(latent) -> (T, T, 3)`` texture in [0, 1].

* ``gan``: the progressive GAN generator (``ganfit_jax.nets.progan``), weights
  exported by ``tools/train_gan.py --export`` (float16 .npz); the default,
  asset ``texture_gan``.
* ``pca``: the PCA baseline (``ganfit_jax.texture.pca``), asset ``texture_pca``.

Both take latents ~ N(0, I), so the same prior regulariser and the same random
initialisation serve either; fitting picks one by config (``--texture_model``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ganfit_jax import assets


@dataclasses.dataclass(frozen=True)
class TextureModel:
  kind: str
  latent_dim: int
  resolution: int
  params: Any
  chart: np.ndarray
  _decode: Callable[[Any, jax.Array], jax.Array]

  def decode(self, latent):
    """(latent_dim,) -> (T, T, 3) in [0, 1]; (..., latent_dim) batches work too."""
    latent = jnp.asarray(latent)
    lead = latent.shape[:-1]
    out = self._decode(self.params, latent.reshape(-1, self.latent_dim))
    return out.reshape(lead + out.shape[1:])

  def sample_latent(self, key, shape=()):
    return jax.random.normal(key, shape + (self.latent_dim,))


def load_gan(path: str) -> TextureModel:
  from flax import traverse_util
  from ganfit_jax.nets import progan
  with np.load(path) as z:
    meta = json.loads(str(z["__meta__"]))
    chart = z["__chart__"]
    flat = {k[len("params/"):]: jnp.asarray(z[k], jnp.float32) for k in z.files if k.startswith("params/")}
  params = traverse_util.unflatten_dict(flat, sep="/")
  res = progan.resolutions(meta["max_resolution"])
  gen = progan.Generator(meta["max_resolution"], meta["latent_dim"],
                         {r: c for r, c in zip(res, meta["channels"])})

  def decode(p, z):
    return progan.to_unit(gen.apply({"params": p}, z))

  return TextureModel("gan", int(meta["latent_dim"]), int(meta["max_resolution"]), params, chart, decode)


def load_pca(path: str) -> TextureModel:
  from ganfit_jax.texture import pca as pca_lib
  p = pca_lib.load(path)
  params = dict(mean=jnp.asarray(p.mean), basis=jnp.asarray(p.basis), std=jnp.asarray(p.std))
  t = p.resolution

  def decode(q, z):
    x = q["mean"][None, :] + (z * q["std"][None, :]) @ q["basis"]
    return jnp.clip(x.reshape(-1, t, t, 3), 0.0, 1.0)

  chart = (p.mean.reshape(t, t, 3) > 0).any(-1)
  return TextureModel("pca", p.latent_dim, t, params, chart, decode)


def load(name_or_path: str = "gan") -> TextureModel:
  """'gan' / 'pca' (the shipped assets) or a path to an exported .npz of either kind."""
  path = {"gan": "texture_gan", "pca": "texture_pca"}.get(name_or_path)
  path = assets.path(path) if path else name_or_path
  with np.load(path) as z:
    kind = json.loads(str(z["__meta__"])).get("kind", "gan")
  return load_pca(path) if kind == "pca" else load_gan(path)
