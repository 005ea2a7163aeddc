"""Bilinear sampling: the project's one sampler (dm-pix), for UV textures, photo warps and unwraps.

:func:`bilinear` samples an (H, W, C) image at pixel-index coordinates with
``dm_pix.flat_nd_linear_interpolate`` (one gather of the neighbours from the
flattened channel; differentiable w.r.t. image and coordinates). It replaced a
hand-written single-gather sampler: faster forward + backward in an interleaved
A/B, gradients equal to 2e-6 (``benchmarks/render.py --sampler``; numbers in
WORKSPACE.md, "Renderer"). Three call sites use it:

* :func:`sample`: UV textures in the renderer;
* ``face.align.warp_affine``: the 112 x 112 identity crop (zero border);
* ``texture.unwrap``: photo colours at projected texels (clamped border).
"""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp


def bilinear(image, x, y, *, border: str = "clamp"):
  """Samples ``image`` (H, W, C) at pixel-index coordinates (the centre of pixel (i, j) is x = j, y = i).

  Args:
    image: (H, W, C).
    x, y: (...) coordinates (any shape, the same for both).
    border: 'clamp' (coordinates clamped to the image) or 'zero' (taps outside the
      image read 0, as ``cv2.BORDER_CONSTANT``).

  Returns:
    (..., C) samples.
  """
  if image.ndim != 3:
    raise ValueError(f"image must be (H, W, C), got {image.shape}")
  if border not in ("clamp", "zero"):
    raise ValueError(f"border must be 'clamp' or 'zero', got {border!r}")
  if border == "zero":  # a ring of zeros, then clamped: each tap outside the image reads 0 (cv2's BORDER_CONSTANT)
    image = jnp.pad(image, ((1, 1), (1, 1), (0, 0)))
    x, y = x + 1.0, y + 1.0
  h, w, c = image.shape
  coords = jnp.stack([jnp.clip(y, 0.0, h - 1.0).reshape(-1), jnp.clip(x, 0.0, w - 1.0).reshape(-1)])
  out = jax.vmap(lambda ch: dm_pix.flat_nd_linear_interpolate(ch, coords), in_axes=2, out_axes=-1)(image)
  return out.reshape(x.shape + (c,))


def sample(texture, uv, mask=None):
  """Samples a UV ``texture`` bilinearly.

  Args:
    texture: (T_h, T_w, C) texture; row 0 is the top (v = 1), OBJ/OpenGL UVs.
    uv: (..., 2) coordinates; u right, v up. Values outside [0, 1] are clamped
      to the border (ICT-FaceKit's head/neck UDIM tile [1, 2] thus takes the
      texture's right-hand border colours).
    mask: optional (...) bool; unmasked samples return 0.

  Returns:
    (..., C) colours.
  """
  if texture.ndim != 3:
    raise ValueError(f"texture must be (T_h, T_w, C), got {texture.shape}")
  th, tw, _ = texture.shape
  x = jnp.clip(uv[..., 0], 0.0, 1.0) * tw - 0.5
  y = (1.0 - jnp.clip(uv[..., 1], 0.0, 1.0)) * th - 0.5
  out = bilinear(texture, x, y, border="clamp")
  if mask is not None:
    out = jnp.where(mask[..., None], out, 0.0)
  return out
