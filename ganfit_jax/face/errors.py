"""Typed errors of the face front-end; each message says what is wrong and what to do."""


class FaceInputError(ValueError):
  """Base class: the input cannot be used for fitting. ``exit_code`` is what CLIs return."""

  exit_code = 2


class ImageReadError(FaceInputError):
  """The file is missing, unreadable or corrupt."""


class UnsupportedFormatError(FaceInputError):
  """The file is not an image format we can decode."""


class ImageTooLargeError(FaceInputError):
  """The image has more pixels than allowed (decompression-bomb guard)."""


class NoFaceError(FaceInputError):
  """No face was detected."""


class FaceTooSmallError(FaceInputError):
  """The detected face is smaller than the minimum usable size."""


class FaceIndexError(FaceInputError):
  """A face index was requested that does not exist."""


class FaceBoxError(FaceInputError):
  """A face box that is malformed or outside the photo."""
