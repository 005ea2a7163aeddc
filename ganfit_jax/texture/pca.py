"""PCA texture model: the linear baseline GANFit replaces with a GAN.

``texture = mean + sum_k (latent_k * std_k) basis_k``, latent ~ N(0, I), so it
shares the GAN's ``decode(latent) -> texture`` interface and prior. Fitted on
the UV dataset's training maps (complete maps, [0, 1]) with the N x N Gram
matrix (N maps << T*T*3 texels), so no D x D covariance is ever formed.
"""

from __future__ import annotations

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
from ganfit_jax.files import atomic_path


@dataclasses.dataclass(frozen=True)
class PCA:
  mean: np.ndarray    # (D,)
  basis: np.ndarray   # (K, D) orthonormal rows
  std: np.ndarray     # (K,) standard deviation of each component
  resolution: int

  @property
  def latent_dim(self) -> int:
    return int(self.basis.shape[0])

  def decode(self, latent):
    """(K,) or (..., K) latents -> (..., T, T, 3) textures in [0, 1]."""
    x = jnp.asarray(self.mean) + (jnp.asarray(latent) * jnp.asarray(self.std)) @ jnp.asarray(self.basis)
    t = self.resolution
    return jnp.clip(x.reshape(x.shape[:-1] + (t, t, 3)), 0.0, 1.0)

  def encode(self, textures):
    """(..., T, T, 3) -> (..., K) latents (least squares; exact for maps in the span)."""
    x = jnp.asarray(textures, jnp.float32).reshape(jnp.shape(textures)[:-3] + (-1,))
    return ((x - jnp.asarray(self.mean)) @ jnp.asarray(self.basis).T) / jnp.asarray(self.std)


def fit(textures: np.ndarray, num_components: int = 200, max_samples: int = 4000, seed: int = 0) -> PCA:
  """PCA of (N, T, T, 3) maps (uint8 or float in [0, 1])."""
  x = np.asarray(textures)
  if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != x.shape[2]:
    raise ValueError(f"textures must be (N, T, T, 3), got {x.shape}")
  if len(x) > max_samples:
    x = x[np.random.default_rng(seed).choice(len(x), max_samples, replace=False)]
  x = x.reshape(len(x), -1).astype(np.float64)
  if textures.dtype == np.uint8:
    x /= 255.0
  mean = x.mean(0)
  xc = x - mean
  gram = xc @ xc.T
  evals, evecs = np.linalg.eigh(gram)
  order = np.argsort(evals)[::-1]
  k = min(num_components, len(x) - 1)
  evals, evecs = np.maximum(evals[order[:k]], 1e-12), evecs[:, order[:k]]
  basis = (evecs.T @ xc) / np.sqrt(evals)[:, None]  # unit-norm principal directions
  std = np.sqrt(evals / max(len(x) - 1, 1))
  return PCA(mean=mean.astype(np.float32), basis=basis.astype(np.float32), std=std.astype(np.float32),
             resolution=int(textures.shape[1]))


def save(path: str, pca: PCA, dtype=np.float16, extra: dict = None) -> None:
  meta = dict(kind="pca", resolution=pca.resolution, latent_dim=pca.latent_dim, **(extra or {}))
  with atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.savez_compressed(f, __meta__=np.array(json.dumps(meta)), mean=pca.mean.astype(dtype),
                        basis=pca.basis.astype(dtype), std=pca.std.astype(np.float32))


def load(path: str) -> PCA:
  with np.load(path) as z:
    meta = json.loads(str(z["__meta__"]))
    return PCA(mean=z["mean"].astype(np.float32), basis=z["basis"].astype(np.float32),
               std=z["std"].astype(np.float32), resolution=int(meta["resolution"]))
