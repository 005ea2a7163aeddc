"""Face detection and 68-point landmarks: YuNet (default, :mod:`ganfit_jax.face.yunet`) or dlib's frontal
HOG detector, with dlib's 300-W shape predictor for the 68 points either way.

Landmarks are returned in this project's continuous pixel coordinates of the
original photo: x right, y down, the centre of pixel (i, j) at (j + 0.5, i + 0.5).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from typing import List, Union

import numpy as np

from ganfit_jax import assets
from ganfit_jax.face import image_io, yunet
from ganfit_jax.face.align import box_area, box_intersection, five_points
from ganfit_jax.face.errors import FaceBoxError, FaceIndexError, FaceTooSmallError, NoFaceError

MIN_FACE_PIXELS = 40  # inter-ocular distance is ~1/3 of this; smaller faces fit poorly
DETECT_MAX_SIDE = 1280  # dlib's
DETECTORS = ("combined", "yunet", "dlib")  # the default chosen by measurement: WORKSPACE.md
DEFAULT_DETECTOR = "combined"
# combined: a face dlib's detector also boxed and that is tilted less than this keeps dlib's box and
# points (dlib's predictor learnt from its detector's boxes, and its HOG detector rarely fires beyond ~30
# degrees); every other face, and every face dlib missed, gets YuNet's
COMBINED_MAX_ROLL = 30.0


@dataclasses.dataclass
class Face:
  """One detected face: box (x0, y0, x1, y1) in pixels, detector score, (68, 2) landmarks."""

  box: np.ndarray
  score: float
  landmarks: np.ndarray

  @property
  def size(self) -> float:
    return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))


_PER_THREAD = threading.local()


def _dlib_models():
  """This thread's detector and predictor (dlib's objects are not safe to share between threads)."""
  if not hasattr(_PER_THREAD, "models"):
    import dlib
    _PER_THREAD.models = (dlib.get_frontal_face_detector(), dlib.shape_predictor(_predictor_path()))
  return _PER_THREAD.models


@functools.lru_cache(maxsize=None)
def _predictor_path() -> str:
  return assets.path("dlib_landmarks68")


def detect_faces(image: np.ndarray, *, detector: str = DEFAULT_DETECTOR, upsample: int = -1,
                 max_side: int = DETECT_MAX_SIDE) -> List[Face]:
  """All faces in an (H, W, 3) float RGB image, largest first, each with 68 landmarks.

  Args:
    image: float RGB in [0, 1].
    detector: 'combined' (YuNet's faces; dlib's box and points for those dlib's detector also found
      tilted under COMBINED_MAX_ROLL), 'yunet' (YuNet alone: finds tilted, profile, small and partly
      hidden faces; 68 points on an upright crop) or 'dlib' (dlib's frontal HOG detector alone).
    upsample: dlib's upsampling count; -1 picks 1 for images under 640 px, else 0.
    max_side: (dlib) huge images are downscaled to this for detection (landmarks are
      then predicted on the full-resolution image).
  """
  if image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"image must be (H, W, 3), got {image.shape}")
  if detector not in DETECTORS:
    raise ValueError(f"detector {detector!r}: use one of {', '.join(DETECTORS)}")
  hog, predictor = _dlib_models()
  u8 = image_io.to_uint8(image)
  hog_faces = _hog_faces(hog, predictor, u8, upsample, max_side) if detector != "yunet" else []
  if detector == "dlib":
    faces = hog_faces
  else:
    faces = []
    for box, score, five in yunet.detect(u8):
      same = [f for f in hog_faces if yunet.box_overlap(box, f.box) >= 0.5]
      if same and abs(yunet.face_roll(five_points(same[0].landmarks))) < COMBINED_MAX_ROLL:
        lm = same[0].landmarks  # YuNet's box still: one box convention ranks the faces by size
      else:
        lm = yunet.landmarks68(predictor, u8, five)
      faces.append(Face(box=box, score=score, landmarks=lm))
  faces.sort(key=lambda f: -f.size)
  return faces


def _hog_faces(hog, predictor, u8: np.ndarray, upsample: int, max_side: int) -> List[Face]:
  small, s = image_io.downscale_for_detection(u8, max_side)
  if upsample < 0:
    upsample = 1 if max(small.shape[:2]) < 640 else 0
  rects, scores, _ = hog.run(np.ascontiguousarray(small), upsample, 0.0)
  faces = []
  for r, sc in zip(rects, scores):
    box = np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], np.float64) / s
    faces.append(Face(box=box.astype(np.float32), score=float(sc), landmarks=_predict(predictor, u8, box)))
  return faces


def _predict(predictor, u8: np.ndarray, box: np.ndarray) -> np.ndarray:
  import dlib
  rect = dlib.rectangle(int(box[0]), int(box[1]), int(box[2]) - 1, int(box[3]) - 1)
  shape = predictor(u8, rect)
  return np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()], np.float32)


def parse_box(box) -> np.ndarray:
  """A face box given as ``x,y,w,h`` (a string or 4 numbers, photo pixels) -> (x0, y0, x1, y1)."""
  try:
    vals = [float(v) for v in (box.split(",") if isinstance(box, str) else box)]
  except (TypeError, ValueError):
    vals = []
  if len(vals) != 4 or not np.all(np.isfinite(vals)) or vals[2] <= 0 or vals[3] <= 0:
    raise FaceBoxError(f"face box {box!r} must be x,y,w,h: four finite numbers (photo pixels) with w, h > 0, "
                       "e.g. --face_box=120,80,200,200")
  x, y, w, h = vals
  return np.array([x, y, x + w, y + h], np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
  inter = box_intersection(a, b)
  return inter / max(box_area(a) + box_area(b) - inter, 1e-9)


def face_near_box(image: np.ndarray, faces: List[Face], box) -> Face:
  """The detected face nearest a user's box (highest overlap, then nearest centre); when nothing was
  detected, the 68 landmarks are predicted inside the box itself (a box from another detector)."""
  box = parse_box(box)
  h, w = image.shape[:2]
  if box[2] <= 0 or box[3] <= 0 or box[0] >= w or box[1] >= h:
    raise FaceBoxError(f"face box {box.tolist()} (x0, y0, x1, y1) lies outside the {w}x{h} photo")
  if faces:
    centre = lambda b: np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])  # noqa: E731
    return max(faces, key=lambda f: (_iou(f.box, box), -float(np.linalg.norm(centre(f.box) - centre(box)))))
  _, predictor = _dlib_models()
  return Face(box=box, score=0.0, landmarks=_predict(predictor, image_io.to_uint8(image), box))


SELECTIONS = ("largest", "center", "all")  # or an index into the largest-first list


def select_face(faces: List[Face], select: Union[str, int] = "largest", min_size: int = MIN_FACE_PIXELS,
                source: str = "image", image_shape=None) -> Union[Face, List[Face]]:
  """Picks the face to fit: 'largest' (default), 'center' (box centre nearest the photo's centre; needs
  ``image_shape``), an index into the largest-first list, or 'all' (a list: every face at least
  ``min_size`` wide, largest first)."""
  if not faces:
    raise NoFaceError(f"no face found in {source}. Use a photo with a clearly visible, roughly frontal face "
                      f"(at least {min_size} px wide).")
  if select == "all":
    usable = [f for f in faces if f.size >= min_size]
    if not usable:
      raise FaceTooSmallError(f"every face in {source} is under {min_size} px wide (largest {faces[0].size:.0f} px)."
                              " Use a larger or closer photo.")
    return usable
  if select == "largest":
    chosen = [faces[0]]
  elif select == "center":
    if image_shape is None:
      raise ValueError("select='center' needs image_shape")
    cy, cx = image_shape[0] / 2, image_shape[1] / 2
    chosen = [min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)]
  elif isinstance(select, str) and not select.isdigit():
    raise FaceIndexError(f"--face={select!r}: use 'largest', 'center', 'all' or a face index (0 = largest)")
  else:
    i = int(select)
    if not 0 <= i < len(faces):
      raise FaceIndexError(f"face index {i} requested but {source} has {len(faces)} face(s) (0..{len(faces) - 1})")
    chosen = [faces[i]]
  for f in chosen:
    if f.size < min_size:
      raise FaceTooSmallError(f"the face in {source} is {f.size:.0f} px wide; the minimum is {min_size} px. "
                              "Use a larger or closer photo.")
  return chosen[0]
