"""Face tracking through a clip: detect on the first frame and whenever the track is lost; otherwise the face
box comes from the previous frame's 68 points (dlib's shape predictor on that box, no detector run; MediaPipe's
face-presence score says whether a face is still there).

The box a detector would give is predicted from the points' bounds (dlib's HOG box, measured on 60 DevTrain
photos: centre 0.12 of the points' height above theirs, sides 1.10 / 1.13 of their width / height). A
tracked frame whose points jump (box overlap with the previous one under :data:`MIN_OVERLAP`) or shrink below
the minimum face size is detected again; the detector also runs every :data:`REDETECT_EVERY` frames, and the
face it finds nearest the track replaces the tracked points (no slow drift). Temporal smoothing of the
points (zero lag, :func:`smooth_tracks`) is for the canvas crops only; the fit sees each frame's own points.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional

import numpy as np

from ganfit_jax.face import detect as detect_lib
from ganfit_jax.face import image_io

BOX_SHIFT_Y = -0.12  # the detector's box centre above the points' centre, in points' heights
BOX_SCALE = (1.10, 1.13)  # its sides over the points' width and height
MIN_OVERLAP = 0.4  # a tracked box overlapping the previous one less than this: lost, detect again
REDETECT_EVERY = 30  # frames between detector runs while tracking


def box_from_points(points: np.ndarray) -> np.ndarray:
  """(x0, y0, x1, y1): the box dlib's detector would give the face with these 68 points."""
  lo, hi = points.min(0), points.max(0)
  size = (hi - lo) * np.asarray(BOX_SCALE)
  centre = (lo + hi) / 2 + np.array([0.0, BOX_SHIFT_Y * (hi[1] - lo[1])])
  return np.concatenate([centre - size / 2, centre + size / 2]).astype(np.float64)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
  from ganfit_jax.face.align import box_area, box_intersection
  inter = box_intersection(a, b)
  return float(inter / max(box_area(a) + box_area(b) - inter, 1e-9))


def present(image: np.ndarray, points: np.ndarray) -> bool:
  """Whether a face is where ``points`` say: MediaPipe's face-presence probability for the region (one pass
  of :func:`ganfit_jax.face.facemesh.detect`) at least :data:`ganfit_jax.face.DENSE_MIN_SCORE`. dlib's
  predictor returns 68 points for any box, face or not."""
  from ganfit_jax.face import DENSE_MIN_SCORE, facemesh
  return facemesh.detect(image, points, passes=1).score >= DENSE_MIN_SCORE


@dataclasses.dataclass
class Tracker:
  """Call with each frame in order (``(H, W, 3)`` float RGB); returns the face's (68, 2) points (frame pixels)
  or None (no face). ``detector``: as :func:`ganfit_jax.face.detect_faces`; ``min_face``: faces narrower
  than this many pixels count as none. ``detections`` counts detector runs (the rest were tracked)."""
  detector: str = detect_lib.DEFAULT_DETECTOR
  min_face: int = detect_lib.MIN_FACE_PIXELS
  previous: Optional[np.ndarray] = None
  since_detection: int = 0
  detections: int = 0

  def _detect(self, image) -> Optional[np.ndarray]:
    self.detections += 1
    self.since_detection = 0
    faces = [f for f in detect_lib.detect_faces(image, detector=self.detector) if f.size >= self.min_face]
    if not faces:
      return None
    if self.previous is not None:  # the face nearest the track, not merely the largest
      prev = box_from_points(self.previous)
      faces.sort(key=lambda f: -_overlap(box_from_points(f.landmarks), prev))
    return faces[0].landmarks

  def __call__(self, image: np.ndarray) -> Optional[np.ndarray]:
    points = None
    if self.previous is not None and self.since_detection < REDETECT_EVERY:
      _, predictor = detect_lib._dlib_models()
      box = box_from_points(self.previous)
      points = detect_lib._predict(predictor, image_io.to_uint8(image), box)
      size = min(np.ptp(points[:, 0]), np.ptp(points[:, 1]))
      if (_overlap(box_from_points(points), box) < MIN_OVERLAP or size < 0.5 * self.min_face
          or not present(image, points)):
        points = None
      else:
        self.since_detection += 1
    if points is None:
      points = self._detect(image)
    self.previous = points
    return points


def smooth_tracks(points: np.ndarray, found: np.ndarray, sigma: float = 1.5) -> np.ndarray:
  """(F, ...) per-frame values smoothed over time with zero lag: at each frame, a straight line fitted by
  least squares to the frames around it, weighted by a Gaussian of ``sigma`` frames (a local-linear
  smoother: a value moving at constant speed is left as it is, also at the clip's ends, where a plain
  Gaussian average would lag). Frames without a face (``found`` False) keep their values and split the clip:
  no frame borrows from across a gap. ``sigma`` 0 returns the values."""
  points = np.asarray(points, np.float64)
  found = np.asarray(found, bool)
  if sigma <= 0 or len(points) < 2:
    return points.copy()
  radius = int(np.ceil(3 * sigma))
  out = points.copy()
  for seg in segments(found):
    x = points[seg[0]:seg[1]]
    flat = x.reshape(len(x), -1)
    s0, s1, s2 = (np.zeros((len(x), 1)) for _ in range(3))
    t0, t1 = np.zeros_like(flat), np.zeros_like(flat)
    for k in range(-radius, radius + 1):
      lo, hi = max(0, -k), min(len(x), len(x) - k)
      if lo >= hi:
        continue
      w = np.exp(-0.5 * (k / sigma) ** 2)
      s0[lo:hi] += w
      s1[lo:hi] += w * k
      s2[lo:hi] += w * k * k
      t0[lo:hi] += w * flat[lo + k:hi + k]
      t1[lo:hi] += w * k * flat[lo + k:hi + k]
    det = s0 * s2 - s1 * s1
    line = (s2 * t0 - s1 * t1) / np.where(det > 1e-9, det, 1.0)
    out[seg[0]:seg[1]] = np.where(det > 1e-9, line, t0 / s0).reshape(x.shape)
  return out


def segments(found: np.ndarray) -> List[tuple]:
  """[(start, stop), ...] runs of consecutive frames with a face."""
  found = np.asarray(found, bool)
  runs, start = [], None
  for i, f in enumerate(found):
    if f and start is None:
      start = i
    elif not f and start is not None:
      runs.append((start, i))
      start = None
  if start is not None:
    runs.append((start, len(found)))
  return runs


__all__ = ["Tracker", "present", "box_from_points", "smooth_tracks", "segments", "MIN_OVERLAP", "REDETECT_EVERY"]
