"""The main job as a library: photos in, fitted textured faces and their files out.

  rec = Reconstructor(config)                   # loads assets, compiles once
  faces = [rec.prepare(p) for p in paths]       # detection, landmarks, canvas
  results = rec.fit(faces)                      # independent photos (batched)
  results = rec.fit(faces, shared_identity=True)  # several photos of one person
  rec.write(results[0], "out/dir")              # every output file, atomically
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Dict, List, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ganfit_jax import assets, face, fitting, morphable
from ganfit_jax import objective as obj
from ganfit_jax.export import write_glb, write_mtl, write_obj, write_png
from ganfit_jax.nets import identity as identity_lib
from ganfit_jax.texture import models as texture_models


@dataclasses.dataclass
class Result:
  """One fitted photo."""
  source: str
  prepared: face.PreparedFace
  params: obj.FitParams            # single example
  final: Dict[str, float]
  history: Dict[str, np.ndarray]   # term -> (steps,)
  seconds: float
  shared_with: Sequence[str] = ()


def _asset_version(name: str) -> str:
  try:
    p = assets.path(name, verify=False)
  except assets.AssetError:
    return "missing"
  side = p + ".sha256"
  if os.path.exists(side):
    return open(side).read().split()[0][:16]
  h = hashlib.sha256()
  with open(p, "rb") as f:
    h.update(f.read(1 << 20))
  return h.hexdigest()[:16]


class Reconstructor:
  def __init__(self, cfg, log=print):
    self.cfg = cfg
    self.log = log
    self.model = assets.load_model(cfg.model)
    self.texture = texture_models.load(cfg.texture_model)
    self.net = identity_lib.load(cfg.identity_net)
    self.objective = obj.make_objective(self.model, self.texture, self.net, cfg.canvas_size)
    self.frozen = obj.frozen_arrays(self.model, self.texture, self.net)
    w = dict(cfg.weights)
    self.fit_cfg = fitting.FitConfig(
        stage1_steps=cfg.stage1_steps, stage2_steps=cfg.stage2_steps, num_inits=cfg.num_inits,
        init_latent_std=cfg.init_latent_std, lr_shape=cfg.lr_shape, lr_expression=cfg.lr_expression,
        lr_texture=cfg.lr_texture, lr_camera=cfg.lr_camera, lr_light=cfg.lr_light,
        stage1_lr_scale=cfg.stage1_lr_scale, weights=tuple(sorted(w.items())),
        zero_first_init=self.texture.kind == "pca")
    self.step, _ = fitting.make_fit_step(self.objective, self.fit_cfg)
    self._render = jax.jit(self.objective.render_params)

  def prepare(self, path: str, select="largest") -> face.PreparedFace:
    return face.prepare(path, self.cfg.canvas_size, select=select)

  def fit(self, prepared: List[face.PreparedFace], sources: Sequence[str], shared_identity: bool = False,
          progress=None) -> List[Result]:
    images = np.stack([p.canvas for p in prepared]).astype(np.float32)
    lms = np.stack([p.landmarks for p in prepared]).astype(np.float32)
    if not np.all(np.isfinite(images)) or not np.all(np.isfinite(lms)):
      raise face.FaceInputError("the photo or its landmarks contain NaN/inf after loading; re-save the image")
    key = jax.random.PRNGKey(self.cfg.seed)
    targets = fitting.prepare_targets(self.objective, self.frozen, images, lms, key)
    res = fitting.fit(self.objective, self.frozen, targets, self.fit_cfg, jax.random.fold_in(key, 1),
                      self.texture.latent_dim, shared_identity=shared_identity, callback=progress,
                      step_fn=self.step)
    out = []
    for i, (p, src) in enumerate(zip(prepared, sources)):
      out.append(Result(source=src, prepared=p, params=jax.tree_util.tree_map(lambda x: x[i], res.params),
                        final={k: float(v[i]) for k, v in res.final.items()},
                        history={k: v[:, i] for k, v in res.history.items()}, seconds=res.seconds,
                        shared_with=list(sources) if shared_identity else ()))
    return out

  # ------------------------------------------------------------------ outputs
  def named_params(self, p: obj.FitParams) -> dict:
    expr = np.asarray(obj.expression_values(self.model.expression_kind, p.expression))
    cam = np.asarray(obj.camera_of(p))
    light = np.asarray(obj.light_of(p))
    names = self.model.expression_names or tuple(f"expression_{i:03d}" for i in range(len(expr)))
    return dict(
        shape=np.asarray(p.shape).round(6).tolist(),
        expression={n: round(float(v), 6) for n, v in zip(names, expr)},
        texture_latent=np.asarray(p.texture).round(6).tolist(),
        camera=dict(position=cam[0:3].tolist(), look_at=cam[3:6].tolist(), up=cam[6:9].tolist(),
                    focal=float(cam[9])),
        light=dict(position=light[0:3].tolist(), colour=light[3:6].tolist(), ambient=light[6:9].tolist()),
        model=self.model.name, texture_model=self.texture.kind, units="mm, model frame; focal in image heights")

  def write(self, r: Result, out_dir: str, overwrite: bool = True) -> str:
    """Writes every output of one result into ``out_dir`` (atomically: a temp dir renamed at the end)."""
    t0 = time.perf_counter()
    p = r.params
    s = self.cfg.canvas_size
    canvas = r.prepared.canvas.astype(np.float32)
    out, texture = self._render(self.frozen, p, jnp.asarray(canvas))
    expr = obj.expression_values(self.model.expression_kind, p.expression)
    verts = np.asarray(morphable.vertices(self.model, p.shape, expr))
    neutral = np.asarray(morphable.vertices(self.model, p.shape))
    texture = np.asarray(texture)
    grey = np.asarray(self._grey_render(p))
    render_img = np.asarray(out.image)
    overlay = render_img  # the textured face composited over the canvas photo
    cam = obj.camera_of(p)
    lm_canvas = np.asarray(jax.jit(lambda q: fitting.camera_lib.project(
        obj.camera_of(q), morphable.landmark_points(self.model, q.shape,
                                                    obj.expression_values(self.model.expression_kind,
                                                                          q.expression)), s, s)[0])(p))
    lm_photo = face.apply_affine(face.invert_affine(r.prepared.to_canvas), lm_canvas)
    id_cos = 1.0 - r.final["identity"]
    parent = os.path.dirname(os.path.abspath(out_dir)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".fit-", dir=parent)
    try:
      write_obj(os.path.join(tmp, "mesh.obj"), verts, self.model, material="mesh.mtl")
      write_mtl(os.path.join(tmp, "mesh.mtl"), "texture.png")
      write_png(os.path.join(tmp, "texture.png"), texture)
      write_obj(os.path.join(tmp, "mesh_neutral.obj"), neutral, self.model, material="mesh.mtl")
      write_glb(os.path.join(tmp, "mesh.glb"), verts, self.model, texture)
      named = self.named_params(p)
      with open(os.path.join(tmp, "params.json"), "w") as f:
        json.dump(named, f, indent=1)
      np.savez(os.path.join(tmp, "params.npz"), shape=np.asarray(p.shape), expression=np.asarray(expr),
               expression_names=np.array(self.model.expression_names), texture_latent=np.asarray(p.texture),
               camera=np.asarray(cam), light=np.asarray(obj.light_of(p)))
      write_png(os.path.join(tmp, "overlay.png"), overlay)
      import cv2
      tex_big = cv2.resize(texture, (s, s), interpolation=cv2.INTER_LINEAR)
      write_png(os.path.join(tmp, "comparison.png"),
                np.concatenate([canvas, overlay, tex_big, grey], 1))
      write_png(os.path.join(tmp, "convergence.png"), convergence_plot(r.history, self.fit_cfg.stage1_steps))
      report = dict(
          source=os.path.abspath(r.source), preset=self.cfg.preset, shared_identity_with=list(r.shared_with),
          final_loss_terms={k: round(v, 6) for k, v in r.final.items()},
          identity_cosine_photo_vs_render=round(id_cos, 4), identity_net=self.net.name,
          landmarks_photo_px=np.asarray(lm_photo).round(2).tolist(),
          landmarks_3d_mm=np.asarray(morphable.landmarks(self.model, jnp.asarray(verts))).round(3).tolist(),
          faces_detected=r.prepared.num_faces, photo_size=list(r.prepared.photo_shape),
          timings_s=dict(fit=round(r.seconds, 3), write=round(time.perf_counter() - t0, 3)),
          steps=dict(stage1=self.fit_cfg.stage1_steps, stage2=self.fit_cfg.stage2_steps,
                     inits=self.fit_cfg.num_inits),
          assets={n: _asset_version(n) for n in (self.cfg.model, "sface", "texture_gan", "dlib_landmarks68")
                  if n in assets.ASSETS},
          versions=dict(jax=jax.__version__, ganfit_jax=_package_version()))
      with open(os.path.join(tmp, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
      if os.path.exists(out_dir):
        if not overwrite:
          raise FileExistsError(out_dir)
        shutil.rmtree(out_dir)
      os.replace(tmp, out_dir)
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
    return out_dir

  def _grey_render(self, p: obj.FitParams):
    from ganfit_jax.render import default_light, render_model
    s = self.cfg.canvas_size
    expr = obj.expression_values(self.model.expression_kind, p.expression)
    return render_model(self.model, p.shape, expr, jnp.full((4, 4, 3), 0.75), obj.camera_of(p), default_light(),
                        height=s, width=s).image


def _package_version() -> str:
  try:
    from importlib.metadata import version
    return version("ganfit_jax")
  except Exception:  # noqa: BLE001
    return "dev"


def convergence_plot(history: Dict[str, np.ndarray], stage1_steps: int, width: int = 900) -> np.ndarray:
  """One small log-scale panel per loss term over the iterations (stage boundary dashed); [0, 1] RGB."""
  import cv2
  terms = [k for k in ("loss", "identity", "identity_hat", "content", "pixel", "landmark", "align",
                       "reg_shape", "reg_expression", "reg_light", "landmark_rmse_px") if k in history]
  cols, ph = 3, 150
  pw = width // cols
  rows = -(-len(terms) // cols)
  img = np.full((rows * ph, cols * pw, 3), 255, np.uint8)
  for n, k in enumerate(terms):
    y = np.asarray(history[k], np.float64)
    r, c = divmod(n, cols)
    x0, y0 = c * pw + 40, r * ph + 20
    w, h = pw - 55, ph - 45
    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (200, 200, 200), 1)
    pos = y[np.isfinite(y) & (y > 0)]
    label = k
    if len(pos):
      ly = np.log10(np.clip(y, pos.min(), None))
      lo, hi = ly.min(), max(ly.max(), ly.min() + 1e-6)
      pts = np.stack([x0 + np.arange(len(y)) * w / max(len(y) - 1, 1), y0 + h - (ly - lo) / (hi - lo) * h], 1)
      cv2.polylines(img, [pts.astype(np.int32)], False, (30, 90, 200), 1, cv2.LINE_AA)
      label = f"{k}: {y[-1]:.4g}"
      cv2.putText(img, f"{10 ** hi:.2g}", (c * pw + 2, y0 + 8), cv2.FONT_HERSHEY_PLAIN, 0.7, (0, 0, 0))
      cv2.putText(img, f"{10 ** lo:.2g}", (c * pw + 2, y0 + h), cv2.FONT_HERSHEY_PLAIN, 0.7, (0, 0, 0))
    if 0 < stage1_steps < len(y):
      xs = int(x0 + stage1_steps * w / max(len(y) - 1, 1))
      for yy in range(y0, y0 + h, 6):
        cv2.line(img, (xs, yy), (xs, yy + 3), (150, 150, 150), 1)
    cv2.putText(img, label, (x0, r * ph + 14), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0))
  return img.astype(np.float32) / 255.0
