"""Similarity alignment: photo -> fitting canvas, and a differentiable 112x112 warp for identity nets."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ganfit_jax import geometry
from ganfit_jax.render import texture as texture_sampling

# ArcFace / insightface 112x112 five-point template: eye centres (image-left eye first), nose tip, mouth corners.
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)


def five_points(landmarks68) -> np.ndarray:
  """(5, 2) eye centres (iBUG 36-41, 42-47), nose tip (30), mouth corners (48, 54) from 68 points."""
  lm = landmarks68
  xp = jnp if isinstance(lm, jnp.ndarray) else np
  return xp.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def similarity_transform(src, dst) -> np.ndarray:
  """(2, 3) least-squares similarity (Umeyama, no reflection) mapping src (N,2) onto dst (N,2)."""
  src = np.asarray(src, np.float64)
  dst = np.asarray(dst, np.float64)
  if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
    raise ValueError(f"src and dst must both be (N, 2) with N >= 2, got {src.shape} and {dst.shape}")
  if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
    raise ValueError("similarity_transform: points contain NaN or infinity")
  scale, r, t = geometry.umeyama(src, dst)
  return np.concatenate([scale * r, t[:, None]], 1).astype(np.float32)


def similarity_transform_jax(src, dst):
  """Differentiable (2, 3) least-squares similarity mapping src (N, 2) onto dst (N, 2), in JAX.

  Closed form for ``[[a, -b], [b, a]] x + t``: with centred points,
  ``a = sum(s . d) / sum|s|^2`` and ``b = sum(s x d) / sum|s|^2``. Agrees with
  :func:`similarity_transform` (no reflection is possible in this family).
  """
  mu_s, mu_d = src.mean(0), dst.mean(0)
  s0, d0 = src - mu_s[None, :], dst - mu_d[None, :]
  den = jnp.maximum(jnp.sum(s0 * s0), 1e-12)
  a = jnp.sum(s0[:, 0] * d0[:, 0] + s0[:, 1] * d0[:, 1]) / den
  b = jnp.sum(s0[:, 0] * d0[:, 1] - s0[:, 1] * d0[:, 0]) / den
  r = jnp.array([[a, -b], [b, a]])
  t = mu_d - r @ mu_s
  return jnp.concatenate([r, t[:, None]], 1)


def arcface_transform_jax(landmarks68, size: int = 112):
  """:func:`arcface_transform` for traced landmarks (e.g. projected model landmarks)."""
  dst = jnp.asarray(ARCFACE_112 * (size / 112.0))
  return similarity_transform_jax(five_points(landmarks68) - 0.5, dst)


def invert_affine(m) -> np.ndarray:
  m = np.asarray(m, np.float64)
  a = np.linalg.inv(m[:, :2])
  return np.concatenate([a, -a @ m[:, 2:]], 1).astype(np.float32)


def apply_affine(m, points):
  """Maps (N, 2) points with a (2, 3) affine matrix."""
  xp = jnp if isinstance(points, jnp.ndarray) or isinstance(m, jnp.ndarray) else np
  return points @ xp.asarray(m)[:, :2].T + xp.asarray(m)[:, 2][None, :]


def index_map(m) -> np.ndarray:
  """A (2, 3) map of continuous coordinates as the same map of pixel indices (cv2's convention:
  index = continuous - 0.5 on both sides)."""
  out = np.array(m, np.float64)
  if out.shape != (2, 3):
    raise ValueError(f"an affine map must be (2, 3), got {out.shape}")
  out[:, 2] += out[:, :2] @ np.array([0.5, 0.5]) - 0.5
  return out


def continuous_map(m) -> np.ndarray:
  """The inverse of :func:`index_map`: a cv2 map of pixel indices as a map of continuous coordinates."""
  out = np.array(m, np.float64)
  if out.shape != (2, 3):
    raise ValueError(f"an affine map must be (2, 3), got {out.shape}")
  out[:, 2] += 0.5 - out[:, :2] @ np.array([0.5, 0.5])
  return out


def box_intersection(a, b) -> float:
  """Area shared by two (x0, y0, x1, y1) boxes."""
  iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  return float(iw * ih)


def box_area(b) -> float:
  return float((b[2] - b[0]) * (b[3] - b[1]))


def turn(image: np.ndarray, degrees: float, border: str = "constant"):
  """An image turned counter-clockwise about its centre onto a canvas that holds all of it.

  Returns (turned image, (2, 3) map of continuous coordinates: original -> turned); map points with
  :func:`apply_affine`. ``border``: 'constant' (black) or 'reflect'.
  """
  import cv2
  image = np.asarray(image)
  if image.ndim not in (2, 3) or border not in ("constant", "reflect") or not np.isfinite(degrees):
    raise ValueError(f"turn needs an (H, W[, C]) image, finite degrees and border 'constant' or 'reflect'; got "
                     f"shape {image.shape}, degrees {degrees!r}, border {border!r}")
  h, w = image.shape[:2]
  m = cv2.getRotationMatrix2D((w / 2, h / 2), float(degrees), 1.0)
  c, s = abs(m[0, 0]), abs(m[0, 1])
  nw, nh = int(np.ceil(h * s + w * c - 1e-6)), int(np.ceil(h * c + w * s - 1e-6))
  m[:, 2] += (nw / 2 - w / 2, nh / 2 - h / 2)
  mode = {"constant": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT}[border]
  out = cv2.warpAffine(image, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=mode)
  return out, continuous_map(m)


def warp_affine(image, m, out_height: int, out_width: int):
  """Differentiable bilinear warp equal to ``cv2.warpAffine(image, m, (W, H))`` inside the image
  (outside it: 0; cv2 also blends the half pixel at the border).

  Args:
    image: (H, W, C) source.
    m: (2, 3) matrix mapping source pixel indices to output pixel indices (cv2's
      convention); may be a traced array.
    out_height, out_width: output size (static).

  Returns:
    (out_height, out_width, C); gradients flow to ``image`` and ``m``.
  """
  if image.ndim != 3 or m.shape != (2, 3):
    raise ValueError(f"image must be (H, W, C) and m (2, 3), got {image.shape} and {m.shape}")
  a = m[:, :2]
  det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
  # a degenerate map (e.g. the alignment of landmarks that all project to one point) samples one
  # point instead of dividing by zero
  det = jnp.where(jnp.abs(det) < 1e-12, 1e-12, det)
  inv = jnp.stack([jnp.stack([a[1, 1], -a[0, 1]]), jnp.stack([-a[1, 0], a[0, 0]])]) / det
  ys, xs = jnp.meshgrid(jnp.arange(out_height, dtype=jnp.float32), jnp.arange(out_width, dtype=jnp.float32),
                        indexing="ij")
  d = jnp.stack([xs, ys], -1) - m[:, 2][None, None, :]
  src = d @ inv.T  # (H', W', 2) source pixel indices
  return texture_sampling.bilinear(image, src[..., 0], src[..., 1], border="zero")


def arcface_transform(landmarks68, size: int = 112) -> np.ndarray:
  """(2, 3) cv2-convention matrix aligning a face (68 landmarks, continuous coords) to the 112 template."""
  dst = ARCFACE_112 * (size / 112.0)
  # the template is in pixel-index coordinates (insightface); landmarks are continuous: shift by 0.5
  return similarity_transform(five_points(np.asarray(landmarks68)) - 0.5, dst)


def align_112(image, landmarks68):
  """The identity networks' 112x112 crop of a photo or render (differentiable w.r.t. the image)."""
  m = jnp.asarray(arcface_transform(landmarks68))
  return warp_affine(image, m, 112, 112)


def canvas_template(size: int) -> np.ndarray:
  """(5, 2) five-point template of the fitting canvas: the ArcFace layout shrunk to leave room
  for the chin, forehead and cheeks (the face spans about the middle 60%)."""
  return (ARCFACE_112 - 56.0) * (0.62 * size / 112.0) + np.array([size / 2.0, size * 0.47], np.float32)


def crop_to_canvas(image: np.ndarray, landmarks68: np.ndarray, size: int = 224):
  """Similarity-aligns a photo to the square fitting canvas.

  Returns:
    canvas: (size, size, 3) float image (cv2 bilinear, black outside the photo).
    landmarks: (68, 2) landmarks in canvas coordinates (continuous).
    to_canvas: (2, 3) continuous-coordinate matrix photo -> canvas (invert with
      :func:`invert_affine` to map results back onto the photo).
  """
  import cv2
  to_canvas = similarity_transform(five_points(np.asarray(landmarks68)), canvas_template(size))
  canvas = cv2.warpAffine(np.asarray(image, np.float32), index_map(to_canvas), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
  return canvas, apply_affine(to_canvas, np.asarray(landmarks68, np.float32)), to_canvas
