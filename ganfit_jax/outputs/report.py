"""A fitted photo (:class:`Result`, what a fit returns) and its report (:class:`Report`, what ``report.json`` holds).

``report.json`` is :meth:`Report.to_json` of the report :meth:`ganfit_jax.outputs.writer.Writer.write` returns;
dataset jobs and the CLI read the same object's attributes. :func:`read` loads a ``report.json`` back.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Dict, List, Optional, Sequence

import numpy as np

from ganfit_jax.face import PreparedFace
from ganfit_jax.types import FaceParams


@dataclasses.dataclass
class Result:
  """One fitted photo: its physical parameters, loss terms and the photo side it was fitted to.

  Attributes:
    source: the photo's path.
    prepared: the prepared photo (canvas, landmarks, detail crop, photo size).
    face: the fitted :class:`~ganfit_jax.types.FaceParams` of this photo (single example).
    final: each loss term (and ``landmark_rmse_px``) at the last step.
    history: term -> (steps,) values over the fit.
    seconds: wall time of the fit call this photo was part of.
    embedding: (D,) identity embedding of the photo (the fitting network).
    align_matrix: (2, 3) canvas -> 112 crop of the photo.
    stages: (name, steps) of the stages run.
    shared_with: the photos that share this one's shape and texture (empty when fitted alone).
  """
  source: str
  prepared: PreparedFace
  face: FaceParams
  final: Dict[str, float]
  history: Dict[str, np.ndarray]
  seconds: float
  embedding: np.ndarray
  align_matrix: np.ndarray
  stages: Sequence = ()
  shared_with: Sequence[str] = ()


@dataclasses.dataclass
class Report:
  """The contents of ``report.json`` (keys in this order; ``final_loss_terms_note`` only when set).

  Attributes:
    source: absolute path of the photo. preset, mode: the config's preset and the mode that ran.
    shared_identity_with: photos fitted with one shared shape and texture.
    final_loss_terms: term -> value at the last step (``landmark_rmse_px`` in canvas pixels).
    final_loss_terms_note: why image terms are missing (Fast-GANFit's geometry-only evaluation).
    identity_cosine_photo_vs_render: the fitting network's cosine between the photo and the final render
      composited over it (112 crop); identity_cosine_note says so.
    identity_net, texture_model, model: the scene's parts.
    texture_detail: whether the photo's detail is in the texture; texture_size: its side in pixels.
    landmarks_photo_px: (68, 2) projected model landmarks in photo pixels (continuous, first pixel centre 0.5).
    landmarks_3d_mm: (68, 3) model landmarks in the model frame, mm.
    faces_detected: faces found in the photo; photo_size: (H, W).
    timings_s: fit, write and the process's trace / lower / compile seconds so far.
    steps: stage -> steps; inits: random texture starts.
    assets: asset name (or path) -> version (:func:`ganfit_jax.assets.provenance`).
    exports: what --export wrote; versions: jax and ganfit_jax.
  """
  source: str
  preset: str
  mode: str
  shared_identity_with: List[str]
  final_loss_terms: Dict[str, float]
  identity_cosine_photo_vs_render: float
  identity_cosine_note: str
  identity_net: str
  texture_model: str
  model: str
  texture_detail: bool
  texture_size: int
  landmarks_photo_px: List[List[float]]
  landmarks_3d_mm: List[List[float]]
  faces_detected: int
  photo_size: List[int]
  timings_s: Dict[str, float]
  steps: Dict[str, int]
  inits: int
  assets: Dict[str, str]
  exports: Dict[str, object]
  versions: Dict[str, str]
  final_loss_terms_note: Optional[str] = None

  @property
  def landmark_rmse_px(self) -> Optional[float]:
    """The final landmark RMSE (canvas pixels), when the fit reported one."""
    v = self.final_loss_terms.get("landmark_rmse_px")
    return None if v is None else float(v)

  def to_dict(self) -> dict:
    """The JSON object of ``report.json`` (the keys users read, in their documented order)."""
    d = dataclasses.asdict(self)
    note = d.pop("final_loss_terms_note")
    out = {}
    for k, v in d.items():
      out[k] = v
      if k == "final_loss_terms" and note is not None:
        out["final_loss_terms_note"] = note
    return out

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=1)


def read(path: str) -> Report:
  """A ``report.json`` as a :class:`Report` (unknown keys are ignored: files of newer versions load)."""
  with open(path) as f:
    d = json.load(f)
  names = {f.name for f in dataclasses.fields(Report)}
  return Report(**{k: v for k, v in d.items() if k in names})


__all__ = ["Result", "Report", "read"]
