"""Landmark error (NME) under the normalisations datasets use.

Coordinates follow this project's convention: continuous pixels, the centre of pixel (i, j) at
(j + 0.5, i + 0.5). Landmark files (ground truth) are read by
:func:`ganfit_jax.face.landmark_files.read_landmarks` (re-exported here).
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from ganfit_jax.face.landmark_files import LandmarkFileError, read_landmarks

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


def nme_table(pred: Dict[str, np.ndarray], gt: Dict[str, np.ndarray], kind: str = "outer_eye") -> Dict[str, float]:
  """NME per name for the names both dicts hold."""
  return {k: nme(pred[k], gt[k], kind) for k in sorted(set(pred) & set(gt))}


__all__ = ["NORMALISATIONS", "normaliser", "nme", "nme_table", "LandmarkFileError", "read_landmarks"]
