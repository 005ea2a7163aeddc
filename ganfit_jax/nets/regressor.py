"""Fast-GANFit's regressor network: an aligned photo -> every fitting variable in one forward pass.

As in the paper's Section 4: an image backbone (a small ResNet: GroupNorm, no batch statistics, so a
prediction does not depend on its batch neighbours), whose stage outputs are concatenated with the identity
network's intermediate features at the matching resolutions (SFace's ``res56`` / ``res28`` / ``res14``, the
content layers the fit already computes for the photo: no extra identity pass), pooled, joined with the 68
normalised landmarks and the identity embedding, and one linear head per parameter group.

The heads' kernels and biases start at zero, and :func:`ganfit_jax.params.init`'s start is added to their
output, so the untrained network predicts exactly the fit's start: the mean face, a (near-)neutral
expression, the texture latent 0, the default (frontal) camera and light.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

INPUT_SIZE = 112  # the photo's canvas is resized to this side for the backbone


class _Block(nn.Module):
  width: int
  stride: int

  @nn.compact
  def __call__(self, x):
    groups = max(1, min(8, self.width // 8))
    y = nn.Conv(self.width, (3, 3), (self.stride, self.stride), use_bias=False)(x)
    y = nn.relu(nn.GroupNorm(num_groups=groups)(y))
    y = nn.Conv(self.width, (3, 3), use_bias=False)(y)
    y = nn.GroupNorm(num_groups=groups)(y)
    if x.shape[-1] != self.width or self.stride != 1:
      x = nn.GroupNorm(num_groups=groups)(nn.Conv(self.width, (1, 1), (self.stride, self.stride), use_bias=False)(x))
    return nn.relu(x + y)


class Regressor(nn.Module):
  """photo (B, 112, 112, 3) in [0, 1], landmarks (B, 68, 2) in [-1, 1], identity embedding (B, D) and features
  {name: (B, h, w, c)} -> {group: (B, size)} offsets from the fit's start (zero when untrained).

  Attributes:
    sizes: (group, output size) per parameter group (``shape``, ``expression``, ``texture``, ``camera``, ``focal``,
      ``light``), from the scene.
    widths: backbone stage widths (stage k works at 56 / 2^k px).
    blocks: residual blocks per stage.
    hidden: width of the shared layer before the heads.
    feature_width: each matched identity feature map is projected to this many channels (0: not used).
  """

  sizes: Tuple[Tuple[str, int], ...]
  widths: Tuple[int, ...] = (16, 32, 64, 128)
  blocks: int = 1
  hidden: int = 256
  feature_width: int = 32

  @nn.compact
  def __call__(self, image, landmarks, embedding, features: Optional[Dict[str, jax.Array]] = None):
    x = nn.Conv(self.widths[0], (3, 3), (2, 2), use_bias=False)(image * 2.0 - 1.0)  # 56 px
    x = nn.relu(nn.GroupNorm(num_groups=max(1, min(8, self.widths[0] // 8)))(x))
    by_size = {}
    for name, f in (features or {}).items():
      by_size.setdefault(int(f.shape[1]), []).append(jax.lax.stop_gradient(f))
    pooled = []
    for k, w in enumerate(self.widths):
      for b in range(self.blocks):
        x = _Block(w, 2 if (b == 0 and k > 0) else 1)(x)
      if self.feature_width and x.shape[1] in by_size:  # the identity network's features at this resolution
        f = jnp.concatenate(by_size[x.shape[1]], -1)
        f = nn.relu(nn.Conv(self.feature_width, (1, 1))(f))
        x = jnp.concatenate([x, f], -1)
      pooled.append(jnp.mean(x, axis=(1, 2)))
    h = jnp.concatenate(pooled + [landmarks.reshape(landmarks.shape[0], -1), jax.lax.stop_gradient(embedding)], -1)
    h = nn.relu(nn.Dense(self.hidden)(h))
    return {g: nn.Dense(n, kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros, name=f"head_{g}")(h)
            for g, n in self.sizes}


__all__ = ["Regressor", "INPUT_SIZE"]
