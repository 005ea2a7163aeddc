"""A clip's files: ``frames.npz``, ``frames.csv`` and ``arkit52.csv`` (the layout of Epic's Live Link Face
CSV, so tools that read that format take it).

Head rotation: ``rotation`` (F, 3, 3) maps model coordinates (x to the face's left, y up, z out of the face)
to the video camera's (x right, y up, z towards the viewer): the fitted camera's rotation composed with the
in-plane rotation of the frame's canvas crop. Yaw, pitch and roll (radians) are its intrinsic Y-X-Z angles,
as seen in the video: yaw > 0 turns the face towards the video's right (the person's left), pitch > 0 tilts
the face down, roll > 0 turns the head counter-clockwise (its top towards the video's left); see
:func:`yaw_pitch_roll`.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Dict

import numpy as np

from ganfit_jax import camera as camera_lib
from ganfit_jax.files import atomic_write
from ganfit_jax.outputs import arkit as arkit_lib

# Live Link Face's column order of the 52 shapes (ARKit's names, capitalised), then head and eye angles
LIVE_LINK_ORDER = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel",
    "MouthPucker", "MouthRight", "MouthLeft", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft",
    "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft", "MouthPressRight",
    "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight", "BrowDownLeft",
    "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft",
    "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut")
EXTRA = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw",
         "RightEyePitch", "RightEyeRoll")
assert sorted(n[0].lower() + n[1:] for n in LIVE_LINK_ORDER) == sorted(arkit_lib.ARKIT52)


def rotations(cameras: np.ndarray, to_canvas: np.ndarray) -> np.ndarray:
  """(F, 3, 3) head rotations in the video (see the module docstring) from (F, 10) fitted cameras and the
  (F, 2, 3) video -> canvas crops."""
  import jax
  r_cam = np.asarray(jax.vmap(lambda c: camera_lib.view_matrix(c)[0])(np.asarray(cameras, np.float32)), np.float64)
  a = np.asarray(to_canvas, np.float64)[:, :, :2]
  theta = np.arctan2(a[:, 1, 0], a[:, 0, 0])  # canvas rotation in image coordinates (y down)
  # the canvas is the video turned by theta in image coordinates (y down), i.e. by -theta about the camera's
  # z (y up): canvas = Rz(-theta) video, so video = Rz(theta) canvas
  c, s = np.cos(theta), np.sin(theta)
  rz = np.zeros((len(theta), 3, 3))
  rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = c, -s, s, c, 1.0
  return np.einsum("fij,fjk->fik", rz, r_cam)


def yaw_pitch_roll(r: np.ndarray) -> np.ndarray:
  """(F, 3) radians: the intrinsic Y (yaw), X (pitch), Z (roll) angles of rotations R = Ry Rx Rz."""
  r = np.asarray(r, np.float64)
  pitch = np.arcsin(np.clip(-r[:, 1, 2], -1.0, 1.0))
  yaw = np.arctan2(r[:, 0, 2], r[:, 2, 2])
  roll = np.arctan2(r[:, 1, 0], r[:, 1, 1])
  return np.stack([yaw, pitch, roll], 1)


def arkit_weights(names, expression: np.ndarray, kind: str, model_name: str) -> np.ndarray:
  """(F, 52) ARKit weights in :data:`arkit_lib.ARKIT52` order (zeros when the model has no ARKit names)."""
  out = np.zeros((len(expression), 52), np.float32)
  for i, e in enumerate(expression):
    a = arkit_lib.arkit52(names, e, kind, model_name)
    if a.get("arkit_semantics"):
      out[i] = [a["weights"][n] for n in arkit_lib.ARKIT52]
  return out


def timecode(t: float, fps: float) -> str:
  """Live Link Face's timecode ``HH:MM:SS:FF.mmm`` of a time in seconds at ``fps``."""
  whole = int(t)
  frame = (t - whole) * fps
  ms = int(round((frame % 1) * 1000)) % 1000
  return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}:{int(frame):02d}.{ms:03d}"


def tables(clip, model) -> Dict[str, np.ndarray]:
  """The per-frame arrays of ``frames.npz`` (see the README's video section)."""
  faces = clip.faces
  rot = rotations(np.asarray(faces.camera), clip.to_canvas)
  eye = np.asarray(faces.camera)[:, 0:3]
  translation = -np.einsum("fij,fj->fi", rot, eye)  # the model's origin in the canvas camera's frame, mm
  names = list(model.expression_names)
  ark = arkit_weights(names, np.asarray(faces.expression), model.expression_kind, model.name)
  nan = ~clip.found

  def masked(x):
    x = np.asarray(x, np.float32).copy()
    x[nan] = np.nan
    return x
  return dict(index=clip.index.astype(np.int64), time_s=clip.time_s.astype(np.float64), found=clip.found,
              landmarks_px=masked(clip.landmarks_px), detected_px=masked(clip.detected_px),
              rotation=masked(rot), yaw_pitch_roll=masked(yaw_pitch_roll(rot)), translation=masked(translation),
              expression=masked(faces.expression), arkit52=masked(ark), light=masked(faces.light),
              camera=masked(faces.camera), to_canvas=masked(clip.to_canvas),
              keyframes=np.asarray([clip.index[k] for k in clip.keyframes], np.int64), fps=np.float64(clip.info.fps))


def write(out_dir: str, clip, model) -> Dict[str, np.ndarray]:
  """Writes ``frames.npz``, ``frames.csv`` and ``arkit52.csv`` into ``out_dir``; returns the tables."""
  t = tables(clip, model)
  buf = io.BytesIO()
  np.savez_compressed(buf, **t)
  atomic_write(os.path.join(out_dir, "frames.npz"), buf.getvalue(), "wb")
  s = io.StringIO()
  w = csv.writer(s)
  w.writerow(["frame", "time_s", "found", "yaw_deg", "pitch_deg", "roll_deg", "tx_mm", "ty_mm", "tz_mm"]
             + [f"expr_{n}" for n in (model.expression_names or range(t["expression"].shape[1]))])
  for i in range(len(t["found"])):
    f = bool(t["found"][i])
    vals = (list(np.degrees(t["yaw_pitch_roll"][i])) + list(t["translation"][i]) + list(t["expression"][i])) if f \
        else [""] * (6 + t["expression"].shape[1])
    w.writerow([int(t["index"][i]), f"{t['time_s'][i]:.4f}", int(f)] + [v if v == "" else f"{v:.5f}" for v in vals])
  atomic_write(os.path.join(out_dir, "frames.csv"), s.getvalue())
  s = io.StringIO()
  w = csv.writer(s)
  w.writerow(["Timecode", "BlendShapeCount"] + list(LIVE_LINK_ORDER) + list(EXTRA))
  order = [arkit_lib.ARKIT52.index(n[0].lower() + n[1:]) for n in LIVE_LINK_ORDER]
  for i in np.flatnonzero(t["found"]):
    ypr = t["yaw_pitch_roll"][i]
    w.writerow([timecode(float(t["time_s"][i]), float(t["fps"])), len(LIVE_LINK_ORDER) + len(EXTRA)]
               + [f"{t['arkit52'][i, j]:.6f}" for j in order] + [f"{v:.6f}" for v in ypr] + ["0"] * 6)
  atomic_write(os.path.join(out_dir, "arkit52.csv"), s.getvalue())
  return t


def gaps(found: np.ndarray, time_s: np.ndarray) -> list:
  """Runs of frames with no face inside the tracked span: [{from_s, to_s, frames}] (the times of the tracked
  frames on either side, which the animation interpolates between)."""
  idx = np.flatnonzero(found)
  out = []
  for a, b in zip(idx[:-1], idx[1:]):
    if b - a > 1:
      out.append(dict(from_s=round(float(time_s[a]), 4), to_s=round(float(time_s[b]), 4), frames=int(b - a - 1)))
  return out


def write_animation(path: str, clip, model, texture_png: bytes, tables_: Dict[str, np.ndarray]) -> dict:
  """``animation.glb``: the identity's neutral mesh with the expression shapes as morph targets (as the
  identity's ``mesh.glb``), animated by the tracked frames' expression weights and head rotation at their
  video times (seconds from the first frame read). Frames without a face have no keyframe: the animation
  interpolates across them, and each such gap is flagged in ``animations[0].extras.gaps``."""
  from ganfit_jax import morphable
  from ganfit_jax.outputs import meshes
  f = clip.identity_face
  neutral = np.asarray(morphable.vertices(model, f.shape))
  names = arkit_lib.model_target_names(model)
  found = np.asarray(tables_["found"], bool)
  t = np.asarray(tables_["time_s"], np.float64)
  t0 = float(t[0])
  expr = np.asarray(tables_["expression"], np.float64)[found]
  extras = dict(source="ganfit_jax --video", fps=float(tables_["fps"]), video_time_offset_s=round(t0, 4),
                frames=int(found.sum()), gaps=gaps(found, t - t0))
  anim = dict(times=t[found] - t0, weights=expr, rotations=np.asarray(tables_["rotation"], np.float64)[found],
              name="clip", extras=extras)
  return meshes.write_glb(path, model, neutral, texture_png, expression=expr[0], target_names=names,
                          animation=anim)


def write_page(out_dir: str, clip, video: str, tables_: Dict[str, np.ndarray]) -> None:
  """``index.html``: ``overlay.webm`` beside the 3D view playing ``animation.glb`` in step with it."""
  from ganfit_jax.outputs import page
  found = np.asarray(tables_["found"], bool)
  summary = {"video": video, "frames read": int(len(found)), "frames with a face": int(found.sum()),
             "frame rate": round(float(tables_["fps"]), 3),
             "size": f"{clip.info.width} x {clip.info.height}",
             "keyframes (identity)": ", ".join(str(int(k)) for k in tables_["keyframes"]),
             "tracker detections": int(clip.detections)}
  summary.update({f"{k} seconds": round(float(v), 1) for k, v in clip.seconds.items()})
  # the overlay video starts at the first frame read, as the animation does
  page.write_video_page(out_dir, summary, glb="animation.glb", video="overlay.webm", offset_s=0.0)


__all__ = ["LIVE_LINK_ORDER", "rotations", "yaw_pitch_roll", "arkit_weights", "timecode", "tables", "write",
           "gaps", "write_animation", "write_page"]
