"""A video of one person: one identity for the clip, then pose and expression per frame.

Data flow (:func:`fit_clip`; the video is decoded three times, holding one frame at a time):

1. **Track** (:mod:`ganfit_jax.video.track`): the 68 points of every frame (or none), a sharpness and a
   frontality score per frame.
2. **Identity**: ``keyframes`` frames spread over the clip (in each of K equal parts of the tracked frames,
   the sharpest frontal one) are fitted together as ``--images`` does (shared shape and texture: the
   paper's Eq. 14) with the config's full schedule; the result is written as ``identity/`` (the most
   neutral keyframe's pose and photo detail).
3. **Per frame**: camera and expression of every tracked frame, with the identity's shape, texture, focal
   length and light held fixed, by the landmark terms (68 + dense) in batches of ``batch`` frames
   (``fitting.fit``, vmapped over the batch); each batch starts from the previous batch's last frame.
   The canvas crops follow the zero-lag smoothed points, so the canvas (and the camera in it) moves smoothly.
4. **Smoothing**: a zero-lag Gaussian over time (``smooth_frames`` frames) of the camera and expression
   variables, inside each run of tracked frames (:func:`ganfit_jax.video.track.smooth_tracks`).

:func:`fit_clip` returns a :class:`Clip` (per-frame arrays); :mod:`ganfit_jax.video.files` writes them.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, List, Optional, Sequence

import jax
import numpy as np

from ganfit_jax import face as face_lib
from ganfit_jax import fitting, objective, params as params_lib
from ganfit_jax.files import atomic_write
from ganfit_jax.types import FaceParams
from ganfit_jax.video import decode, track

TRACK_STEPS = 120  # landmark-term steps per batch of frames (each batch starts at the previous batch's end)
TRACK_LR_SCALE = 3.0


@dataclasses.dataclass
class Clip:
  """Per-frame results of a clip (F frames read). ``found`` (F,) bool: a face was tracked (the other frames'
  values are zeros and must not be used); ``index`` (F,) frame numbers in the video; ``time_s`` (F,);
  ``landmarks_px`` (F, 68, 2) the fitted model's 68 points in video pixels (NaN where not found);
  ``detected_px`` (F, 68, 2) the tracker's points; ``variables``: :class:`ganfit_jax.params.Variables` (F, ...)
  after smoothing; ``faces``: their :class:`ganfit_jax.types.FaceParams` (F, ...); ``to_canvas`` (F, 2, 3)
  video pixels -> each frame's canvas; ``keyframes``: indices (into the F frames) of the identity's frames;
  ``identity``: the identity fit's results (``reconstruct.Result``, one per keyframe, the most neutral
  expression first; empty when a resumed run found the identity already fitted); ``identity_face``: the
  identity's :class:`ganfit_jax.types.FaceParams` (its first result's); ``info``: the
  :class:`ganfit_jax.video.decode.VideoInfo`; ``detections``: detector runs while tracking; ``seconds``: wall
  time of each phase ('track', 'identity', 'frames') in this run; ``resumed``: frames whose fit a resumed
  run took from the state folder."""
  found: np.ndarray
  index: np.ndarray
  time_s: np.ndarray
  landmarks_px: np.ndarray
  detected_px: np.ndarray
  variables: params_lib.Variables
  faces: object
  to_canvas: np.ndarray
  keyframes: List[int]
  identity: list
  identity_face: object
  info: decode.VideoInfo
  detections: int
  seconds: dict = dataclasses.field(default_factory=dict)
  resumed: int = 0


class State:
  """A clip's work in progress in a folder (``fit_clip(state=...)``), so that a killed run continues where it
  stopped: ``key.json`` (what the work is for: the video file's path, size and modification time, the frame
  range and the settings; a folder with another key is cleared), ``track.npz`` (the tracked points),
  ``identity.npz`` (the identity's FaceParams) and ``frames_NNNNN.npz`` (one per batch of frames: their
  variables and canvas crops). Every file is written atomically (temp + rename): a kill loses at most the
  batch in flight. The folder is the caller's to remove when the clip's outputs are written."""

  def __init__(self, folder: str, key: dict):
    import json
    import shutil
    self.folder = folder
    path = os.path.join(folder, "key.json")
    old = None
    if os.path.isfile(path):
      try:
        with open(path) as f:
          old = json.load(f)
      except (OSError, ValueError):
        old = None
    if old != key and os.path.isdir(folder):
      shutil.rmtree(folder)
    os.makedirs(folder, exist_ok=True)
    if old != key:
      atomic_write(path, json.dumps(key, sort_keys=True))

  def load(self, name: str) -> Optional[dict]:
    path = os.path.join(self.folder, name)
    if not os.path.isfile(path):
      return None
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}

  def save(self, name: str, **arrays) -> None:
    import io
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(os.path.join(self.folder, name), buf.getvalue(), "wb")

  def chunks(self) -> List[str]:
    return sorted(n for n in os.listdir(self.folder) if n.startswith("frames_") and n.endswith(".npz"))


def state_key(path: str, **settings) -> dict:
  """What a :class:`State` folder is for: the video file (absolute path, size, modification time) and
  ``settings`` (JSON-able: the frame range, keyframes, batch, steps, the config)."""
  st = os.stat(path)
  return dict(video=os.path.abspath(path), size=st.st_size, mtime_ns=st.st_mtime_ns, **settings)


def _sharpness(image: np.ndarray, points: np.ndarray) -> float:
  """Variance of the Laplacian over the face's box, the box scaled to 128 px (comparable across sizes)."""
  import cv2
  lo, hi = np.floor(points.min(0)).astype(int), np.ceil(points.max(0)).astype(int)
  lo, hi = np.maximum(lo, 0), np.minimum(hi, [image.shape[1], image.shape[0]])
  if np.any(hi - lo < 8):
    return 0.0
  grey = cv2.cvtColor(image[lo[1]:hi[1], lo[0]:hi[0]], cv2.COLOR_RGB2GRAY)
  grey = cv2.resize(grey, (128, 128), interpolation=cv2.INTER_AREA)
  return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def _frontality(points: np.ndarray) -> float:
  """1 for a frontal face, falling with yaw: how centred the nose tip (30) is between the outer eye corners."""
  l, r = points[36], points[45]
  eye = np.linalg.norm(r - l)
  t = np.dot(points[30] - l, r - l) / max(eye * eye, 1e-9)
  return float(1.0 - min(abs(t - 0.5) * 2.0, 1.0))


def choose_keyframes(found: np.ndarray, sharpness: np.ndarray, frontality: np.ndarray, k: int) -> List[int]:
  """Up to ``k`` frame indices: the tracked frames cut into ``k`` parts of equal count, from each the frame
  with the best frontality x sharpness (sharpness over the clip's median, capped at 2)."""
  idx = np.flatnonzero(found)
  if not len(idx):
    return []
  sharp = np.minimum(sharpness / max(float(np.median(sharpness[idx])), 1e-9), 2.0)
  score = frontality * sharp
  return sorted({int(part[np.argmax(score[part])]) for part in np.array_split(idx, min(k, len(idx))) if len(part)})


def _tracked(path, rng, max_frames, tracker, progress):
  found, index, time_s, points, sharp, front = [], [], [], [], [], []
  for n, fr in enumerate(decode.frames(path, *rng, max_frames=max_frames)):
    p = tracker(fr.image)
    found.append(p is not None)
    index.append(fr.index)
    time_s.append(fr.time_s)
    points.append(np.full((68, 2), np.nan, np.float32) if p is None else p / fr.scale)
    sharp.append(0.0 if p is None else _sharpness(fr.image, p))
    front.append(0.0 if p is None else _frontality(p))
    if progress:
      progress("track", n + 1)
  return (np.array(found, bool), np.array(index), np.array(time_s), np.stack(points).astype(np.float32),
          np.array(sharp), np.array(front))


def _prepare(rec, image, scale, points, crop_points) -> face_lib.PreparedFace:
  """A frame's PreparedFace: ``points`` (video px) as its 68, the canvas crop from ``crop_points``."""
  return face_lib.from_landmarks(image, points * scale, rec.cfg.canvas_size, detected=True,
                                 detail_scale=rec.detail_scale, dense=rec.use_dense,
                                 crop_landmarks=crop_points * scale)


def track_schedule(rec, steps: int = TRACK_STEPS, photometric_steps: int = 0) -> fitting.Schedule:
  """The per-frame schedule: the config's landmark-stage terms (68, dense, expression priors; the
  sparse-expression weight from ``video.sparse_expression``), camera and expression moving, everything else
  held (the clip's identity). ``photometric_steps`` > 0 adds a second stage with the config's full-stage
  terms (identity, content, pixel on a render of the frame, and the landmark terms), camera, expression and
  light moving: the full-photometric mode, far slower."""
  align = dict(rec.schedule.stages[0].weights)
  align["sparse_expression"] = float(rec.cfg.video.sparse_expression)
  weights = tuple(sorted((k, v) for k, v in align.items() if k not in ("reg_shape",)))
  stages = [fitting.Stage("track", steps, weights, ("expression", "camera"), lr_scale=TRACK_LR_SCALE)]
  if photometric_steps:
    full = next((st for st in rec.schedule.stages if st.name == "full"), rec.schedule.stages[-1])
    photo = tuple(sorted((k, v) for k, v in dict(full.weights).items() if k not in ("reg_shape", "reg_texture")))
    stages.append(fitting.Stage("track_photometric", photometric_steps, photo, ("expression", "camera", "light")))
  chunk = max(steps, photometric_steps)
  return fitting.Schedule(stages=tuple(stages), learning_rates=rec.schedule.learning_rates, chunk=chunk,
                          num_inits=1)


def _stack(vs: Sequence[params_lib.Variables]) -> params_lib.Variables:
  return jax.tree_util.tree_map(lambda *x: np.stack(x), *vs)


def fit_clip(rec, path: str, *, frames: str = None, max_frames: Optional[int] = None, keyframes: int = 5,
             batch: int = 16, smooth_frames: float = 1.0, steps: int = TRACK_STEPS, warm_start: bool = True,
             progress: Optional[Callable[[str, int], None]] = None, state: Optional[State] = None,
             on_identity: Optional[Callable[[list], None]] = None, photometric_steps: int = 0) -> Clip:
  """Fits a clip (see the module docstring). ``rec``: a :class:`ganfit_jax.reconstruct.Reconstructor`;
  ``frames``: ``START:STOP:STEP``; ``max_frames``: at most this many frames read; ``keyframes``: frames
  fitted together for the identity; ``batch``: frames per per-frame fit; ``smooth_frames``: the temporal
  smoother's sigma in frames (0: none); ``warm_start``: each batch starts from the previous one's last frame
  (False: every frame from the identity's keyframe, independent fits, as a baseline);
  ``progress(phase, done)`` (phases 'track', 'identity' (keyframes), 'frames'); ``state``: a
  :class:`State` to keep the work in and resume from (its key must hold every setting that changes the
  result); ``on_identity(results)``: called once when the identity is fitted (e.g. to write ``identity/``;
  not called when a resumed run finds it done); ``photometric_steps``: the full-photometric mode's steps per
  batch after the landmark steps (0: geometry only, :func:`track_schedule`). Raises
  :class:`ganfit_jax.video.decode.VideoInputError` (not a video, no frame, no face in any frame)."""
  if keyframes < 1 or batch < 1 or smooth_frames < 0 or steps < 1 or photometric_steps < 0:
    raise ValueError(f"keyframes ({keyframes}), batch ({batch}) and steps ({steps}) must be >= 1, "
                     f"smooth_frames ({smooth_frames}) and photometric_steps ({photometric_steps}) >= 0")
  t0 = time.perf_counter()
  info = decode.probe(path)
  rng = decode.parse_range(frames)
  tracker = track.Tracker(detector=rec.detector)
  saved = state.load("track.npz") if state else None
  if saved is not None:
    found, index, time_s, points, sharp, front = (saved[k] for k in ("found", "index", "time_s", "points", "sharp",
                                                                       "front"))
    tracker.detections = int(saved["detections"])
  else:
    found, index, time_s, points, sharp, front = _tracked(path, rng, max_frames, tracker, progress)
    if state and found.any():
      state.save("track.npz", found=found, index=index, time_s=time_s, points=points, sharp=sharp, front=front,
                 detections=np.int64(tracker.detections))
  if not found.any():
    raise decode.VideoInputError(f"no face in any of the {len(found)} frames read from {path}; a face must be "
                                 f"at least {tracker.min_face} px wide")
  seconds = {"track": time.perf_counter() - t0}
  crop = track.smooth_tracks(points, found, sigma=2.0).astype(np.float32)
  keys = choose_keyframes(found, sharp, front, keyframes)

  # 2. the identity from the keyframes
  t0 = time.perf_counter()
  if progress:
    progress("identity", 0)
  kind = rec.scene.model.expression_kind
  saved = state.load("identity.npz") if state else None
  identity = []
  if saved is not None:
    identity_face = FaceParams(**{k: saved[k] for k in ("shape", "expression", "texture", "camera", "light")})
  else:
    wanted = {index[k]: k for k in keys}
    kf = {}
    for fr in decode.frames(path, *rng, max_frames=max_frames):
      if fr.index in wanted:
        k = wanted[fr.index]
        kf[k] = _prepare(rec, fr.image, fr.scale, points[k], crop[k])
    sources = [f"{path}#frame={index[k]}" for k in keys]
    identity = rec.fit([kf[k] for k in keys], sources, shared_identity=len(keys) > 1)
    # the most neutral keyframe first: identity/ shows it, and its photo gives the texture its detail
    identity = [identity[i] for i in np.argsort([float(np.abs(np.asarray(r.face.expression)).sum())
                                                 for r in identity], kind="stable")]
    identity_face = jax.tree_util.tree_map(np.asarray, identity[0].face)
    if on_identity:
      on_identity(identity)
    if state:
      state.save("identity.npz", **{k: np.asarray(getattr(identity_face, k))
                                    for k in ("shape", "expression", "texture", "camera", "light")})
  start = jax.tree_util.tree_map(np.asarray, params_lib.from_face(identity_face, kind))

  # 3. per frame, in batches (the last one padded with its own last frame: one compiled program)
  seconds["identity"] = time.perf_counter() - t0
  if progress:
    progress("identity", len(keys))
    progress("frames", 0)
  t0 = time.perf_counter()
  sched = track_schedule(rec, steps, photometric_steps)
  # landmark terms only: no identity features (the photometric mode needs them and the render)
  track_scene = rec.scene if photometric_steps else rec.scene.replace(identity=None)
  cfg = rec.cfg
  conf = bool(cfg.landmark_confidence)
  model = rec.scene.model
  n = len(found)
  out_vars: List[Optional[params_lib.Variables]] = [None] * n
  to_canvas = np.zeros((n, 2, 3), np.float32)
  todo = []
  prev = start
  done = resumed = 0
  chunk_no = 0
  flat0, tree = jax.tree_util.tree_flatten(start)
  for name in (state.chunks() if state else []):  # batches a killed run finished
    z = state.load(name)
    rows = z["rows"]
    for j, i in enumerate(rows):
      out_vars[i] = jax.tree_util.tree_unflatten(tree, [z[f"v{k}"][j] for k in range(len(flat0))])
      to_canvas[i] = z["to_canvas"][j]
    if warm_start:
      prev = out_vars[rows[-1]]
    resumed += len(rows)
    chunk_no += 1
  done = resumed

  def run_batch(items):
    nonlocal prev, chunk_no
    prepared = [p for _, p in items] + [items[-1][1]] * (batch - len(items))
    lms = np.stack([p.landmarks for p in prepared]).astype(np.float32)
    lw = objective.landmark_weights(batch, float(cfg.jaw_weight), np.asarray(model.landmark_scatter) if conf else None)
    dense, dw = objective.dense_targets([p.dense for p in prepared], int(model.dense_corners.shape[0]),
                                        float(cfg.dense_iris_weight), np.asarray(model.dense_scatter) if conf else None)
    canvases = np.stack([p.canvas for p in prepared]).astype(np.float32)
    targets = objective.prepare_targets(track_scene, canvases, lms, lw, dense, dw)
    init = _stack([prev] * batch)
    res = fitting.fit(track_scene, targets, sched, key=jax.random.key(0), init=init)
    v = jax.device_get(res.variables)
    for j, (i, p) in enumerate(items):
      out_vars[i] = jax.tree_util.tree_map(lambda x: np.asarray(x[j]), v)
      to_canvas[i] = p.to_canvas
    if warm_start:
      prev = out_vars[items[-1][0]]
    if state:
      rows = [i for i, _ in items]
      leaves = jax.tree_util.tree_leaves(_stack([out_vars[i] for i in rows]))
      state.save(f"frames_{chunk_no:05d}.npz", rows=np.asarray(rows, np.int64), to_canvas=to_canvas[rows],
                 **{f"v{k}": x for k, x in enumerate(leaves)})
    chunk_no += 1

  for n_read, fr in enumerate(decode.frames(path, *rng, max_frames=max_frames)):
    i = n_read
    if found[i] and out_vars[i] is None:
      todo.append((i, _prepare(rec, fr.image, fr.scale, points[i], crop[i])))
      # the canvas maps video pixels (scaled frame) -> canvas; keep it per video pixel
    if len(todo) == batch:
      run_batch(todo)
      done += len(todo)
      todo = []
      if progress:
        progress("frames", done)
  if todo:
    run_batch(todo)
    done += len(todo)
    if progress:
      progress("frames", done)

  seconds["frames"] = time.perf_counter() - t0
  # 4. zero-lag smoothing of camera and expression variables inside each tracked run
  zero = jax.tree_util.tree_map(np.zeros_like, start)
  stacked = _stack([v if v is not None else zero for v in out_vars])
  stacked = stacked.replace(
      camera=track.smooth_tracks(stacked.camera, found, smooth_frames).astype(np.float32),
      expression=track.smooth_tracks(stacked.expression, found, smooth_frames).astype(np.float32))
  faces = jax.device_get(jax.vmap(lambda v: params_lib.to_face(v, kind))(stacked))
  lm_canvas = np.asarray(jax.vmap(lambda f: objective.project_landmarks(track_scene, f))(faces))
  lm_px = np.full((n, 68, 2), np.nan, np.float32)
  for i in np.flatnonzero(found):
    lm_px[i] = face_lib.apply_affine(face_lib.invert_affine(to_canvas[i]), lm_canvas[i])
  # the frames were fitted scaled (decode.fitting_scale): points and crops back to video pixels
  scale = decode.fitting_scale(info.width, info.height)
  lm_px = lm_px / scale
  to_canvas = np.concatenate([to_canvas[:, :, :2] * scale, to_canvas[:, :, 2:]], 2).astype(np.float32)
  return Clip(found=found, index=index, time_s=time_s, landmarks_px=lm_px, detected_px=points,
              variables=stacked, faces=faces, to_canvas=to_canvas, keyframes=keys, identity=identity,
              identity_face=identity_face, info=info, detections=tracker.detections, seconds=seconds, resumed=resumed)


__all__ = ["Clip", "State", "state_key", "fit_clip", "choose_keyframes", "track_schedule", "TRACK_STEPS"]
