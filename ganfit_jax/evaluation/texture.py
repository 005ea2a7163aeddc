"""Texture and colour measures: Frechet distance, kernel inception-style distance, CIELAB colour error."""

from __future__ import annotations

from typing import Optional

import numpy as np


def frechet(a: np.ndarray, b: np.ndarray) -> float:
  """Frechet distance between Gaussians fitted to feature sets a (N, D) and b (M, D)."""
  from scipy import linalg
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
    raise ValueError(f"frechet needs two (N, D) feature sets with N >= 2, got {a.shape} and {b.shape}")
  mu1, mu2 = a.mean(0), b.mean(0)
  s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
  covmean = np.asarray(linalg.sqrtm(s1 @ s2)).real
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def kid(a: np.ndarray, b: np.ndarray, subset: int = 100, reps: int = 50, seed: int = 0) -> float:
  """Kernel distance (Binkowski et al. 2018: cubic polynomial kernel, unbiased MMD^2), x 1000."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  subset = min(subset, len(a), len(b))
  if subset < 2:
    raise ValueError("kid needs at least 2 samples in each set")
  rng = np.random.default_rng(seed)
  d = a.shape[1]
  k = lambda x, y: (x @ y.T / d + 1.0) ** 3  # noqa: E731
  vals = []
  for _ in range(reps):
    x = a[rng.choice(len(a), subset, replace=False)]
    y = b[rng.choice(len(b), subset, replace=False)]
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m = subset
    vals.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                - 2 * kxy.mean())
  return float(np.mean(vals)) * 1000.0


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
  """CIELAB (D65) of sRGB colours in [0, 1] (..., 3)."""
  c = np.asarray(rgb, np.float64)
  lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
  m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                [0.0193339, 0.1191920, 0.9503041]])
  xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
  f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
  return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def skin_mask(shape, landmarks68: np.ndarray) -> np.ndarray:
  """(H, W) bool: the face's skin from its 68 landmarks: inside the jaw line and brows, without the
  eyes, brows and mouth (each grown by 3% of the face width)."""
  import cv2
  lm = np.asarray(landmarks68, np.float64) - 0.5
  h, w = shape[:2]
  face = np.concatenate([lm[0:17], lm[26:16:-1]])
  m = np.zeros((h, w), np.uint8)
  cv2.fillPoly(m, [np.round(face).astype(np.int32)], 1)
  grow = max(1, int(round(0.03 * np.ptp(lm[:, 0]))))
  holes = np.zeros((h, w), np.uint8)
  for idx in (range(36, 42), range(42, 48), range(48, 60), range(17, 22), range(22, 27)):
    pts = lm[list(idx)]
    cv2.fillPoly(holes, [np.round(cv2.convexHull(pts.astype(np.float32))[:, 0]).astype(np.int32)], 1)
  holes = cv2.dilate(holes, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
  return (m > 0) & (holes == 0)


def skin_colour_error(photo: np.ndarray, render: np.ndarray, landmarks68: np.ndarray,
                      valid: Optional[np.ndarray] = None) -> float:
  """Skin colour error: CIE76 delta E between the mean CIELAB colour of the photo and of the render over
  the skin (:func:`skin_mask`, intersected with ``valid``, e.g. the render's coverage).

  ``photo`` and ``render`` are (H, W, 3) sRGB in [0, 1], in the same frame. A delta E of ~2.3 is a
  just-noticeable difference; the mean colour is compared (not texture detail).
  """
  m = skin_mask(photo.shape, landmarks68)
  if valid is not None:
    m &= np.asarray(valid, bool)
  if m.sum() < 10:
    return float("nan")
  a = rgb_to_lab(np.asarray(photo, np.float64)[m].mean(0))
  b = rgb_to_lab(np.asarray(render, np.float64)[m].mean(0))
  return float(np.linalg.norm(a - b))
