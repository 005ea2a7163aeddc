"""Identity measures: verification accuracy, ROC AUC, and the independent judge.

The judge is dlib's ResNet-29 (``nets.identity.judge_embedding``), never a
network a fit was optimised against: :func:`check_judge` refuses a fitting
network, so a fit cannot grade itself.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

JUDGE = "dlib_resnet29"
JUDGE_THRESHOLD = 0.6  # dlib's own Euclidean-distance threshold for "same person"


def kfold_accuracy(scores: Sequence[float], same: Sequence[bool], folds: int = 10,
                   higher_is_same: bool = True) -> Tuple[float, float]:
  """(mean, std) accuracy over ``folds`` interleaved folds, each thresholded at the best value on the
  other folds (LFW's protocol)."""
  s = np.asarray(scores, np.float64) * (1 if higher_is_same else -1)
  y = np.asarray(same, bool)
  if s.shape != y.shape or len(s) < folds:
    raise ValueError(f"need one score per pair and at least {folds} pairs, got {s.shape} and {y.shape}")
  idx = np.arange(len(s)) % folds
  accs = []
  for k in range(folds):
    tr, te = idx != k, idx == k
    u = np.unique(s[tr])
    cands = np.concatenate([[u[0] - 1.0], 0.5 * (u[1:] + u[:-1]), [u[-1] + 1.0]])  # between scores
    acc_tr = [((s[tr] >= t) == y[tr]).mean() for t in cands]
    t = cands[int(np.argmax(acc_tr))]
    accs.append(((s[te] >= t) == y[te]).mean())
  return float(np.mean(accs)), float(np.std(accs))


def fixed_accuracy(scores, same, threshold: float, higher_is_same: bool = True) -> float:
  s, y = np.asarray(scores, np.float64), np.asarray(same, bool)
  pred = s >= threshold if higher_is_same else s < threshold
  return float((pred == y).mean())


def roc_auc(scores, same, higher_is_same: bool = True) -> float:
  """Area under the ROC curve (the probability that a random same pair outscores a random different one;
  ties count half)."""
  from scipy.stats import rankdata
  s = np.asarray(scores, np.float64) * (1 if higher_is_same else -1)
  y = np.asarray(same, bool)
  n1, n0 = int(y.sum()), int((~y).sum())
  if n1 == 0 or n0 == 0:
    raise ValueError("roc_auc needs both same and different pairs")
  r = rankdata(s)
  return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def verification(scores, same, higher_is_same: bool = True, threshold=None) -> dict:
  """10-fold accuracy, fixed-threshold accuracy (when given) and ROC AUC of pair scores."""
  acc, std = kfold_accuracy(scores, same, higher_is_same=higher_is_same)
  out = dict(accuracy_10fold=acc, accuracy_std=std, roc_auc=roc_auc(scores, same, higher_is_same), pairs=len(same))
  if threshold is not None:
    out["accuracy_fixed"] = fixed_accuracy(scores, same, threshold, higher_is_same)
    out["threshold"] = threshold
  return out


def check_judge(judge: str, fitting_net: str) -> None:
  """Refuses to judge identity with the network the fit used."""
  if judge.split("-")[0] == fitting_net.split("-")[0]:
    raise ValueError(f"the identity judge ({judge}) must not be the fitting network ({fitting_net}): a fit would "
                     "grade itself")


def judge_embedding(image, landmarks68) -> np.ndarray:
  from ganfit_jax.nets import identity
  return identity.judge_embedding(image, landmarks68)


def judge_cosine(image_a, landmarks_a, image_b, landmarks_b) -> float:
  """The judge's cosine similarity between the faces of two images (each with its 68 landmarks)."""
  a, b = judge_embedding(image_a, landmarks_a), judge_embedding(image_b, landmarks_b)
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def judge_distance(image_a, landmarks_a, image_b, landmarks_b) -> float:
  """The judge's Euclidean descriptor distance (dlib: < 0.6 means the same person)."""
  return float(np.linalg.norm(judge_embedding(image_a, landmarks_a) - judge_embedding(image_b, landmarks_b)))
