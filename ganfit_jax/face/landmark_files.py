"""Reading 68-point landmark files: iBUG ``.pts`` (1-based), ``.json``, ``.ljson`` (menpo), ``.npy``.

Coordinates follow this project's convention: continuous pixels, the centre of pixel (i, j) at
(j + 0.5, i + 0.5). iBUG ``.pts`` files count from 1 (the first pixel's centre is (1, 1)), so
:func:`read_landmarks` shifts them by -0.5 (a 1-based index p is the continuous coordinate p - 0.5);
menpo's ``.ljson`` stores (y, x) with the first pixel's centre at (0, 0), so it is swapped and shifted
by +0.5.
Used by the front-end (user-supplied landmarks skip detection) and by the evaluation (ground truth).
"""

from __future__ import annotations

import json
import os

import numpy as np

from ganfit_jax.face.errors import FaceInputError


class LandmarkFileError(FaceInputError):
  """A landmark file that cannot be read; the message says why."""


def read_landmarks(path: str, dims: int = 2) -> np.ndarray:
  """(68, dims) landmarks from ``.pts`` (iBUG, 1-based), ``.json``, ``.ljson`` (menpo) or ``.npy``.

  ``.json``: a list of 68 points, or a dict with ``landmarks`` / ``landmarks_3d_mm`` /
  ``landmarks_photo_px`` (a ``report.json`` of tools/fit.py: 3D when dims == 3).
  """
  if not os.path.isfile(path):
    raise LandmarkFileError(f"landmark file not found: {path}")
  ext = os.path.splitext(path)[1].lower()
  try:
    if ext == ".pts":
      with open(path) as f:
        text = f.read()
      if "{" not in text:
        raise LandmarkFileError(f"{path}: no '{{' ... '}}' block of points (iBUG .pts)")
      body = text[text.index("{") + 1:text.rindex("}")]
      pts = np.array(body.split(), np.float64).reshape(-1, 2) - 0.5  # 1-based -> continuous
    elif ext in (".json", ".ljson"):
      with open(path) as f:
        d = json.load(f)
      if isinstance(d, dict) and ext == ".ljson" and isinstance(d.get("groups"), dict) and d["groups"]:
        d = next(iter(d["groups"].values()))  # menpo ljson v2/v3: the first landmark group
      if ext == ".ljson" or (isinstance(d, dict) and "landmarks" in d and isinstance(d["landmarks"], dict)):
        pts = np.asarray(d["landmarks"]["points"], np.float64)[:, ::-1] + 0.5  # menpo: (y, x), 0-based
      elif isinstance(d, dict):
        key = {3: ("landmarks_3d_mm", "landmarks"), 2: ("landmarks_photo_px", "landmarks")}[dims]
        found = [k for k in key if k in d]
        if not found:
          raise LandmarkFileError(f"{path}: no {' or '.join(key)} entry")
        pts = np.asarray(d[found[0]], np.float64)
      else:
        pts = np.asarray(d, np.float64)
    elif ext == ".npy":
      pts = np.asarray(np.load(path, allow_pickle=False), np.float64)
    else:
      raise LandmarkFileError(f"{path}: unknown landmark format {ext!r}; use .pts, .json, .ljson or .npy")
  except LandmarkFileError:
    raise
  except (ValueError, KeyError, TypeError, IndexError, OSError, EOFError) as e:  # EOFError: a cut .npy
    raise LandmarkFileError(f"{path}: not a readable landmark file ({type(e).__name__}: {e})") from e
  pts = np.asarray(pts, np.float64)
  if pts.ndim != 2 or pts.shape[0] != 68 or pts.shape[1] < dims:
    raise LandmarkFileError(f"{path}: expected 68 points with {dims} coordinates, got an array of shape {pts.shape}")
  if not np.all(np.isfinite(pts[:, :dims])):
    raise LandmarkFileError(f"{path}: landmarks contain NaN or infinity")
  return pts[:, :dims]


__all__ = ["LandmarkFileError", "read_landmarks"]
