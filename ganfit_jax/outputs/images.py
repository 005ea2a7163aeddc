"""Pictures of a fit: PNG encoding, the convergence plot, side-by-side panels, photo-frame warps."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from ganfit_jax.face.image_io import to_uint8
from ganfit_jax.files import atomic_write


def encode_png(image01) -> bytes:
  """PNG bytes of an (H, W, 3) RGB image (float in [0, 1], or uint8)."""
  import cv2
  ok, buf = cv2.imencode(".png", np.ascontiguousarray(to_uint8(image01)[..., ::-1]))
  if not ok:
    raise OSError("PNG encoding failed")
  return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray:
  """(H, W, 3) RGB float32 in [0, 1] of PNG bytes (:func:`encode_png`'s inverse)."""
  import cv2
  bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if bgr is None:
    raise ValueError("not a PNG image")
  return bgr[..., ::-1].astype(np.float32) / 255.0


def write_png(path: str, image01) -> None:
  atomic_write(path, encode_png(image01), "wb")


def write_jpg(path: str, image, quality: int = 90) -> None:
  """JPEG of an (H, W, 3) RGB image (uint8, or float in [0, 1])."""
  import cv2
  img = to_uint8(image)
  ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
  if not ok:
    raise OSError("JPEG encoding failed")
  atomic_write(path, buf.tobytes(), "wb")


def to_photo_frame(image01: np.ndarray, photo_to_image: np.ndarray, photo_shape, background: float) -> np.ndarray:
  """Warps a rendered square (continuous coordinates) into the photo's frame.

  Args:
    image01: (R, R, 3) render.
    photo_to_image: (2, 3) continuous-coordinate affine from photo pixels to render pixels.
    photo_shape: (H, W) of the photo.
    background: grey level outside the render.
  """
  import cv2
  m = np.asarray(photo_to_image, np.float64)
  # continuous -> pixel-index coordinates on both sides: idx = p - 0.5
  m_idx = m.copy()
  m_idx[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
  h, w = photo_shape
  return cv2.warpAffine(np.asarray(image01, np.float32), m_idx, (int(w), int(h)),
                        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=(background,) * 3)


def convergence_plot(history: Dict[str, np.ndarray], stage_starts, terms: Sequence[str],
                     width: int = 900) -> np.ndarray:
  """One small log-scale panel per name of ``terms`` present in ``history`` (term -> (steps,)), over the
  steps, stage starts dashed; [0, 1] RGB."""
  import cv2
  terms = [k for k in terms if k in history]
  cols, ph = 3, 150
  pw = width // cols
  rows = -(-len(terms) // cols)
  img = np.full((rows * ph, cols * pw, 3), 255, np.uint8)
  for n, k in enumerate(terms):
    y = np.asarray(history[k], np.float64)
    r, c = divmod(n, cols)
    x0, y0 = c * pw + 40, r * ph + 20
    w, h = pw - 55, ph - 45
    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (200, 200, 200), 1)
    pos = y[np.isfinite(y) & (y > 0)]
    label = k
    if len(pos):
      ly = np.log10(np.clip(y, pos.min(), None))
      lo, hi = ly.min(), max(ly.max(), ly.min() + 1e-6)
      pts = np.stack([x0 + np.arange(len(y)) * w / max(len(y) - 1, 1), y0 + h - (ly - lo) / (hi - lo) * h], 1)
      cv2.polylines(img, [np.nan_to_num(pts).astype(np.int32)], False, (30, 90, 200), 1, cv2.LINE_AA)
      label = f"{k}: {y[-1]:.4g}"
      cv2.putText(img, f"{10 ** hi:.2g}", (c * pw + 2, y0 + 8), cv2.FONT_HERSHEY_PLAIN, 0.7, (0, 0, 0))
      cv2.putText(img, f"{10 ** lo:.2g}", (c * pw + 2, y0 + h), cv2.FONT_HERSHEY_PLAIN, 0.7, (0, 0, 0))
    for s in stage_starts:
      if 0 < s < len(y):
        xs = int(x0 + s * w / max(len(y) - 1, 1))
        for yy in range(y0, y0 + h, 6):
          cv2.line(img, (xs, yy), (xs, yy + 3), (150, 150, 150), 1)
    cv2.putText(img, label, (x0, r * ph + 14), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0))
  return img.astype(np.float32) / 255.0
