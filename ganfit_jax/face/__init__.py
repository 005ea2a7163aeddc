"""Face front-end: robust image loading, detection, 68 landmarks, canvas crop and 112x112 alignment."""

import dataclasses
from typing import Optional, Union

import numpy as np

from ganfit_jax.face.align import (ARCFACE_112, align_112, apply_affine, arcface_transform, canvas_template,
                                   crop_to_canvas, five_points, invert_affine, similarity_transform, warp_affine)
from ganfit_jax.face.detect import MIN_FACE_PIXELS, Face, detect_faces, select_face
from ganfit_jax.face.errors import (FaceIndexError, FaceInputError, FaceTooSmallError, ImageReadError,
                                    ImageTooLargeError, NoFaceError, UnsupportedFormatError)
from ganfit_jax.face import image_io
from ganfit_jax.face.image_io import load_image


@dataclasses.dataclass
class PreparedFace:
  """A photo ready for fitting.

  canvas: (S, S, 3) aligned float RGB; landmarks: (68, 2) on the canvas;
  to_canvas: (2, 3) photo -> canvas (continuous coords); photo_landmarks: (68, 2)
  on the photo; photo_shape: (H, W); num_faces: faces detected in the photo;
  detail: (D, D, 3) uint8, the same crop at DETAIL_SCALE x the canvas resolution (for photo detail).
  """

  canvas: np.ndarray
  landmarks: np.ndarray
  to_canvas: np.ndarray
  photo_landmarks: np.ndarray
  photo_shape: tuple
  num_faces: int
  detail: Optional[np.ndarray] = None


DETAIL_SCALE = 4  # the detail crop's side in canvas sides (224 -> 896 px)


def prepare(path: str, size: int = 224, select: Union[str, int] = "largest",
            min_face: int = MIN_FACE_PIXELS) -> PreparedFace:
  """load -> detect -> pick one face -> 68 landmarks -> canvas crop. Raises FaceInputError subclasses."""
  return prepare_image(load_image(path), size, select, min_face, source=path)


def prepare_image(image: np.ndarray, size: int = 224, select: Union[str, int] = "largest",
                  min_face: int = MIN_FACE_PIXELS, source: str = "image") -> PreparedFace:
  """:func:`prepare` for an (H, W, 3) float RGB image already in memory."""
  faces = detect_faces(image)
  face = select_face(faces, select, min_face, source=source)
  return from_landmarks(image, face.landmarks, size, num_faces=len(faces))


def from_landmarks(image: np.ndarray, landmarks68: np.ndarray, size: int = 224, num_faces: int = 1) -> PreparedFace:
  """A :class:`PreparedFace` from an image and 68 landmarks found elsewhere (a cache, a dataset's files)."""
  landmarks68 = np.asarray(landmarks68, np.float32)
  if landmarks68.shape != (68, 2) or not np.all(np.isfinite(landmarks68)):
    raise FaceInputError(f"landmarks must be 68 finite (x, y) photo pixels (iBUG order), got shape "
                         f"{landmarks68.shape}; pass dlib-style 68-point landmarks")
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[2] != 3:
    raise FaceInputError(f"image must be (H, W, 3) RGB, got shape {image.shape}; load it with face.load_image")
  canvas, lm, m = crop_to_canvas(image, landmarks68, size)
  detail, _, _ = crop_to_canvas(image, landmarks68, size * DETAIL_SCALE)
  return PreparedFace(canvas=canvas, landmarks=lm, to_canvas=m, photo_landmarks=landmarks68,
                      photo_shape=image.shape[:2], num_faces=num_faces, detail=image_io.to_uint8(detail))


__all__ = ["ARCFACE_112", "align_112", "apply_affine", "arcface_transform", "canvas_template", "crop_to_canvas",
           "five_points", "invert_affine", "similarity_transform", "warp_affine", "MIN_FACE_PIXELS", "Face",
           "detect_faces", "select_face", "FaceIndexError", "FaceInputError", "FaceTooSmallError",
           "ImageReadError", "ImageTooLargeError", "NoFaceError", "UnsupportedFormatError", "load_image",
           "PreparedFace", "prepare", "prepare_image", "from_landmarks"]
