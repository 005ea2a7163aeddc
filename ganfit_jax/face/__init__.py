"""Face front-end: robust image loading, detection, 68 landmarks, canvas crop and 112x112 alignment."""

import dataclasses
from typing import Union

import numpy as np

from ganfit_jax.face.align import (ARCFACE_112, align_112, apply_affine, arcface_transform, canvas_template,
                                   crop_to_canvas, five_points, invert_affine, similarity_transform, warp_affine)
from ganfit_jax.face.detect import MIN_FACE_PIXELS, Face, detect_faces, select_face
from ganfit_jax.face.errors import (FaceIndexError, FaceInputError, FaceTooSmallError, ImageReadError,
                                    ImageTooLargeError, NoFaceError, UnsupportedFormatError)
from ganfit_jax.face.image_io import load_image


@dataclasses.dataclass
class PreparedFace:
  """A photo ready for fitting.

  canvas: (S, S, 3) aligned float RGB; landmarks: (68, 2) on the canvas;
  to_canvas: (2, 3) photo -> canvas (continuous coords); photo_landmarks: (68, 2)
  on the photo; photo_shape: (H, W); num_faces: faces detected in the photo.
  """

  canvas: np.ndarray
  landmarks: np.ndarray
  to_canvas: np.ndarray
  photo_landmarks: np.ndarray
  photo_shape: tuple
  num_faces: int


def prepare(path: str, size: int = 224, select: Union[str, int] = "largest",
            min_face: int = MIN_FACE_PIXELS) -> PreparedFace:
  """load -> detect -> pick one face -> 68 landmarks -> canvas crop. Raises FaceInputError subclasses."""
  image = load_image(path)
  faces = detect_faces(image)
  face = select_face(faces, select, min_face, source=path)
  canvas, lm, m = crop_to_canvas(image, face.landmarks, size)
  return PreparedFace(canvas=canvas, landmarks=lm, to_canvas=m, photo_landmarks=face.landmarks,
                      photo_shape=image.shape[:2], num_faces=len(faces))


__all__ = ["ARCFACE_112", "align_112", "apply_affine", "arcface_transform", "canvas_template", "crop_to_canvas",
           "five_points", "invert_affine", "similarity_transform", "warp_affine", "MIN_FACE_PIXELS", "Face",
           "detect_faces", "select_face", "FaceIndexError", "FaceInputError", "FaceTooSmallError",
           "ImageReadError", "ImageTooLargeError", "NoFaceError", "UnsupportedFormatError", "load_image",
           "PreparedFace", "prepare"]
