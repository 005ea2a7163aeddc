"""Progressive-growing GAN (Karras et al. 2018) in Flax Linen, for UV texture maps.

* Equalised learning rate: weights are stored N(0, 1) and scaled at run time by
  He's constant ``gain / sqrt(fan_in)`` (:class:`EqDense`, :class:`EqConv`).
* Pixel norm after every generator conv; leaky ReLU 0.2; nearest-neighbour
  up-sampling, average-pool down-sampling; minibatch standard deviation (group
  of up to 4) before the discriminator's last block.
* Growing: ``level`` (static; 0 = 4x4, 1 = 8x8, ...) says which resolution is
  trained; ``alpha`` (traced, in [0, 1]) fades the new level in, so the fade
  does not recompile. ``alpha = 0`` equals the previous level's output,
  up-sampled. Every block and every to-RGB / from-RGB head exists from ``init``
  (submodules are named by resolution: ``block_64``, ``to_rgb_64``, ...), so one
  set of variables serves every stage and checkpoints never change structure.
* Output: UV texture in [-1, 1] (linear head, not clipped); :func:`to_unit`
  maps it to [0, 1] images. Row 0 is v = 1 as everywhere in ganfit_jax.
"""

from __future__ import annotations

import math
from typing import Dict

import flax.linen as nn
import jax
import jax.numpy as jnp

DEFAULT_CHANNELS = {4: 256, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8}


def resolutions(max_resolution: int):
  n = int(round(math.log2(max_resolution)))
  if 2 ** n != max_resolution or n < 2:
    raise ValueError(f"max_resolution must be a power of two >= 4, got {max_resolution}")
  return [2 ** k for k in range(2, n + 1)]


class EqDense(nn.Module):
  features: int
  gain: float = math.sqrt(2.0)

  @nn.compact
  def __call__(self, x):
    w = self.param("kernel", nn.initializers.normal(1.0), (x.shape[-1], self.features))
    b = self.param("bias", nn.initializers.zeros, (self.features,))
    return x @ (w * (self.gain / math.sqrt(x.shape[-1]))) + b[None, :]


class EqConv(nn.Module):
  features: int
  kernel: int = 3
  gain: float = math.sqrt(2.0)

  @nn.compact
  def __call__(self, x):
    cin = x.shape[-1]
    w = self.param("kernel", nn.initializers.normal(1.0), (self.kernel, self.kernel, cin, self.features))
    b = self.param("bias", nn.initializers.zeros, (self.features,))
    scale = self.gain / math.sqrt(cin * self.kernel * self.kernel)
    y = jax.lax.conv_general_dilated(x, w * scale, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + b[None, None, None, :]


def pixel_norm(x, eps: float = 1e-8):
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), -1, keepdims=True) + eps)


def lrelu(x):
  return nn.leaky_relu(x, 0.2)


def upsample(x):
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x):
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean((2, 4))


def minibatch_stddev(x, group: int = 4):
  b, h, w, c = x.shape
  g = min(group, b)
  if b % g:
    g = 1
  y = x.reshape(g, b // g, h, w, c)
  y = jnp.sqrt(jnp.var(y, axis=0) + 1e-8)  # (b/g, h, w, c)
  y = jnp.mean(y, axis=(1, 2, 3))  # (b/g,)
  y = jnp.tile(y[:, None, None, None], (g, h, w, 1))
  return jnp.concatenate([x, y], -1)


def to_unit(texture):
  """[-1, 1] generator output -> [0, 1] image (clipped)."""
  return jnp.clip((texture + 1.0) * 0.5, 0.0, 1.0)


class Generator(nn.Module):
  """G(z): (B, latent) -> (B, R, R, 3) in [-1, 1] at the resolution of ``level``."""
  max_resolution: int = 128
  latent_dim: int = 512
  channels: Dict[int, int] = None

  def _ch(self, r):
    return (self.channels or DEFAULT_CHANNELS)[r]

  @nn.compact
  def __call__(self, z, level: int = -1, alpha=1.0):
    res = resolutions(self.max_resolution)
    level = len(res) - 1 if level < 0 else level
    if not 0 <= level < len(res):
      raise ValueError(f"level must be in [0, {len(res) - 1}], got {level}")
    init_all = self.is_initializing()
    x = pixel_norm(z)
    c4 = self._ch(4)
    x = EqDense(4 * 4 * c4, gain=math.sqrt(2.0) / 4, name="block_4_dense")(x).reshape(-1, 4, 4, c4)
    x = pixel_norm(lrelu(x))
    x = pixel_norm(lrelu(EqConv(c4, name="block_4_conv")(x)))
    feats = [x]
    last = len(res) - 1 if init_all else level
    for r in res[1:last + 1]:
      h = upsample(feats[-1])
      h = pixel_norm(lrelu(EqConv(self._ch(r), name=f"block_{r}_conv0")(h)))
      h = pixel_norm(lrelu(EqConv(self._ch(r), name=f"block_{r}_conv1")(h)))
      feats.append(h)
    heads = {r: EqConv(3, kernel=1, gain=1.0, name=f"to_rgb_{r}") for r in res}
    if init_all:  # create every head
      for r, f in zip(res, feats):
        heads[r](f)
    out = heads[res[level]](feats[level])
    if level > 0:
      prev = upsample(heads[res[level - 1]](feats[level - 1]))
      out = prev + alpha * (out - prev)
    return out


class Discriminator(nn.Module):
  """D(x): (B, R, R, 3) at the resolution of ``level`` -> (B,) WGAN critic scores."""
  max_resolution: int = 128
  channels: Dict[int, int] = None

  def _ch(self, r):
    return (self.channels or DEFAULT_CHANNELS)[r]

  @nn.compact
  def __call__(self, x, level: int = -1, alpha=1.0):
    res = resolutions(self.max_resolution)
    level = len(res) - 1 if level < 0 else level
    if x.shape[1] != res[level]:
      raise ValueError(f"level {level} expects {res[level]}x{res[level]} images, got {x.shape}")
    init_all = self.is_initializing()
    from_rgb = {r: EqConv(self._ch(r), kernel=1, name=f"from_rgb_{r}") for r in res}
    blocks = {}
    for r in res[1:]:
      blocks[r] = (EqConv(self._ch(r), name=f"block_{r}_conv0"), EqConv(self._ch(r // 2), name=f"block_{r}_conv1"))
    if init_all:  # create every head and block, whatever the level
      for r in res:
        img = jnp.zeros((1, r, r, 3), x.dtype)
        h = lrelu(from_rgb[r](img))
        if r > 4:
          blocks[r][1](lrelu(blocks[r][0](h)))
    top = res[level]
    h = lrelu(from_rgb[top](x))
    if level > 0:
      c0, c1 = blocks[top]
      h = downsample(lrelu(c1(lrelu(c0(h)))))
      skip = lrelu(from_rgb[res[level - 1]](downsample(x)))
      h = skip + alpha * (h - skip)
      for r in reversed(res[1:level]):
        c0, c1 = blocks[r]
        h = downsample(lrelu(c1(lrelu(c0(h)))))
    h = minibatch_stddev(h)
    h = lrelu(EqConv(self._ch(4), name="block_4_conv")(h))
    h = lrelu(EqDense(self._ch(4), name="block_4_dense0")(h.reshape(h.shape[0], -1)))
    return EqDense(1, gain=1.0, name="block_4_dense1")(h)[:, 0]


def gradient_penalty(critic, real, fake, key):
  """WGAN-GP: E[(||grad_x D(x_hat)||_2 - 1)^2] at random interpolates x_hat of real and fake."""
  eps = jax.random.uniform(key, (real.shape[0], 1, 1, 1), real.dtype)
  x_hat = real + eps * (fake - real)
  grads = jax.grad(lambda x: jnp.sum(critic(x)))(x_hat)
  norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=(1, 2, 3)) + 1e-12)
  return jnp.mean(jnp.square(norms - 1.0))
