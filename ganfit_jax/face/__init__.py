"""Face front-end: robust image loading, detection, 68 landmarks, MediaPipe's 478 dense points, canvas crop and
112x112 alignment."""

import dataclasses
from typing import List, Optional, Union

import numpy as np

from ganfit_jax.face.align import (ARCFACE_112, align_112, apply_affine, arcface_transform, canvas_template,
                                   crop_to_canvas, five_points, invert_affine, similarity_transform, turn, warp_affine)
from ganfit_jax.face.detect import (DEFAULT_DETECTOR, DETECTORS, MIN_FACE_PIXELS, SELECTIONS, Face,
                                    detect_faces, face_near_box, parse_box, select_face)
from ganfit_jax.face.errors import (FaceBoxError, FaceIndexError, FaceInputError, FaceTooSmallError, ImageReadError,
                                    ImageTooLargeError, NoFaceError, UnsupportedFormatError)
from ganfit_jax.face import facemesh, image_io
from ganfit_jax.face.image_io import load_image
from ganfit_jax.face.landmark_files import LandmarkFileError, read_landmarks


@dataclasses.dataclass
class PreparedFace:
  """A photo ready for fitting.

  canvas: (S, S, 3) aligned float RGB; landmarks: (68, 2) on the canvas;
  to_canvas: (2, 3) photo -> canvas (continuous coords); photo_landmarks: (68, 2)
  on the photo; photo_shape: (H, W); num_faces: faces detected in the photo;
  detail: (D, D, 3) uint8, the same crop at DETAIL_SCALE x the canvas resolution (for photo detail);
  detected: the landmarks came from the detector (False: given by the user or a cache);
  dense: (478, 2) MediaPipe's face-mesh points on the canvas (:mod:`ganfit_jax.face.facemesh`), None when not
  asked for or when its network finds no face in the region; photo_dense: the same on the photo.
  """

  canvas: np.ndarray
  landmarks: np.ndarray
  to_canvas: np.ndarray
  photo_landmarks: np.ndarray
  photo_shape: tuple
  num_faces: int
  detail: Optional[np.ndarray] = None
  detected: bool = False
  dense: Optional[np.ndarray] = None
  photo_dense: Optional[np.ndarray] = None


DETAIL_SCALE = 4  # the detail crop's side in canvas sides (224 -> 896 px); configs/fit.py: detail_scale
DENSE_MIN_SCORE = 0.5  # MediaPipe's face-presence probability below which its points are not used


def prepare(path: str, size: int = 224, select: Union[str, int] = "largest",
            min_face: int = MIN_FACE_PIXELS, landmarks=None, face_box=None,
            detector: str = DEFAULT_DETECTOR, detail_scale: int = DETAIL_SCALE, dense: bool = True) -> PreparedFace:
  """load -> detect -> pick one face -> 68 landmarks (-> 478 dense points) -> canvas crop. Raises
  FaceInputError subclasses.

  ``landmarks``: a landmark file (:func:`read_landmarks`: ``.pts``, ``.json``, ``.npy``) or a (68, 2) array
  in photo pixels: detection is skipped. ``face_box``: ``x,y,w,h`` (photo pixels): the detected face nearest
  this box instead of ``select``. ``detector``: one of :data:`DETECTORS`. ``detail_scale``: the detail
  crop's side in canvas sides (0: no detail crop). ``dense``: also MediaPipe's 478 points
  (:mod:`ganfit_jax.face.facemesh`), from the 68 points whether detected or given.
  """
  return prepare_image(load_image(path), size, select, min_face, source=path, landmarks=landmarks,
                       face_box=face_box, detector=detector, detail_scale=detail_scale, dense=dense)


def prepare_image(image: np.ndarray, size: int = 224, select: Union[str, int] = "largest",
                  min_face: int = MIN_FACE_PIXELS, source: str = "image", landmarks=None,
                  face_box=None, detector: str = DEFAULT_DETECTOR, detail_scale: int = DETAIL_SCALE,
                  dense: bool = True) -> PreparedFace:
  """:func:`prepare` for an (H, W, 3) float RGB image already in memory."""
  if landmarks is not None:
    lm = read_landmarks(landmarks) if isinstance(landmarks, str) else np.asarray(landmarks, np.float32)
    h, w = image.shape[:2]
    inside = (lm[:, 0] >= 0) & (lm[:, 0] <= w) & (lm[:, 1] >= 0) & (lm[:, 1] <= h)
    if np.asarray(lm).shape == (68, 2) and inside.mean() < 0.5:
      raise LandmarkFileError(f"the landmarks given for {source} lie mostly outside its {w}x{h} pixels; are they "
                              "for another photo or in another unit (they must be photo pixels)?")
    return from_landmarks(image, lm, size, num_faces=1, detail_scale=detail_scale, dense=dense)
  faces = detect_faces(image, detector=detector)
  if face_box is not None:
    face = face_near_box(image, faces, face_box)
    if face.size < min_face:
      raise FaceTooSmallError(f"the face near the box in {source} is {face.size:.0f} px wide; the minimum is "
                              f"{min_face} px. Use a larger or closer photo.")
  else:
    if select == "all":
      raise ValueError("select='all' gives several faces: use prepare_faces")
    face = select_face(faces, select, min_face, source=source, image_shape=image.shape[:2])
  return from_landmarks(image, face.landmarks, size, num_faces=max(len(faces), 1), detected=True,
                        detail_scale=detail_scale, dense=dense)


def prepare_faces(path: str, size: int = 224, min_face: int = MIN_FACE_PIXELS,
                  detector: str = DEFAULT_DETECTOR, detail_scale: int = DETAIL_SCALE,
                  dense: bool = True) -> List[PreparedFace]:
  """Every face of a photo at least ``min_face`` wide (largest first), each prepared as :func:`prepare`."""
  image = load_image(path)
  faces = detect_faces(image, detector=detector)
  return [from_landmarks(image, f.landmarks, size, num_faces=len(faces), detected=True, detail_scale=detail_scale,
                         dense=dense)
          for f in select_face(faces, "all", min_face, source=path)]


def from_landmarks(image: np.ndarray, landmarks68: np.ndarray, size: int = 224, num_faces: int = 1,
                   detected: bool = False, detail_scale: int = DETAIL_SCALE, dense: bool = True,
                   crop_landmarks: Optional[np.ndarray] = None) -> PreparedFace:
  """A :class:`PreparedFace` from an image and 68 landmarks found elsewhere (a cache, a dataset's files);
  ``dense``: also MediaPipe's 478 points found from them. ``crop_landmarks``: (68, 2) points the canvas crop
  is computed from instead (e.g. a video track's smoothed points: crops that do not jitter)."""
  landmarks68 = np.asarray(landmarks68, np.float32)
  if landmarks68.shape != (68, 2) or not np.all(np.isfinite(landmarks68)):
    raise FaceInputError(f"landmarks must be 68 finite (x, y) photo pixels (iBUG order), got shape "
                         f"{landmarks68.shape}; pass dlib-style 68-point landmarks")
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[2] != 3:
    raise FaceInputError(f"image must be (H, W, 3) RGB, got shape {image.shape}; load it with face.load_image")
  crop = landmarks68 if crop_landmarks is None else np.asarray(crop_landmarks, np.float32)
  if crop.shape != (68, 2) or not np.all(np.isfinite(crop)):
    raise FaceInputError(f"crop_landmarks must be 68 finite (x, y) photo pixels, got shape {crop.shape}")
  canvas, _, m = crop_to_canvas(image, crop, size)
  lm = apply_affine(m, landmarks68)  # as crop_to_canvas maps them
  detail = crop_to_canvas(image, crop, size * int(detail_scale))[0] if detail_scale else None
  photo_dense = canvas_dense = None
  if dense:
    found = facemesh.detect(image, landmarks68)
    if found.score >= DENSE_MIN_SCORE:
      photo_dense = found.points
      canvas_dense = apply_affine(m, photo_dense).astype(np.float32)
  return PreparedFace(canvas=canvas, landmarks=lm, to_canvas=m, photo_landmarks=landmarks68,
                      photo_shape=image.shape[:2], num_faces=num_faces,
                      detail=None if detail is None else image_io.to_uint8(detail), detected=detected,
                      dense=canvas_dense, photo_dense=photo_dense)


__all__ = ["ARCFACE_112", "align_112", "apply_affine", "arcface_transform", "canvas_template", "crop_to_canvas",
           "five_points", "invert_affine", "similarity_transform", "turn", "warp_affine", "DEFAULT_DETECTOR",
           "DETECTORS", "MIN_FACE_PIXELS", "Face", "detect_faces", "select_face", "face_near_box", "parse_box",
           "FaceBoxError", "LandmarkFileError", "read_landmarks", "FaceIndexError", "FaceInputError",
           "FaceTooSmallError", "ImageReadError", "ImageTooLargeError", "NoFaceError", "UnsupportedFormatError",
           "load_image", "facemesh", "DENSE_MIN_SCORE", "PreparedFace", "prepare", "prepare_image", "prepare_faces",
           "from_landmarks", "SELECTIONS"]
