"""``overlay.mp4``: the fitted face of every tracked frame rendered over the video.

Each frame's face (the clip's identity and texture, the frame's camera, expression and light) is rendered in
the frame's canvas (one compiled, vmapped call per batch of frames), warped back into the video frame with
the canvas crop's inverse and composited over it. Frames without a face are written unchanged with a red
"no face" mark. The video is MPEG-4 Part 2 (OpenCV's FFmpeg writer, fourcc ``mp4v``: plays in VLC, mpv,
QuickTime and Blender's sequencer); the report page's copy for browsers is VP8 WebM (:func:`write` with a
``.webm`` path), which every browser decodes and OpenCV's wheel can write (it has no H.264 encoder).
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ganfit_jax import compiled, morphable, objective
from ganfit_jax.face import invert_affine
from ganfit_jax.face.image_io import to_uint8
from ganfit_jax.video import decode

FOURCC = {".mp4": "mp4v", ".webm": "VP80"}


def _render_batch(scene, shape, texture, cameras, expressions, lights):
  """(B, S, S, 3) renders and (B, S, S) face masks of one identity in B frames' canvases."""
  s = scene.canvas_size

  def one(cam, expr, light):
    verts = morphable.vertices(scene.model, shape, expr)
    out, mask = objective.render_mesh(scene, verts, texture, cam, light, jnp.zeros((s, s, 3)), s)
    return jnp.clip(out.image, 0.0, 1.0), mask.astype(jnp.float32)
  return jax.vmap(one)(cameras, expressions, lights)


def _mark_no_face(image: np.ndarray) -> np.ndarray:
  import cv2
  out = image.copy()
  h = max(12, image.shape[0] // 24)
  cv2.putText(out, "no face", (h // 2, h + h // 2), cv2.FONT_HERSHEY_SIMPLEX, h / 24.0, (255, 40, 40),
              max(1, h // 12), cv2.LINE_AA)
  return out


def _open_writer(path: str, fps: float, size) -> "cv2.VideoWriter":  # noqa: F821
  """An OpenCV video writer for ``path`` (codec by extension, :data:`FOURCC`). FFmpeg's WebM muxer takes no
  codec tag, so OpenCV prints a fallback notice for every WebM: dropped (:func:`ganfit_jax.runtime.
  native_notices_dropped`)."""
  import cv2
  from ganfit_jax.runtime import native_notices_dropped
  ext = os.path.splitext(path)[1].lower()
  with native_notices_dropped(["is not supported with codec id", "fallback to use tag"]):
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*FOURCC[ext]), float(fps), size)
  if not writer.isOpened():
    raise RuntimeError(f"OpenCV could not open a {FOURCC[ext]} video writer for {path}")
  return writer


def write(paths: Sequence[str], rec, clip, texture01: np.ndarray, video: str, *, frames: Optional[str] = None,
          max_frames: Optional[int] = None, batch: int = 16,
          progress: Optional[Callable[[str, int], None]] = None) -> dict:
  """Writes the overlay video of ``clip`` (a :class:`ganfit_jax.video.clip.Clip` fitted on ``video`` with
  the same ``frames`` / ``max_frames``) to each of ``paths`` (``.mp4`` and/or ``.webm``; rendered once) at
  the video's frame rate over STEP and its decoded size; ``texture01`` (T, T, 3) in [0, 1] is the identity's texture.
  Returns {files, frames, width, height, fps}."""
  import cv2
  for path in paths:
    if os.path.splitext(path)[1].lower() not in FOURCC:
      raise ValueError(f"overlay path {path!r}: use .mp4 or .webm")
  scene = rec.scene
  shape = compiled.float32(np.asarray(clip.identity_face.shape))
  tex = compiled.float32(np.asarray(texture01, np.float32))
  faces = clip.faces
  writers, size, n_written = [], None, 0
  pending = []  # (frame image (H, W, 3) RGB in [0, 1], row in clip or -1)

  def flush():
    nonlocal n_written
    rows = [i for _, i in pending if i >= 0]
    renders = masks = None
    if rows:
      pad = rows + [rows[-1]] * (batch - len(rows))
      pick = lambda x: compiled.float32(np.asarray(x)[pad])  # noqa: E731
      renders, masks = compiled.call(_render_batch, scene, shape, tex, pick(faces.camera), pick(faces.expression),
                                     pick(faces.light), name="video_overlay", static=batch)
      renders, masks = np.asarray(renders), np.asarray(masks)
    k = 0
    for image, i in pending:
      if i < 0:
        out = _mark_no_face(to_uint8(image))
      else:
        h, w = image.shape[:2]
        scale = w / clip.info.width  # decoded frames may be downscaled (decode.MAX_SIDE)
        to_video = invert_affine(clip.to_canvas[i]) * scale
        warp = lambda x: cv2.warpAffine(x, to_video.astype(np.float64), (w, h), flags=cv2.INTER_LINEAR,  # noqa
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        alpha = warp(masks[k])[..., None]
        face = warp(renders[k])
        out = to_uint8(image * (1.0 - alpha) + face * alpha)
        k += 1
      bgr = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
      for w in writers:
        w.write(bgr)
      n_written += 1
    pending.clear()
    if progress:
      progress("overlay", n_written)

  rows_by_index = {int(ix): r for r, ix in enumerate(clip.index)}
  rng = decode.parse_range(frames)
  fps = float(clip.info.fps) / rng[2]  # every STEP-th frame: the overlay keeps the video's duration
  try:
    for fr in decode.frames(video, *rng, max_frames=max_frames):
      if size is None:
        size = (fr.image.shape[1], fr.image.shape[0])
        for path in paths:
          writers.append(_open_writer(path, fps, size))
      r = rows_by_index.get(int(fr.index), -1)
      pending.append((fr.image, r if r >= 0 and clip.found[r] else -1))
      if sum(1 for _, i in pending if i >= 0) == batch:
        flush()
    if pending:
      flush()
  finally:
    for w in writers:
      w.release()
  return dict(files=[os.path.basename(p) for p in paths], frames=n_written, width=size[0] if size else 0,
              height=size[1] if size else 0, fps=fps)


__all__ = ["write", "FOURCC"]
