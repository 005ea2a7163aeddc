"""Texture models behind one pytree: ``TextureModel.decode(latent) -> (T, T, 3)`` texture in [0, 1].

* ``gan``: the progressive GAN generator (``ganfit_jax.nets.progan``), weights
  exported by ``tools/train_gan.py --export`` (float16 .npz); the default,
  asset ``texture_gan``.
* ``pca``: the PCA baseline (``ganfit_jax.texture.pca``), asset ``texture_pca``.

Both take latents ~ N(0, I), so the same prior regulariser and the same random
initialisation serve either; fitting picks one by config (``--config.texture_model``).
A :class:`TextureModel` is a ``flax.struct`` pytree: its arrays (``params``,
``chart``) are leaves, its structure (kind, sizes, channels) is static, so it
can be an argument of a compiled function.
"""

from __future__ import annotations

import json
import zipfile
from typing import Any, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ganfit_jax import assets

KINDS = ("gan", "pca")


@struct.dataclass
class TextureModel:
  """A texture decoder.

  Attributes:
    params: the decoder's arrays (GAN generator parameters, or PCA mean/basis/std).
    chart: (T, T) bool, texels inside the UV chart the model was trained on.
    kind: 'gan' or 'pca' (static).
    latent_dim: L (static).
    resolution: T (static).
    channels: the GAN's channels per resolution, 4 px first (static; empty for PCA).
  """

  params: Any
  chart: jnp.ndarray
  kind: str = struct.field(pytree_node=False, default="gan")
  latent_dim: int = struct.field(pytree_node=False, default=512)
  resolution: int = struct.field(pytree_node=False, default=128)
  channels: Tuple[int, ...] = struct.field(pytree_node=False, default=())

  def decode(self, latent):
    """(L,) -> (T, T, 3) in [0, 1]; (..., L) batches work too."""
    latent = jnp.asarray(latent, jnp.float32)
    if latent.shape[-1:] != (self.latent_dim,):
      raise ValueError(f"texture latent must be (..., {self.latent_dim}), got {latent.shape}")
    lead = latent.shape[:-1]
    z = latent.reshape(-1, self.latent_dim)
    t = self.resolution
    if self.kind == "gan":
      from ganfit_jax.nets import progan
      gen = progan.Generator(t, self.latent_dim, dict(zip(progan.resolutions(t), self.channels)))
      out = progan.to_unit(gen.apply({"params": self.params}, z))
    else:
      q = self.params
      out = jnp.clip((q["mean"][None, :] + (z * q["std"][None, :]) @ q["basis"]).reshape(-1, t, t, 3), 0.0, 1.0)
    return out.reshape(lead + out.shape[1:])

  def sample_latent(self, key, shape=()):
    return jax.random.normal(key, shape + (self.latent_dim,))


def load_gan(path: str) -> TextureModel:
  from flax import traverse_util
  with np.load(path) as z:
    meta = json.loads(str(z["__meta__"]))
    chart = z["__chart__"]
    # host arrays, put on the device in one transfer (a jnp conversion per leaf compiles one program each)
    flat = {k[len("params/"):]: np.asarray(z[k], np.float32) for k in z.files if k.startswith("params/")}
  flat = jax.device_put(flat)
  return TextureModel(params=traverse_util.unflatten_dict(flat, sep="/"), chart=jnp.asarray(chart, bool),
                      kind="gan", latent_dim=int(meta["latent_dim"]), resolution=int(meta["max_resolution"]),
                      channels=tuple(int(c) for c in meta["channels"]))


def load_pca(path: str) -> TextureModel:
  from ganfit_jax.texture import pca as pca_lib
  p = pca_lib.load(path)
  t = p.resolution
  params = dict(mean=jnp.asarray(p.mean), basis=jnp.asarray(p.basis), std=jnp.asarray(p.std))
  chart = (p.mean.reshape(t, t, 3) > 0).any(-1)
  return TextureModel(params=params, chart=jnp.asarray(chart), kind="pca", latent_dim=p.latent_dim, resolution=t)


def load(name_or_path: str = "gan") -> TextureModel:
  """'gan' / 'pca' (the shipped assets) or a path to an exported .npz of either kind."""
  path = assets.resolve(name_or_path)
  try:
    with np.load(path) as z:
      kind = json.loads(str(z["__meta__"])).get("kind", "gan")
  except FileNotFoundError as e:
    raise assets.AssetError(f"texture model {name_or_path!r} not found: use 'gan', 'pca' or the path of a "
                            "file written by tools/train_gan.py --export or tools/build_pca.py") from e
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # a cut or foreign file
    raise assets.AssetError(f"{path} is not a texture model written by tools/train_gan.py --export or "
                            f"tools/build_pca.py ({e})") from e
  return load_pca(path) if kind == "pca" else load_gan(path)
