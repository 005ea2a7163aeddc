"""GANFit's loss terms (paper Sec. 3.3), each a pure function of arrays.

Units and normalisations used by ganfit_jax (the paper's weights then apply
unchanged, see ``objective.LossWeights``):
  * images are RGB in [0, 1]; the pixel loss is the mean absolute difference
    over covered face pixels and channels (so 0.05 = 5% of the range);
  * identity losses are ``1 - cos`` of embeddings, in [0, 2];
  * content loss (Eq. 10) sums, over the identity net's intermediate feature
    maps j, ``||F_j(a) - F_j(b)||_2 / (H_j W_j C_j)``;
  * landmark loss (Eq. 12) is ``||M(I0) - M(IR)||_2`` over the 68 x 2 pixel
    coordinates of the 224-pixel fitting canvas;
  * regularisers are mean squares of N(0, 1) coefficients (shape), of
    expression activations (ICT blendshapes in [0, 1]) and of the scaled light
    offsets from the default light.
"""

from __future__ import annotations

from typing import Dict, Sequence

import jax.numpy as jnp

from ganfit_jax import numerics as gmath
from ganfit_jax.numerics import safe_norm


def identity_loss(emb_a, emb_b):
  """1 - cosine similarity of two embeddings (Eq. 9)."""
  return 1.0 - gmath.cosine(emb_a, emb_b, -1)


def content_loss(feats_a: Dict[str, jnp.ndarray], feats_b: Dict[str, jnp.ndarray],
                 keys: Sequence[str] = None):
  """Eq. 10: sum_j ||F_j(a) - F_j(b)||_2 / (H_j W_j C_j) over single-example feature maps (H, W, C)."""
  keys = sorted(feats_a) if keys is None else keys
  total = 0.0
  for k in keys:
    a, b = feats_a[k], feats_b[k]
    total = total + safe_norm((a - b).reshape(-1), -1) / a.size
  return total


def pixel_loss(image, target, mask):
  """Eq. 11 as a mean: mean |image - target| over masked pixels and channels (0 if the mask is empty)."""
  m = mask.astype(image.dtype)[..., None]
  return jnp.sum(jnp.abs(image - target) * m) / (3.0 * jnp.maximum(jnp.sum(m), 1.0))


def landmark_loss(pred, target):
  """Eq. 12: Euclidean norm of the (68, 2) landmark difference, in pixels."""
  return safe_norm((pred - target).reshape(-1), -1)


def l2_reg(x):
  """Mean square (a zero-size input gives 0)."""
  return jnp.mean(jnp.square(x)) if x.size else jnp.zeros(())
