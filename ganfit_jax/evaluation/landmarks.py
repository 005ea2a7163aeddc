"""Landmark error (NME) under the normalisations datasets use, and readers of landmark files.

Coordinates follow this project's convention: continuous pixels, the centre of pixel (i, j) at
(j + 0.5, i + 0.5). iBUG ``.pts`` files count from 1 (the first pixel's centre is (1, 1)), so
:func:`read_landmarks` shifts them by -0.5 to land on the same convention (a 1-based index p is the
continuous coordinate p - 0.5).
"""

from __future__ import annotations

import json
import os
from typing import Dict, Sequence

import numpy as np

NORMALISATIONS = ("outer_eye", "inter_pupil", "bbox_diagonal")


def normaliser(gt: np.ndarray, kind: str = "outer_eye") -> float:
  """The length an NME divides by, from (68, 2) ground truth.

  outer_eye: outer eye corners (iBUG 36, 45; 300-W's "inter-ocular");
  inter_pupil: eye centres (means of 36-41 and 42-47);
  bbox_diagonal: diagonal of the landmarks' bounding box (e.g. AFLW2000-3D, Menpo's protocol uses
  sqrt(w * h); the diagonal is the common variant).
  """
  gt = np.asarray(gt, np.float64)
  if gt.shape[0] != 68:
    raise ValueError(f"normaliser needs 68 landmarks, got {gt.shape}")
  if kind == "outer_eye":
    return float(np.linalg.norm(gt[36, :2] - gt[45, :2]))
  if kind == "inter_pupil":
    return float(np.linalg.norm(gt[36:42, :2].mean(0) - gt[42:48, :2].mean(0)))
  if kind == "bbox_diagonal":
    return float(np.linalg.norm(gt[:, :2].max(0) - gt[:, :2].min(0)))
  raise ValueError(f"unknown normalisation {kind!r}; choose from {NORMALISATIONS}")


def nme(pred: np.ndarray, gt: np.ndarray, kind: str = "outer_eye", indices: Sequence[int] = None) -> float:
  """Mean point-to-point distance of (68, 2) prediction and ground truth over :func:`normaliser`."""
  pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
  if pred.shape != gt.shape or pred.ndim != 2 or pred.shape[1] < 2:
    raise ValueError(f"pred and gt must be the same (N, 2) shape, got {pred.shape} and {gt.shape}")
  idx = slice(None) if indices is None else list(indices)
  return float(np.linalg.norm(pred[idx, :2] - gt[idx, :2], axis=1).mean() / max(normaliser(gt, kind), 1e-9))


class LandmarkFileError(ValueError):
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
      if ext == ".ljson" or (isinstance(d, dict) and "landmarks" in d and isinstance(d["landmarks"], dict)):
        pts = np.asarray(d["landmarks"]["points"], np.float64)[:, ::-1]  # menpo stores (y, x)
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
  except (ValueError, KeyError, TypeError, OSError) as e:
    raise LandmarkFileError(f"{path}: not a readable landmark file ({type(e).__name__}: {e})") from e
  pts = np.asarray(pts, np.float64)
  if pts.ndim != 2 or pts.shape[0] != 68 or pts.shape[1] < dims:
    raise LandmarkFileError(f"{path}: expected 68 points with {dims} coordinates, got an array of shape {pts.shape}")
  if not np.all(np.isfinite(pts[:, :dims])):
    raise LandmarkFileError(f"{path}: landmarks contain NaN or infinity")
  return pts[:, :dims]


def nme_table(pred: Dict[str, np.ndarray], gt: Dict[str, np.ndarray], kind: str = "outer_eye") -> Dict[str, float]:
  """NME per name for the names both dicts hold."""
  return {k: nme(pred[k], gt[k], kind) for k in sorted(set(pred) & set(gt))}
