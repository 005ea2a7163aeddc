"""YuNet face detection (OpenCV Zoo, Apache-2.0) and 68 landmarks on its faces.

YuNet gives a box and five points (eye centres, nose tip, mouth corners) and finds
tilted, profile, small and partly hidden faces that dlib's frontal HOG detector
misses. The 68 points come from dlib's 300-W shape predictor run on an upright
crop: the crop is rotated so the eyes are level, and the predictor's box is placed
from the five points the way dlib's own detector would have boxed that face
(:data:`BOX_FROM_FIVE`, calibrated by ``python benchmarks/landmarks.py
--section=calibrate`` on DevTrain photos). OpenCV runs the int8 ONNX model
(``cv2.FaceDetectorYN``), so no new package is needed.

Points are in this project's continuous pixel coordinates (pixel (i, j) centred at
(j + 0.5, i + 0.5)).
"""

from __future__ import annotations

import threading
from typing import Tuple

import numpy as np

from ganfit_jax import assets
from ganfit_jax.face import image_io
from ganfit_jax.face.align import (apply_affine, box_area, box_intersection, five_points, index_map, invert_affine,
                                   turn)

DETECT_MAX_SIDE = 640  # YuNet finds faces down to ~10 px; larger inputs only cost time
SCORE_THRESHOLD = 0.6
NMS_THRESHOLD = 0.3

# the photo is searched upright and turned both ways (tilted and sideways faces; WORKSPACE.md)
ANGLES = (0.0, -40.0, 40.0, -80.0, 80.0)

# In the upright face frame (x along the eye line, origin at the eyes' midpoint, unit = distance
# from the eyes' midpoint to the mouth's), dlib's own box for the face is predicted as
# [centre x, centre y, side] = [1, nose x, eye distance] @ W: least squares over DevTrain LFW photos
# where both detectors find exactly one face (python benchmarks/landmarks.py --section=calibrate;
# WORKSPACE.md), from YuNet's five points (first pass) and from the five points of the 68 predicted
# (second pass).
BOX_FROM_FIVE = {
    "yunet": ((0.1093, 0.233, 1.7432), (-0.2167, 0.0464, -0.0376), (-0.2084, 0.2225, 0.6688)),
    "lm68": ((0.0604, 0.1906, 1.1307), (-0.0332, 0.0895, 0.0095), (-0.1395, 0.2525, 1.3387)),
}
CROP_BOX_SIDE = 160.0  # the predictor's box side in its crop (px)

_PER_THREAD = threading.local()


def _detector():
  """This thread's detector (cv2's detector keeps its input size, so it is not shared)."""
  if not hasattr(_PER_THREAD, "yunet"):
    import cv2
    from ganfit_jax.runtime import native_notices_dropped
    with native_notices_dropped(["setPreferableTarget Targets are not supported"]):  # OpenCV 5's DNN notice
      _PER_THREAD.yunet = cv2.FaceDetectorYN.create(assets.path("yunet"), "", (320, 320), SCORE_THRESHOLD,
                                                    NMS_THRESHOLD, 5000)
  return _PER_THREAD.yunet


def _detect_once(u8: np.ndarray, angle: float):
  """YuNet on the photo turned by ``angle`` degrees (counter-clockwise), results in photo coordinates."""
  if angle == 0.0:
    turned, back = u8, np.array([[1.0, 0, 0], [0, 1.0, 0]])
  else:
    turned, to_turned = turn(u8, angle)
    back = invert_affine(to_turned)
  det = _detector()
  det.setInputSize((turned.shape[1], turned.shape[0]))
  _, rows = det.detect(np.ascontiguousarray(turned[..., ::-1]))
  out = []
  for r in ([] if rows is None else rows):
    x, y, bw, bh = (float(v) for v in r[:4])
    # YuNet's points are pixel indices (OpenCV); +0.5 for continuous coordinates. Order: the
    # subject's right eye, left eye, nose tip, right and left mouth corners (= align.five_points').
    five = apply_affine(back, r[4:14].reshape(5, 2).astype(np.float64) + 0.5)
    centre = apply_affine(back, np.array([[x + bw / 2, y + bh / 2]]))[0]
    box = np.array([centre[0] - bw / 2, centre[1] - bh / 2, centre[0] + bw / 2, centre[1] + bh / 2])
    out.append((box, float(r[14]), five, angle))
  return out


def box_overlap(a: np.ndarray, b: np.ndarray) -> float:
  """Intersection of two (x0, y0, x1, y1) boxes over the smaller one's area."""
  return box_intersection(a, b) / max(min(box_area(a), box_area(b)), 1e-9)


def detect(u8: np.ndarray, max_side: int = DETECT_MAX_SIDE, angles=ANGLES):
  """[(box (x0, y0, x1, y1), score, five (5, 2))] for each face of an (H, W, 3) uint8 RGB image.

  The photo (downscaled to ``max_side``) is searched at each of ``angles``; a face found at several
  angles is kept once, from the most confident sighting. Boxes are the face's own box
  (upright in the face, centred where YuNet put it), in photo pixels.
  """
  small, scale = image_io.downscale_for_detection(u8, max_side)
  found = [d for angle in angles for d in _detect_once(small, angle)]
  # a face seen at several angles: the most confident sighting (a tilted face seen upright gets a
  # lower score and worse points than seen turned), ties to the angle nearest upright
  found.sort(key=lambda d: (-d[1], abs(d[3])))
  kept = []
  for d in found:
    if all(box_overlap(d[0], k[0]) < 0.5 for k in kept):
      kept.append(d)
  return [(box.astype(np.float32) / scale, score, (five / scale).astype(np.float32)) for box, score, five, _ in kept]


def upright_frame(five: np.ndarray) -> np.ndarray:
  """(2, 3) similarity: photo -> the upright face frame of :data:`BOX_FROM_FIVE` (eyes' midpoint at 0,
  eyes along +x, unit = eyes-to-mouth distance)."""
  five = np.asarray(five, np.float64)
  eyes, mouth = five[:2].mean(0), five[3:].mean(0)
  ex = five[1] - five[0]
  angle = np.arctan2(ex[1], ex[0])
  unit = max(float(np.linalg.norm(mouth - eyes)), 1e-6)
  c, s = np.cos(-angle) / unit, np.sin(-angle) / unit
  rot = np.array([[c, -s], [s, c]])
  return np.concatenate([rot, (-rot @ eyes)[:, None]], 1)


def box_features(five: np.ndarray) -> np.ndarray:
  """[1, nose x, eye distance] in the upright frame: the inputs of :data:`BOX_FROM_FIVE`."""
  up = apply_affine(upright_frame(five), np.asarray(five, np.float64))
  return np.array([1.0, up[2, 0], up[1, 0] - up[0, 0]])


def predictor_box(five: np.ndarray, coeffs) -> Tuple[np.ndarray, float]:
  """(centre (2,), side) of the predictor's box in the upright frame, from five points."""
  cx, cy, side = box_features(five) @ np.asarray(coeffs)
  return np.array([cx, cy]), float(side)


def face_roll(five: np.ndarray) -> float:
  """In-plane tilt of a face in degrees (the eye line against the photo's x axis)."""
  five = np.asarray(five, np.float64)
  ex = five[1] - five[0]
  return float(np.degrees(np.arctan2(ex[1], ex[0])))


def _predict_upright(predictor, u8: np.ndarray, five: np.ndarray, coeffs) -> np.ndarray:
  """dlib's predictor on an upright crop (eyes level) around the box :func:`predictor_box` places."""
  import cv2
  import dlib
  to_up = upright_frame(five)
  centre_up, side_up = predictor_box(five, coeffs)
  unit = 1.0 / float(np.linalg.norm(to_up[:, 0]))
  centre = apply_affine(invert_affine(to_up), centre_up[None])[0]
  turn = np.radians(face_roll(five))
  scale = CROP_BOX_SIDE / (side_up * unit)
  crop_side = int(round(2 * CROP_BOX_SIDE))
  c, s = scale * np.cos(-turn), scale * np.sin(-turn)
  m = np.array([[c, -s, 0.0], [s, c, 0.0]])  # photo -> crop: turned, scaled, the box centred
  m[:, 2] = crop_side / 2 - m[:, :2] @ centre
  crop = cv2.warpAffine(u8, index_map(m), (crop_side, crop_side), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
  lo = int(round(crop_side / 2 - CROP_BOX_SIDE / 2))
  hi = lo + int(round(CROP_BOX_SIDE))
  shape = predictor(np.ascontiguousarray(crop), dlib.rectangle(lo, lo, hi - 1, hi - 1))
  pts = np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()], np.float64)
  return apply_affine(invert_affine(m), pts)


def landmarks68(predictor, u8: np.ndarray, five: np.ndarray) -> np.ndarray:
  """dlib's 68 points for one YuNet face: predicted on an upright crop boxed from YuNet's five points,
  then again on a crop boxed from the five points of that first prediction; in photo pixels."""
  first = _predict_upright(predictor, u8, five, BOX_FROM_FIVE["yunet"])
  return _predict_upright(predictor, u8, five_points(first), BOX_FROM_FIVE["lm68"]).astype(np.float32)
