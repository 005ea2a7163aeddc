"""The UV texture dataset: built from photos (LFW), stored as shards, read back as a stream.

Layout of an output folder::

  train-00000.npz ...     peopleDevTrain people only
  heldout-00000.npz ...   peopleDevTest people only (texture-model evaluation, never training)
  manifest.jsonl          one line per photo: file, person, split, kept, reason, yaw, fit_error, ...
  summary.json            counts per split and drop reason, config, timings

A shard holds ``texture`` (N, T, T, 3) uint8, ``status`` (N, T, T) uint8
(0 outside the UV chart, 1 inpainted, 2 mirrored, 3 observed; see
``texture.unwrap``), ``confidence`` (N, T, T) uint8 (cos(normal, view) x 255),
``files`` (N,) and ``records`` (the JSON manifest lines of every photo assigned
to the shard, kept or not). Shards are written atomically; a rerun skips
shards that exist.

A *packed* copy (:func:`pack`, ``tools/pack_uv_dataset.py``) is the small form
for moving a split to another machine (a GPU box): per shard the textures as
WebP (``texture_webp`` bytes + ``texture_offsets``; lossless at quality 101),
the UV chart (``chart`` (T, T) bool) and ``files``, nothing else. Every reader
here (:func:`chart`, :func:`load_split`, :func:`stream`, :func:`textures`)
takes either form; packed shards have no ``status`` or ``confidence``.
"""

from __future__ import annotations

import glob
import json
import math
import os
import time
from typing import Callable, Dict, Iterator, List, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ganfit_jax import fitting, morphable, objective
from ganfit_jax import params as params_lib
from ganfit_jax import scene as scene_lib
from ganfit_jax.data import lfw
from ganfit_jax.face import align, image_io
from ganfit_jax.texture import layout
from ganfit_jax.texture import unwrap as uw
from ganfit_jax.files import atomic_path, atomic_write

SPLITS = ("train", "heldout")


def yaw_degrees(cam) -> np.ndarray:
  """Head yaw seen by the camera: 0 frontal, positive when the camera sits on the model's +x side."""
  cam = np.asarray(cam)
  d = cam[..., 0:3] - cam[..., 3:6]  # eye - look_at (camera vector layout, ganfit_jax.camera)
  return np.degrees(np.arctan2(d[..., 0], d[..., 2]))


def _shard_name(split: str, k: int) -> str:
  return f"{split}-{k:05d}.npz"


def plan(lfw_root: str, faces: Dict[str, list], limit: int = 0) -> Dict[str, List[dict]]:
  """Photos per split (sorted), each with its person and subject landmarks (or None)."""
  split_of = lfw.split_of(lfw_root)
  out: Dict[str, List[dict]] = {s: [] for s in SPLITS}
  for rel in sorted(faces):
    person = rel.split("/")[0]
    split = split_of.get(person)
    if split is None:
      continue
    fl = faces[rel]
    i = lfw.subject_face(fl, fl[0]["shape"]) if fl else None
    out[split].append(dict(file=rel, person=person, split=split,
                           landmarks=None if i is None else fl[i]["landmarks"]))
  if limit:
    out = {s: v[:limit] for s, v in out.items()}
  return out


class Builder:
  """Fits, unwraps and completes batches of photos (compiled once per config).

  The landmark fit is ``fitting.fit`` with one landmark stage (align term +
  shape and expression regularisers, the main job's first stage), on a scene
  without texture model or identity network.
  """

  def __init__(self, model, cfg):
    self.model = model
    self.cfg = cfg
    self.tmap = layout.texel_map(model, cfg.resolution)
    self.scene = scene_lib.make(model, canvas_size=cfg.canvas_size, texture_size=cfg.resolution)
    stage = fitting.Stage(name="align", steps=int(cfg.fit_steps), groups=("shape", "expression", "camera", "focal"),
                          weights=(("align", 1.0), ("reg_shape", float(cfg.shape_reg)),
                                   ("reg_expression", float(cfg.expression_reg))))
    self.schedule = fitting.Schedule(stages=(stage,), learning_rates=tuple(
        (g, float(cfg.fit_learning_rate)) for g in params_lib.GROUPS), chunk=int(cfg.fit_steps))
    tmap, s = self.tmap, cfg.canvas_size

    def unwrap_one(photo, face, canvas_to_photo):
      verts = morphable.vertices(model, face.shape, face.expression)
      u = uw.unwrap(photo, verts, model.triangles, face.camera, tmap, canvas_size=s,
                    canvas_to_photo=canvas_to_photo, normal_threshold=cfg.normal_threshold,
                    depth_tolerance=cfg.depth_tolerance)
      tex = u.texture
      if cfg.deshade:
        tex, _ = uw.deshade(tex, u.visible, layout.texel_normals(verts, model.triangles, tmap))
      return tex, u.visible, u.confidence

    self._unwrap = jax.jit(jax.vmap(unwrap_one))

  def process(self, photos: np.ndarray, canvas_landmarks: np.ndarray, canvas_to_photo: np.ndarray):
    """(B, H, W, 3) photos + (B, 68, 2) canvas landmarks -> dict of per-photo results."""
    b, s = len(canvas_landmarks), self.cfg.canvas_size
    targets = objective.prepare_targets(self.scene, jnp.zeros((b, s, s, 3)), jnp.asarray(canvas_landmarks))
    res = fitting.fit(self.scene, targets, self.schedule, key=jax.random.key(0))
    tex, vis, conf = self._unwrap(jnp.asarray(photos), res.faces, jnp.asarray(canvas_to_photo))
    iod = np.linalg.norm(canvas_landmarks[:, 36] - canvas_landmarks[:, 45], axis=-1)
    return dict(texture=np.asarray(tex), visible=np.asarray(vis), confidence=np.asarray(conf),
                yaw=yaw_degrees(np.asarray(res.faces.camera)), fit_error=res.final["landmark_rmse_px"] / iod)


def build_shard(builder: Builder, lfw_root: str, items: List[dict]) -> dict:
  """Processes one shard's photos; returns the arrays and manifest records to save."""
  cfg = builder.cfg
  records = []
  todo = []
  for it in items:
    rec = dict(file=it["file"], person=it["person"], split=it["split"], kept=False)
    if it["landmarks"] is None:
      rec["reason"] = "no_face"
    else:
      todo.append((it, rec))
    records.append(rec)
  textures, statuses, confs, files = [], [], [], []
  b = cfg.batch_size
  chart = builder.tmap.mask.sum()
  for start in range(0, len(todo), b):
    chunk = todo[start:start + b]
    photos, lms, mats = [], [], []
    for it, _ in chunk:
      img = image_io.load_image(os.path.join(lfw_root, "images_deepfunneled", it["file"]))
      _, lm_c, to_canvas = align.crop_to_canvas(img, np.asarray(it["landmarks"], np.float32), cfg.canvas_size)
      photos.append(img)
      lms.append(lm_c)
      mats.append(align.invert_affine(to_canvas))
    n = len(chunk)
    pad = b - n  # fixed batch shape: one compilation
    photos = np.stack(photos + [photos[0]] * pad)
    lms = np.stack(lms + [lms[0]] * pad).astype(np.float32)
    mats = np.stack(mats + [mats[0]] * pad).astype(np.float32)
    out = builder.process(photos, lms, mats)
    for k, (it, rec) in enumerate(chunk):
      vis_frac = float(out["visible"][k].sum() / chart)
      rec.update(yaw=round(float(out["yaw"][k]), 2), fit_error=round(float(out["fit_error"][k]), 4),
                 visible=round(vis_frac, 3))
      if not np.isfinite(out["fit_error"][k]) or out["fit_error"][k] > cfg.max_fit_error:
        rec["reason"] = "fit_error"
      elif abs(out["yaw"][k]) > cfg.max_yaw:
        rec["reason"] = "yaw"
      elif vis_frac < cfg.min_visible:
        rec["reason"] = "too_little_visible"
      else:
        tex, status, conf = uw.complete(out["texture"][k], out["visible"][k], out["confidence"][k], builder.tmap)
        rec["kept"] = True
        rec["reason"] = ""
        textures.append(image_io.to_uint8(tex))
        statuses.append(status)
        confs.append(image_io.to_uint8(conf))
        files.append(it["file"])
  t = cfg.resolution
  return dict(texture=np.stack(textures) if textures else np.zeros((0, t, t, 3), np.uint8),
              status=np.stack(statuses) if statuses else np.zeros((0, t, t), np.uint8),
              confidence=np.stack(confs) if confs else np.zeros((0, t, t), np.uint8),
              files=np.array(files, dtype=str), records=np.array(json.dumps(records)))


def build(lfw_root: str, faces: Dict[str, list], out_dir: str, model, cfg,
          log: Callable[[str], None] = print, progress: Optional[Callable] = None) -> dict:
  """Builds (or resumes) the dataset; returns the summary written to ``summary.json``."""
  os.makedirs(out_dir, exist_ok=True)
  t0 = time.time()
  builder = None
  per_split = plan(lfw_root, faces, cfg.limit)
  jobs = []
  for split, items in per_split.items():
    for k in range(math.ceil(len(items) / cfg.shard_size)):
      jobs.append((split, k, items[k * cfg.shard_size:(k + 1) * cfg.shard_size]))
  done = sum(os.path.exists(os.path.join(out_dir, _shard_name(s, k))) for s, k, _ in jobs)
  log(f"{sum(len(v) for v in per_split.values())} photos in {len(jobs)} shards "
      f"({done} already done) -> {out_dir}")
  for i, (split, k, items) in enumerate(jobs):
    path = os.path.join(out_dir, _shard_name(split, k))
    if not os.path.exists(path):
      if builder is None:
        builder = Builder(model, cfg)
      ts = time.time()
      arrays = build_shard(builder, lfw_root, items)
      with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
      log(f"  {_shard_name(split, k)}: kept {len(arrays['files'])}/{len(items)} in {time.time() - ts:.1f} s")
    if progress:
      progress(i + 1, len(jobs))
  # manifest and summary from the shards themselves (so resumed runs are complete)
  records = []
  for split, k, _ in jobs:
    with np.load(os.path.join(out_dir, _shard_name(split, k))) as z:
      for r in json.loads(str(z["records"])):
        r["shard"] = _shard_name(split, k)
        records.append(r)
  atomic_write(os.path.join(out_dir, "manifest.jsonl"), "".join(json.dumps(r) + "\n" for r in records))
  summary = {"config": cfg.to_dict(), "seconds_this_run": round(time.time() - t0, 1), "splits": {}}
  for split in SPLITS:
    rs = [r for r in records if r["split"] == split]
    reasons: Dict[str, int] = {}
    for r in rs:
      if not r["kept"]:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    summary["splits"][split] = dict(photos=len(rs), kept=sum(r["kept"] for r in rs), dropped=reasons,
                                    people=len({r["person"] for r in rs if r["kept"]}))
  with open(os.path.join(out_dir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  return summary


# --------------------------------------------------------------------------- #
# Reading.

def shards(data_dir: str, split: str) -> List[str]:
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  out = sorted(glob.glob(os.path.join(data_dir, f"{split}-*.npz")))
  if not out:
    raise FileNotFoundError(f"no {split} shards in {data_dir}; build them with tools/build_uv_dataset.py")
  return out


def _is_packed(z) -> bool:
  return "texture_webp" in z.files


def _split_is_packed(paths: List[str]) -> bool:
  """Whether a split's shards are packed (judged by its first shard; a split is one or the other)."""
  with np.load(paths[0]) as z:
    return _is_packed(z)


def _decode_textures(z) -> np.ndarray:
  """(N, T, T, 3) uint8 RGB textures of an open shard, raw or packed."""
  if not _is_packed(z):
    return z["texture"]
  import cv2
  buf, off = z["texture_webp"], z["texture_offsets"]
  out = []
  for i in range(len(off) - 1):
    im = cv2.imdecode(buf[off[i]:off[i + 1]], cv2.IMREAD_COLOR)
    if im is None:
      raise ValueError(f"texture {i} of a packed shard does not decode; re-pack it with tools/pack_uv_dataset.py")
    out.append(im[..., ::-1])
  return np.stack(out)


def _read_shard(path: str, with_status: bool) -> Dict[str, np.ndarray]:
  with np.load(path) as z:
    out = dict(texture=_decode_textures(z), files=z["files"])
    if with_status:
      if _is_packed(z):
        raise ValueError(f"{path} is a packed shard (textures and chart only); status and confidence need the "
                         "shards written by tools/build_uv_dataset.py")
      out["status"], out["confidence"] = z["status"], z["confidence"]
  return out


def chart(data_dir: str, split: str = "train") -> np.ndarray:
  """(T, T) bool: texels inside the UV chart, read from the first shard of ``split`` (raw or packed)."""
  with np.load(shards(data_dir, split)[0]) as z:
    return z["chart"] if _is_packed(z) else (z["status"] > 0).any(0)


def load_split(data_dir: str, split: str, limit: int = 0) -> Dict[str, np.ndarray]:
  """All maps of a split in memory (uint8 arrays + file names); packed shards give texture and files only."""
  parts: Dict[str, list] = {}
  n = 0
  paths = shards(data_dir, split)
  with_status = not _split_is_packed(paths)
  for p in paths:
    for k, v in _read_shard(p, with_status).items():
      parts.setdefault(k, []).append(v)
    n += len(parts["files"][-1])
    if limit and n >= limit:
      break
  out = {k: np.concatenate(v) for k, v in parts.items()}
  return {k: v[:limit] for k, v in out.items()} if limit else out


def textures(data_dir: str, split: str) -> np.ndarray:
  """(N, T, T, 3) uint8: every texture of a split, raw or packed shards, in shard order."""
  return np.concatenate([_read_shard(p, False)["texture"] for p in shards(data_dir, split)])


def stream(data_dir: str, split: str, batch_size: int, seed: int = 0, epochs: Optional[int] = None
           ) -> Iterator[Dict[str, np.ndarray]]:
  """Shuffled batches read shard by shard (two shards in memory at a time), forever by default.

  Yields dicts with ``texture`` float32 in [0, 1] (B, T, T, 3) and, from raw
  (not packed) shards, ``status`` uint8 and ``confidence`` float32 in [0, 1].
  """
  paths = shards(data_dir, split)
  with_status = not _split_is_packed(paths)
  rng = np.random.default_rng(seed)
  epoch = 0
  buf: Dict[str, np.ndarray] = {}
  while epochs is None or epoch < epochs:
    for p in rng.permutation(paths):
      new = _read_shard(p, with_status)
      del new["files"]
      buf = {k: np.concatenate([buf[k], new[k]]) if buf else new[k] for k in new}
      perm = rng.permutation(len(buf["texture"]))
      buf = {k: v[perm] for k, v in buf.items()}
      while len(buf["texture"]) >= 2 * batch_size or (len(buf["texture"]) >= batch_size and len(paths) == 1):
        out = {k: v[:batch_size] for k, v in buf.items()}
        buf = {k: v[batch_size:] for k, v in buf.items()}
        batch = dict(texture=out["texture"].astype(np.float32) / 255.0)
        if with_status:
          batch.update(status=out["status"], confidence=out["confidence"].astype(np.float32) / 255.0)
        yield batch
    epoch += 1


def memory_stream(texture_u8: np.ndarray, batch_size: int, seed: int = 0) -> Iterator[Dict[str, np.ndarray]]:
  """Shuffled epochs of an in-memory (N, T, T, 3) uint8 array, forever; batches stay uint8 (the GAN step
  scales them on the device, a quarter of the bytes to copy)."""
  n = len(texture_u8)
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if n < batch_size:
    raise ValueError(f"{n} maps cannot fill a batch of {batch_size}")
  rng = np.random.default_rng(seed)
  while True:
    perm = rng.permutation(n)
    for i in range(0, n - batch_size + 1, batch_size):
      yield dict(texture=texture_u8[np.sort(perm[i:i + batch_size])])


def pack(data_dir: str, out_dir: str, split: str = "train", quality: int = 90,
         log: Callable[[str], None] = print) -> dict:
  """Writes a packed copy of ``split`` (see the module doc): WebP textures at ``quality`` (101 = lossless).

  Returns counts, bytes and the mean absolute error of the re-encoding (in 0..255 units).
  """
  import cv2
  if not 1 <= quality <= 101:
    raise ValueError(f"quality must be in 1..101 (101 = lossless WebP), got {quality}")
  os.makedirs(out_dir, exist_ok=True)
  the_chart = chart(data_dir, split)
  n, nbytes, err = 0, 0, 0.0
  for p in shards(data_dir, split):
    with np.load(p) as z:
      if _is_packed(z):
        raise ValueError(f"{p} is already packed")
      tex, files = z["texture"], z["files"]
    blobs = []
    for im in tex:
      ok, b = cv2.imencode(".webp", np.ascontiguousarray(im[..., ::-1]), [cv2.IMWRITE_WEBP_QUALITY, quality])
      if not ok:
        raise RuntimeError("OpenCV could not encode WebP; install opencv-python-headless from requirements.txt")
      err += float(np.abs(cv2.imdecode(b, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) - im).mean())
      blobs.append(b.reshape(-1))
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    dst = os.path.join(out_dir, os.path.basename(p))
    with atomic_path(dst) as tmp, open(tmp, "wb") as f:
      np.savez(f, texture_webp=np.concatenate(blobs), texture_offsets=offsets, chart=the_chart, files=files)
    n += len(tex)
    nbytes += os.path.getsize(dst)
    log(f"{os.path.basename(p)}: {len(tex)} maps, {os.path.getsize(dst) / 2**20:.1f} MiB")
  return dict(split=split, maps=n, bytes=nbytes, quality=quality, mean_abs_error=err / max(n, 1))
