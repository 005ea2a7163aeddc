"""Reading a video frame by frame: OpenCV's ``VideoCapture`` (the FFmpeg build inside the opencv-python wheel
the project already installs; PyAV would add a second FFmpeg for the same containers and codecs).

Frames are streamed (one decoded frame in memory at a time), chosen by ``START:STOP:STEP`` and a count limit,
and scaled down when their longer side exceeds :data:`MAX_SIDE` (landmarks and outputs are reported in the
video's own pixels: :attr:`Frame.scale` maps them back).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Optional, Tuple

import numpy as np

from ganfit_jax.face.errors import FaceInputError

MAX_SIDE = 1920        # frames with a longer side are scaled down to it for detection and fitting
MAX_SOURCE_SIDE = 8192  # refuse larger frames (a decoder would need GiBs a frame)
VIDEO_EXTS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts")


class VideoInputError(FaceInputError):
  """A video that cannot be used: missing, not a video, no decodable frame, a bad frame range (exit 2)."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """What the container says: frames a second (``fps``), frame count (an estimate for some containers),
  width and height in pixels."""
  path: str
  fps: float
  frame_count: int
  width: int
  height: int


@dataclasses.dataclass
class Frame:
  """One decoded frame: ``index`` in the video, ``time_s`` (index / fps), ``image`` (H, W, 3) float32 RGB in
  [0, 1] after scaling, ``scale`` = image pixels per video pixel (1 unless the frame was larger than
  :data:`MAX_SIDE`)."""
  index: int
  time_s: float
  image: np.ndarray
  scale: float = 1.0


def parse_range(text: Optional[str]) -> Tuple[int, Optional[int], int]:
  """``'START:STOP:STEP'`` (each part optional, Python slice style, no negatives) -> (start, stop, step)."""
  if text is None or text == "":
    return 0, None, 1
  parts = text.split(":")
  if len(parts) > 3:
    raise VideoInputError(f"--frames={text!r}: use START:STOP:STEP (e.g. 0:300:2), each part optional")
  try:
    vals = [int(p) if p.strip() else None for p in parts] + [None] * (3 - len(parts))
  except ValueError:
    raise VideoInputError(f"--frames={text!r}: START, STOP and STEP must be whole numbers (e.g. 0:300:2)") from None
  start, stop, step = vals
  start, step = (0 if start is None else start), (1 if step is None else step)
  if start < 0 or (stop is not None and stop < 0) or step < 1:
    raise VideoInputError(f"--frames={text!r}: START and STOP must be >= 0 and STEP >= 1")
  if stop is not None and stop <= start:
    raise VideoInputError(f"--frames={text!r}: STOP must be larger than START")
  return start, stop, step


def _capture(path: str):
  import cv2
  if not os.path.exists(path):
    raise VideoInputError(f"video not found: {path}")
  if os.path.isdir(path):
    raise VideoInputError(f"{path} is a directory; pass a video file (or use --input_dir for photos)")
  if os.path.getsize(path) == 0:
    raise VideoInputError(f"{path} is empty (0 bytes)")
  cap = cv2.VideoCapture(path)
  if not cap.isOpened():
    cap.release()
    raise VideoInputError(f"{path} is not a video OpenCV's FFmpeg can open (MP4, MOV, AVI, MKV, WebM, ...); "
                          "re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")
  return cap


def probe(path: str) -> VideoInfo:
  """The container's frame rate, frame count and size; a :class:`VideoInputError` when it is not a video."""
  import cv2
  cap = _capture(path)
  try:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    info = VideoInfo(path=path, fps=fps if np.isfinite(fps) and 0 < fps < 1000 else 30.0,
                     frame_count=max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0),
                     width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
                     height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0))
  finally:
    cap.release()
  if max(info.width, info.height) > MAX_SOURCE_SIDE:
    raise VideoInputError(f"{path} is {info.width}x{info.height}; the limit is {MAX_SOURCE_SIDE} px a side. "
                          f"Scale it down first, e.g. ffmpeg -i IN -vf scale=1920:-2 OUT.mp4")
  if info.width == 0 or info.height == 0:
    raise VideoInputError(f"{path} has no video stream (an audio file?); give a video with pictures")
  return info


def fitting_scale(width: int, height: int) -> float:
  """The factor frames of this size are scaled by for fitting (1 up to :data:`MAX_SIDE` a side)."""
  return min(1.0, MAX_SIDE / max(width, height))


def frames(path: str, start: int = 0, stop: Optional[int] = None, step: int = 1,
           max_frames: Optional[int] = None) -> Iterator[Frame]:
  """Decoded frames ``start, start + step, ... < stop`` (at most ``max_frames``), one at a time. Frames before
  ``start`` and between steps are grabbed, not decoded. Raises :class:`VideoInputError` when the file is no
  video or when not one frame of the range decodes."""
  import cv2
  info = probe(path)
  cap = _capture(path)
  yielded = index = 0
  try:
    while (stop is None or index < stop) and (max_frames is None or yielded < max_frames):
      wanted = index >= start and (index - start) % step == 0
      if not wanted:
        if not cap.grab():
          break
        index += 1
        continue
      ok, bgr = cap.read()
      if not ok or bgr is None:
        break
      rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
      scale = fitting_scale(rgb.shape[1], rgb.shape[0])
      if scale != 1.0:
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
      yield Frame(index=index, time_s=index / info.fps, image=rgb.astype(np.float32) / 255.0, scale=scale)
      yielded += 1
      index += 1
  finally:
    cap.release()
  if yielded == 0:
    what = f"frames {start}:{'' if stop is None else stop}:{step} of " if (start or stop or step > 1) else ""
    raise VideoInputError(f"no decodable frame in {what}{path} (its container says {info.frame_count} frames); "
                          "check --frames, or re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")


__all__ = ["MAX_SIDE", "MAX_SOURCE_SIDE", "fitting_scale", "VIDEO_EXTS", "VideoInputError", "VideoInfo", "Frame",
           "parse_range", "probe", "frames"]
