"""Robust image loading: EXIF orientation, greyscale, alpha, 16-bit, CMYK, palette; size guards."""

from __future__ import annotations

import os
from typing import Tuple

import numpy as np

from ganfit_jax.face.errors import ImageReadError, ImageTooLargeError, UnsupportedFormatError

MAX_PIXELS = 64_000_000  # refuse larger images (a 8000 x 8000 photo is 64 MP)
MAX_FILE_BYTES = 200 * 2**20


def load_image(path: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
  """Reads an image as (H, W, 3) float32 RGB in [0, 1], upright per EXIF.

  Alpha is composited over white, greyscale is replicated, 16-bit is scaled,
  CMYK and palette images are converted. Raises a FaceInputError subclass
  with a message naming the problem.
  """
  from PIL import Image, ImageOps, UnidentifiedImageError

  if not os.path.exists(path):
    raise ImageReadError(f"image not found: {path}")
  if os.path.isdir(path):
    raise ImageReadError(f"{path} is a directory; pass an image file (or use --input_dir)")
  size = os.path.getsize(path)
  if size == 0:
    raise ImageReadError(f"{path} is empty (0 bytes)")
  if size > MAX_FILE_BYTES:
    raise ImageTooLargeError(f"{path} is {size / 2**20:.0f} MiB; the limit is {MAX_FILE_BYTES / 2**20:.0f} MiB")
  try:
    with Image.open(path) as im:
      w, h = im.size
      if w * h > max_pixels:
        raise ImageTooLargeError(f"{path} is {w}x{h} = {w * h / 1e6:.0f} MP; the limit is {max_pixels / 1e6:.0f} MP. "
                                 "Downscale it first.")
      im = ImageOps.exif_transpose(im)
      arr = _to_rgb(im)
  except ImageTooLargeError:
    raise
  except UnidentifiedImageError as e:
    raise UnsupportedFormatError(f"{path} is not an image format we can read (JPEG, PNG, BMP, TIFF, WebP, ...)") from e
  except Image.DecompressionBombError as e:
    raise ImageTooLargeError(f"{path}: {e}") from e
  except (OSError, SyntaxError, ValueError) as e:
    raise ImageReadError(f"{path} is corrupt or truncated: {e}") from e
  if not np.all(np.isfinite(arr)):
    raise ImageReadError(f"{path} contains NaN or infinite values")
  return arr


def _to_rgb(im) -> np.ndarray:
  mode = im.mode
  if mode in ("I;16", "I;16B", "I;16L", "I"):
    a = np.asarray(im, dtype=np.float32)
    a = a / (65535.0 if a.max() > 255 else 255.0)
    return np.repeat(np.clip(a, 0, 1)[..., None], 3, -1)
  if mode == "F":
    a = np.asarray(im, dtype=np.float32)
    return np.repeat(np.clip(a, 0, 1)[..., None], 3, -1)
  if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
    rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
    alpha = rgba[..., 3:4]
    return rgba[..., :3] * alpha + (1.0 - alpha)
  return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def to_uint8(image) -> np.ndarray:
  """An image as uint8: float values in [0, 1] are clipped, scaled and rounded; uint8 passes through. The one
  float -> 8-bit conversion of the project (pictures, textures, detector inputs)."""
  a = np.asarray(image)
  if a.dtype == np.uint8:
    return a
  return (np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def downscale_for_detection(image: np.ndarray, max_side: int) -> Tuple[np.ndarray, float]:
  """Returns (image resized so its longer side <= max_side, scale factor applied)."""
  import cv2
  h, w = image.shape[:2]
  s = min(1.0, max_side / max(h, w))
  if s >= 1.0:
    return image, 1.0
  return cv2.resize(image, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA), s
