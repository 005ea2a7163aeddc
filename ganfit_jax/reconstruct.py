"""The main job as a library: photos in, fitted textured faces and their files out.

  rec = Reconstructor(config)                     # loads the scene (model, texture model, identity net)
  faces = [rec.prepare(p) for p in paths]         # load, detect, 68 landmarks, canvas
  results = rec.fit(faces, paths)                 # independent photos (batched)
  results = rec.fit(faces, paths, shared_identity=True)  # several photos of one person
  rec.write(results[0], "out/dir")                # every output file, atomically

Data flow of one fit: ``face.prepare`` -> ``objective.prepare_targets`` (identity
embedding and content features of the photo's 112 crop) -> ``fitting.fit``
(compiled chunks over the config's stages) -> ``FaceParams`` -> :func:`render_outputs`
(one compiled function: overlay, render alone, shape, texture, meshes) -> files.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import threading
import time
from typing import Optional, Dict, List, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ganfit_jax import assets, compiled, face, fitting, lighting, morphable, numerics, objective, runtime
from ganfit_jax import params as params_lib
from ganfit_jax import scene as scene_lib
from ganfit_jax.face import align
from ganfit_jax.nets import identity as identity_lib
from ganfit_jax.outputs import arkit, images, meshes, page
from ganfit_jax.outputs.files import atomic_dir
from ganfit_jax.texture import detail
from ganfit_jax.texture import models as texture_models
from ganfit_jax.types import EXPRESSION_BLENDSHAPE, FaceParams

GREY = 0.5  # background of renders shown alone
# Files --export (config field ``export``) chooses among; report.json, params.* and the PNGs are always written.
EXPORTS = {"obj": "mesh.obj + mesh.mtl + mesh_neutral.obj (mm, texture.png)",
           "glb": "mesh.glb: textured, metres, the expression shapes as morph targets (animatable)",
           "ply": "mesh.ply: vertex colours from the texture and per-vertex UVs (mm)",
           "arkit": "arkit52.json: ARKit's 52 blendshape weights (models with ARKit semantics)",
           "html": "index.html: the report page with a 3D view of mesh.glb (viewer/ beside it)"}
PICTURES = (("photo.jpg", "photo (the fitted crop)"), ("overlay.png", "fit over the photo"),
            ("render.png", "the face rendered alone, in the photo's frame"), ("texture.png", "UV texture"),
            ("comparison.png", "photo | overlay | render | texture | shape"), ("convergence.png", "loss terms"))


# GANFit, Fast-GANFit (regressor alone), GANFit++ (regressor init + fit); 'auto': GANFit++ when the configured
# regressor was trained for this config's scene, GANFit otherwise (Reconstructor.mode_note says why)
MODES = ("auto", "fit", "regress", "regress_fit")


def load_regressor(name_or_path: str, scene: scene_lib.Scene, cfg):
  """The regressor of ``--config.regressor`` (asset name or .npz), checked against this config's scene."""
  from ganfit_jax import regressor as regressor_lib
  path = assets.path(name_or_path) if name_or_path in assets.ASSETS else name_or_path
  net, meta = regressor_lib.load(path)
  want = dict(regressor_lib.group_sizes(scene))
  got = dict(net.module.sizes)
  # the identity network's features are inputs of the regressor: another network is another input space
  ident = meta.get("identity_net")
  same_ident = ident is None or scene.identity is None or ident in (cfg.identity_net, scene.identity.name)
  if got != want or int(meta.get("canvas_size", cfg.canvas_size)) != int(cfg.canvas_size) or not same_ident:
    raise ValueError(f"the regressor {name_or_path!r} was trained for another model, texture model, identity "
                     f"network or canvas (outputs {got}, identity network {ident!r}, canvas "
                     f"{meta.get('canvas_size')}; this config needs {want}, {cfg.identity_net!r}, canvas "
                     f"{cfg.canvas_size}); train one with tools/train_regressor.py or use --config.mode=fit")
  return net


def short_schedule(schedule: fitting.Schedule, scale: float) -> fitting.Schedule:
  """GANFit++'s schedule: every stage's steps times ``scale`` (at least one step), one texture init."""
  if not (0.0 < scale <= 1.0):
    raise ValueError(f"regress_fit_scale must be in (0, 1], got {scale}")
  stages = tuple(dataclasses.replace(st, steps=max(1, int(round(st.steps * scale))) if st.steps else 0)
                 for st in schedule.stages)
  return dataclasses.replace(schedule, stages=stages, num_inits=1)


def parse_exports(value) -> tuple:
  """The export names of a comma-separated string or a sequence; a ValueError names unknown ones."""
  names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
  bad = [n for n in names if n not in EXPORTS]
  if bad:
    raise ValueError(f"unknown export(s) {', '.join(bad)}: choose from {', '.join(EXPORTS)}")
  return tuple(dict.fromkeys(names))


@dataclasses.dataclass
class Result:
  """One fitted photo: its physical parameters, loss terms and the photo side it was fitted to."""
  source: str
  prepared: face.PreparedFace
  face: FaceParams                 # single example
  final: Dict[str, float]
  history: Dict[str, np.ndarray]   # term -> (steps,)
  seconds: float
  embedding: np.ndarray            # identity embedding of the photo (the fitting network)
  align_matrix: np.ndarray         # (2, 3) canvas -> 112 crop of the photo
  stages: Sequence = ()
  shared_with: Sequence[str] = ()


def render_outputs(scene: scene_lib.Scene, f: FaceParams, canvas, embedding, align_matrix, texture, *,
                   render_size: int):
  """Everything the output files show, in one compiled call (one example; ``texture`` the final map)."""
  return compiled.call(functools.partial(_render_outputs, render_size=render_size), scene, f,
                       compiled.float32(canvas), compiled.float32(embedding), compiled.float32(align_matrix),
                       compiled.float32(texture),
                       name="render_outputs", static=render_size)


def output_texture(scene: scene_lib.Scene, f: FaceParams, detail_canvas=None, lay=None):
  """The final texture at ``scene.texture_size``: the fitted texture composed (neck prior, eyes), with the
  photo's detail blended in when ``detail_canvas`` (the prepared face's detail crop) is given."""
  if detail_canvas is None:
    return compiled.call(lambda sc, lat: (sc.texture_image(lat),), scene, f.texture, name="compose_texture")[0]
  scale = detail_canvas.shape[0] / scene.canvas_size
  c2d = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]], np.float32)

  def run(sc, f, photo, lay, c2d):
    verts = morphable.vertices(sc.model, f.shape, f.expression)
    tex, conf = detail.photo_detail(photo, verts, sc.model.triangles, f.camera, f.light, sc.texture_image(f.texture),
                                    c2d, lay, sc.face_weight, sc.cheeks, canvas_size=sc.canvas_size)
    return tex, conf

  photo = compiled.float32(np.asarray(detail_canvas, np.float32) / 255.0 if np.asarray(detail_canvas).dtype == np.uint8
                           else detail_canvas)
  return compiled.call(run, scene, f, photo, lay, c2d, name="photo_detail")[0]


def _render_outputs(scene, f, canvas, embedding, align_matrix, texture, *, render_size: int):
  s = scene.canvas_size
  r = render_size
  verts = morphable.vertices(scene.model, f.shape, f.expression)
  # one batch of two renders at render_size: the fitted face, and its shape alone (flat grey albedo,
  # default light); the canvas-sized pictures are downsampled from them (anti-aliased edges)
  grey_texture = jnp.full_like(texture, 0.75)
  lights = jnp.stack([f.light, lighting.default_light()])

  def one(tex, light):
    out, mask = objective.render_mesh(scene, verts, tex, f.camera, light, jnp.full((r, r, 3), GREY), size=r)
    return out.image, mask

  views, masks = jax.vmap(one)(jnp.stack([texture, grey_texture]), lights)
  small = lambda x: jax.image.resize(x, (s, s) + x.shape[2:], "linear", antialias=True)  # noqa: E731
  alpha = small(masks[0].astype(jnp.float32))[..., None]
  overlay = canvas * (1.0 - alpha) + small(views[0]) * alpha
  emb, _ = scene.identity(align.warp_affine(overlay, align_matrix, 112, 112))
  return dict(overlay=overlay, alone=views[0], alone_small=small(views[0]), coverage=alpha[..., 0], shape=small(views[1]), texture=texture,
              vertices=verts, neutral=morphable.vertices(scene.model, f.shape),
              landmarks=objective.project_landmarks(scene, f), identity_cosine=numerics.cosine(emb, embedding))


def _asset_version(name: str) -> str:
  try:
    p = assets.path(name, verify=False)
  except assets.AssetError:
    return "missing"
  side = p + ".sha256"
  if os.path.exists(side):
    with open(side) as f:
      return f.read().split()[0][:16]
  h = hashlib.sha256()
  with open(p, "rb") as f:
    h.update(f.read(1 << 20))
  return h.hexdigest()[:16]


def _used(name_or_path: str, asset_names: Dict[str, str]) -> dict:
  """{name: version} of an asset name, or {path: sha-prefix} of a file given by path."""
  name = asset_names.get(name_or_path, name_or_path)
  if name in assets.ASSETS:
    return {name: _asset_version(name)}
  return {os.path.abspath(name_or_path): assets.sha256_file(name_or_path)[:16]}


def evaluate_variables(scene, variables, targets, weights, key, images: bool = True):
  """The loss terms (aux, (B,) each) of given Variables (B, ...), in one compiled call (no optimisation).

  ``images=False`` (or a scene without images): the landmark and regulariser terms only, without a render or
  an identity-network pass; the image terms and the total ``loss`` (which would count them as 0) are left out.
  """
  keys = jax.random.key_data(jax.random.split(key, int(targets.landmarks.shape[0])))
  images = bool(images and scene.has_images)

  def run(sc, v, t, w, k):
    if not images:
      return jax.vmap(lambda vi, ti: objective.geometry_terms(vi, sc, ti, w))(v, t)
    return jax.vmap(lambda vi, ti, ki: objective.loss_fn(vi, sc, ti, w, jax.random.wrap_key_data(ki))[1])(v, t, k)

  return compiled.call(run, scene, variables, targets, weights, keys, name="evaluate_variables", static=images)


def landmark_weights(num: int, jaw_weight: float) -> np.ndarray:
  """(num, 68) weights of the landmark terms: ``jaw_weight`` on the 17 jaw-contour points (iBUG 0-16, which
  are silhouette points of the photo but fixed vertices of the model), 1 elsewhere."""
  if not np.isfinite(jaw_weight) or jaw_weight < 0:
    raise ValueError(f"jaw_weight={jaw_weight} must be a finite number >= 0 (configs/fit.py: --config.jaw_weight)")
  w = np.ones((num, 68), np.float32)
  w[:, :17] = jaw_weight
  return w


class Reconstructor:
  """Loads the scene of a ``configs/fit.py`` config once; fits and writes photos."""

  def __init__(self, cfg):
    self.cfg = cfg
    if self.detector not in face.DETECTORS:
      raise ValueError(f"detector {self.detector!r} is not one of {', '.join(face.DETECTORS)}")
    model = morphable.load(cfg.model)
    texture = texture_models.load(cfg.texture_model)
    net = identity_lib.load(cfg.identity_net)
    self.scene = scene_lib.make(model, texture, net, canvas_size=cfg.canvas_size, texture_size=cfg.texture_size)
    self.out_scene = scene_lib.make(model, texture, net, canvas_size=cfg.canvas_size,
                                    texture_size=cfg.output_texture_size)
    self.detail_layout = detail.detail_layout(model, cfg.output_texture_size) if cfg.texture_detail else None
    self.schedule = fitting.schedule_from_config(cfg, zero_first_init=texture.kind == "pca")
    self.mode = str(cfg.get("mode", "fit"))
    if self.mode not in MODES:
      raise ValueError(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
    self.regressor = None
    self.mode_note = None  # why 'auto' resolved to 'fit'
    if self.mode == "auto":
      try:
        self.regressor = load_regressor(cfg.get("regressor", "regressor"), self.scene, cfg)
        self.mode = "regress_fit"
      except ValueError as e:
        self.mode, self.mode_note = "fit", f"mode auto: fitting from the mean face (GANFit), because {e}"
    elif self.mode != "fit":
      self.regressor = load_regressor(cfg.get("regressor", "regressor"), self.scene, cfg)
    if self.mode != "fit":
      self.schedule = short_schedule(self.schedule, float(cfg.get("regress_fit_scale", 1 / 3)))
    self.render_size = int(cfg.render_size)
    self._prefetch = None  # the thread of prefetch_outputs, once started
    self.exports = parse_exports(cfg.get("export", ",".join(EXPORTS)))

  @property
  def model(self):
    return self.scene.model

  def prepare(self, path: str, select="largest", landmarks=None, face_box=None) -> face.PreparedFace:
    """:func:`ganfit_jax.face.prepare` at this config's canvas size."""
    return face.prepare(path, self.cfg.canvas_size, select=select, landmarks=landmarks, face_box=face_box,
                        detector=self.detector)

  def prepare_faces(self, path: str) -> List[face.PreparedFace]:
    """:func:`ganfit_jax.face.prepare_faces` (every face of a photo) at this config's canvas size."""
    return face.prepare_faces(path, self.cfg.canvas_size, detector=self.detector)

  def layout_note(self) -> Optional[str]:
    """A warning when the texture model was not made for this model's UV layout (its chart, the texels
    it colours, covers under 80% of the model's UV charts at the texture's resolution, or the reverse):
    the fit still runs, the texture lands on the wrong places; None when they agree."""
    tex = self.scene.texture
    if tex is None:
      return None
    from ganfit_jax.texture import layout
    covered = layout.texel_map(self.scene.model, int(tex.resolution)).mask
    chart = np.asarray(tex.chart, bool)
    iou = float((covered & chart).sum() / max((covered | chart).sum(), 1))
    if iou >= 0.8:
      return None
    return (f"the texture model ({self.cfg.texture_model}) was made for another UV layout than the model "
            f"{self.cfg.model!r} (chart overlap {iou:.2f}); shape, pose and landmarks fit as usual, but the texture "
            "will be misplaced. Build a texture model for this layout (tools/build_uv_dataset.py + "
            "tools/build_pca.py or tools/train_gan.py with --config.model=...), or use a model in ICT-FaceKit's "
            "layout.")

  @property
  def detector(self) -> str:
    return str(self.cfg.get("detector", face.DEFAULT_DETECTOR))

  def fit(self, prepared: List[face.PreparedFace], sources: Sequence[str], shared_identity: bool = False,
          progress=None, mesh=None, photo_keys=None) -> List[Result]:
    """Fits photos together (a batch; ``shared_identity``: one person). ``mesh``, ``photo_keys``: as
    :func:`ganfit_jax.fitting.fit` (shard the batch over devices; per-photo random keys)."""
    images_ = np.stack([p.canvas for p in prepared]).astype(np.float32)
    lms = np.stack([p.landmarks for p in prepared]).astype(np.float32)
    if not np.all(np.isfinite(images_)) or not np.all(np.isfinite(lms)):
      raise face.FaceInputError("the photo or its landmarks contain NaN/inf after loading; re-save the image")
    lw = landmark_weights(len(prepared), float(self.cfg.jaw_weight))
    if self.mode == "regress" and not shared_identity and not self.cfg.get("regress_loss_terms", False):
      targets, res = self._regress_fast(images_, lms, lw, progress)  # Fast-GANFit in one compiled call
    else:
      targets = objective.prepare_targets(self.scene, images_, lms, lw)
      if self.mode == "fit":
        res = fitting.fit(self.scene, targets, self.schedule, key=jax.random.key(self.cfg.seed),
                          shared_identity=shared_identity, progress=progress, mesh=mesh, photo_keys=photo_keys)
      else:
        res = self._regress(targets, shared_identity, progress, mesh, photo_keys)
    out = []
    # one transfer to the host, then per-photo slices of NumPy arrays (slicing device arrays one by one runs
    # a small program per leaf and photo)
    faces, embedding, align = jax.device_get((res.faces, targets.embedding, targets.align_matrix))
    for i, (p, src) in enumerate(zip(prepared, sources)):
      out.append(Result(source=src, prepared=p, face=jax.tree_util.tree_map(lambda x: x[i], faces),
                        final={k: float(v[i]) for k, v in res.final.items()},
                        history={k: v[:, i] for k, v in res.history.items()}, seconds=res.seconds,
                        embedding=embedding[i], align_matrix=align[i],
                        stages=res.stages, shared_with=list(sources) if shared_identity else ()))
    return out

  def _regress(self, targets, shared_identity, progress, mesh, photo_keys) -> fitting.FitResult:
    """Fast-GANFit (``regress``: the prediction is the result) or GANFit++ (``regress_fit``: it starts a
    shortened fit). Several photos of one person: the per-photo predictions of shape and texture are averaged."""
    from ganfit_jax import regressor as regressor_lib
    t0 = time.perf_counter()
    v, _ = regressor_lib.predict(self.regressor, self.scene, targets)
    if shared_identity:
      v = v.replace(**{g: jnp.broadcast_to(jnp.mean(getattr(v, g), 0, keepdims=True), getattr(v, g).shape)
                       for g in ("shape", "texture")})
    if self.mode == "regress_fit":
      return fitting.fit(self.scene, targets, self.schedule, key=jax.random.key(self.cfg.seed), init=v,
                         shared_identity=shared_identity, progress=progress, mesh=mesh, photo_keys=photo_keys)
    weights = self.schedule.stages[-1].loss_weights()
    aux = evaluate_variables(self.scene, v, targets, weights, jax.random.key(self.cfg.seed),
                             images=bool(self.cfg.get("regress_loss_terms", False)))
    faces = jax.vmap(lambda x: params_lib.to_face(x, self.scene.model.expression_kind))(v)
    return self._regress_result(faces, v, aux, progress, t0)

  def _regress_fast(self, images_, lms, lw, progress):
    """``regress`` with the geometry terms only: targets, prediction and terms in one compiled call."""
    from ganfit_jax import regressor as regressor_lib
    t0 = time.perf_counter()
    targets, v, faces, aux = regressor_lib.regress(self.regressor, self.scene, images_, lms, lw,
                                                   self.schedule.stages[-1].loss_weights())
    return targets, self._regress_result(faces, v, aux, progress, t0)

  @staticmethod
  def _regress_result(faces, v, aux, progress, t0) -> fitting.FitResult:
    aux = {k: np.asarray(x)[None] for k, x in jax.device_get(aux).items()}  # (1 step, B)
    if progress is not None:
      progress(1, 1, dict({k: float(np.mean(x)) for k, x in aux.items()}, stage="regress"))
    total = aux.get("loss", aux["landmark"])
    return fitting.FitResult(faces=faces, variables=v, final={k: x[-1] for k, x in aux.items()}, history=aux,
                             init_losses=total.T, best_init=np.zeros((total.shape[1],), int),
                             seconds=time.perf_counter() - t0, stages=(("regress", 0),))

  # ------------------------------------------------------------------ outputs
  def named_params(self, f: FaceParams) -> dict:
    expr = np.asarray(f.expression)
    cam, light = np.asarray(f.camera), np.asarray(f.light)
    names = self.model.expression_names or tuple(f"expression_{i:03d}" for i in range(len(expr)))
    return dict(
        shape=np.asarray(f.shape).round(6).tolist(),
        expression={n: round(float(v), 6) for n, v in zip(names, expr)},
        texture_latent=np.asarray(f.texture).round(6).tolist(),
        camera=dict(position=cam[0:3].tolist(), look_at=cam[3:6].tolist(), up=cam[6:9].tolist(),
                    focal=float(cam[9])),
        light=dict(position=light[0:3].tolist(), colour=light[3:6].tolist(), ambient=light[6:9].tolist()),
        model=self.model.name, texture_model=self.scene.texture.kind,
        units="mm, model frame; focal in image heights")

  def assets_used(self, detected: bool = True) -> dict:
    used = {}
    used.update(_used(self.cfg.model, {}))
    used.update(_used(self.cfg.texture_model, {"gan": "texture_gan", "pca": "texture_pca"}))
    used.update(_used(self.cfg.identity_net, {}))
    if self.mode != "fit":
      used.update(_used(self.cfg.get("regressor", "regressor"), {}))
    if detected:
      used.update(_used("dlib_landmarks68", {}))
      if self.detector in ("combined", "yunet"):
        used.update(_used("yunet", {}))
    return used

  def prefetch_outputs(self, prepared: face.PreparedFace) -> threading.Thread:
    """Starts making the programs :meth:`write` runs ready (compiled, or loaded from the compilation caches)
    in a background thread, by running them once on a placeholder result shaped like a fit of ``prepared``;
    returns the thread (the first call's: later calls start nothing).

    Call it before :meth:`fit`: the fit's compiled steps leave CPU cores idle (about one of two here), so the
    outputs' programs are ready when the fit ends instead of compiling after it. :meth:`write` waits for a
    program still being built (:func:`ganfit_jax.compiled.call`); errors in the thread are dropped
    (:meth:`write` meets them itself)."""
    if not isinstance(prepared, face.PreparedFace):
      raise TypeError(f"prefetch_outputs needs a PreparedFace (Reconstructor.prepare), got {type(prepared).__name__}")

    def run():
      try:
        # only the shapes matter: zeros shaped like a fit's Result.face (NumPy leaves), no program to make them
        shapes = jax.eval_shape(lambda: params_lib.to_face(params_lib.init(
            self.model, jnp.zeros((self.scene.texture.latent_dim,))), self.model.expression_kind))
        f = jax.tree_util.tree_map(lambda x: np.zeros(x.shape, x.dtype), shapes)
        use_detail = self.detail_layout is not None and prepared.detail is not None
        tex = output_texture(self.out_scene, f, np.zeros_like(prepared.detail) if use_detail else None,
                             self.detail_layout)
        s = self.cfg.canvas_size
        emb = np.zeros((self.scene.identity.embedding_size,), np.float32)
        jax.block_until_ready(render_outputs(self.out_scene, f, np.zeros((s, s, 3), np.float32), emb,
                                             np.zeros((2, 3), np.float32), tex, render_size=self.render_size))
      except Exception:  # noqa: BLE001  (a warm-up only: write() builds and reports for itself)
        pass

    if self._prefetch is None:  # once per Reconstructor
      self._prefetch = threading.Thread(target=run, name="ganfit-prefetch-outputs")
      self._prefetch.start()
    return self._prefetch

  def write(self, r: Result, out_dir: str, overwrite: bool = True, tmp_root=None) -> dict:
    """Writes every output of one result into ``out_dir`` (atomically: a temp dir, in ``tmp_root`` when
    given, renamed at the end: :func:`ganfit_jax.outputs.files.atomic_dir`); returns the report."""
    t0 = time.perf_counter()
    f, s = r.face, self.cfg.canvas_size
    canvas = r.prepared.canvas.astype(np.float32)
    use_detail = self.detail_layout is not None and r.prepared.detail is not None
    texture = output_texture(self.out_scene, f, r.prepared.detail if use_detail else None, self.detail_layout)
    o = jax.device_get(render_outputs(self.out_scene, f, canvas, r.embedding, r.align_matrix, texture,
                                      render_size=self.render_size))
    lm_photo = face.apply_affine(face.invert_affine(r.prepared.to_canvas), o["landmarks"])
    # render.png: the face alone on grey, at its place in the photo, the photo's size
    photo_to_render = np.asarray(r.prepared.to_canvas, np.float64) * (self.render_size / s)
    alone_photo = images.to_photo_frame(o["alone"], photo_to_render, r.prepared.photo_shape, GREY)
    import cv2
    tex_small = cv2.resize(o["texture"], (s, s), interpolation=cv2.INTER_AREA)
    ex = self.exports
    exported = {}
    with atomic_dir(out_dir, overwrite=overwrite, tmp_root=tmp_root) as tmp:
      texture_png = images.encode_png(o["texture"])
      with open(os.path.join(tmp, "texture.png"), "wb") as fh:
        fh.write(texture_png)
      if "obj" in ex:
        meshes.write_obj(os.path.join(tmp, "mesh.obj"), o["vertices"], self.model, material="mesh.mtl")
        meshes.write_mtl(os.path.join(tmp, "mesh.mtl"), "texture.png")
        meshes.write_obj(os.path.join(tmp, "mesh_neutral.obj"), o["neutral"], self.model, material="mesh.mtl")
        exported["obj"] = ["mesh.obj", "mesh.mtl", "mesh_neutral.obj"]
      names = arkit.target_names(self.model.expression_names) if self.model.expression_names else [
          f"expression_{i:03d}" for i in range(self.model.num_expression)]
      if "glb" in ex:
        info = meshes.write_glb(os.path.join(tmp, "mesh.glb"), self.model, o["neutral"], texture_png,
                                expression=np.asarray(f.expression), target_names=names)
        exported["glb"] = dict(file="mesh.glb", **info)
      if "ply" in ex:
        exported["ply"] = dict(file="mesh.ply", vertices=meshes.write_ply(
            os.path.join(tmp, "mesh.ply"), o["vertices"], self.model, o["texture"]))
      if "arkit" in ex:
        with open(os.path.join(tmp, "arkit52.json"), "w") as fh:
          json.dump(arkit.arkit52(self.model.expression_names, np.asarray(f.expression), self.model.expression_kind,
                                  self.model.name), fh, indent=1)
        exported["arkit"] = ["arkit52.json"]
      with open(os.path.join(tmp, "params.json"), "w") as fh:
        json.dump(self.named_params(f), fh, indent=1)
      np.savez(os.path.join(tmp, "params.npz"), shape=np.asarray(f.shape), expression=np.asarray(f.expression),
               expression_names=np.array(self.model.expression_names), texture_latent=np.asarray(f.texture),
               camera=np.asarray(f.camera), light=np.asarray(f.light))
      images.write_png(os.path.join(tmp, "overlay.png"), o["overlay"])
      images.write_jpg(os.path.join(tmp, "photo.jpg"),
                       r.prepared.detail if r.prepared.detail is not None else images.to_uint8(canvas))
      images.write_png(os.path.join(tmp, "render.png"), alone_photo)
      images.write_png(os.path.join(tmp, "comparison.png"),
                       np.concatenate([canvas, o["overlay"], o["alone_small"], tex_small, o["shape"]], 1))
      starts = np.cumsum([n for _, n in r.stages])[:-1].tolist()
      images.write_png(os.path.join(tmp, "convergence.png"), images.convergence_plot(r.history, starts))
      report = dict(
          source=os.path.abspath(r.source), preset=self.cfg.preset, mode=self.mode, shared_identity_with=list(r.shared_with),
          final_loss_terms={k: round(v, 6) for k, v in r.final.items()},
          **({} if "loss" in r.final else dict(final_loss_terms_note=(
              "the regressor's prediction, evaluated on its landmark and regulariser terms only; "
              "--config.regress_loss_terms=True adds the image terms and the total loss"))),
          identity_cosine_photo_vs_render=round(float(o["identity_cosine"]), 4),
          identity_cosine_note="fitting network on the final render composited over the photo, 112 crop",
          identity_net=self.scene.identity.name, texture_model=self.scene.texture.kind, model=self.model.name,
          texture_detail=bool(use_detail), texture_size=int(o["texture"].shape[0]),
          landmarks_photo_px=np.asarray(lm_photo).round(2).tolist(),
          landmarks_3d_mm=np.asarray(o["vertices"][np.asarray(self.model.landmarks)]).round(3).tolist(),
          faces_detected=r.prepared.num_faces, photo_size=list(r.prepared.photo_shape),
          timings_s=dict(fit=round(r.seconds, 3), write=round(time.perf_counter() - t0, 3),
                         **{f"{k}_so_far": v for k, v in runtime.compile_seconds().items()}),
          steps={name: n for name, n in r.stages}, inits=self.schedule.num_inits,
          assets=self.assets_used(detected=r.prepared.detected), exports=exported,
          versions=dict(jax=jax.__version__, ganfit_jax=_package_version()))
      if "html" in ex:
        gaussian = self.model.expression_kind != EXPRESSION_BLENDSHAPE
        page.write_page(tmp, report, glb="mesh.glb" if "glb" in ex else None, target_names=names,
                        weight_range=(-3.0, 3.0) if gaussian else (0.0, 1.0), pictures=PICTURES)
        report["exports"]["html"] = ["index.html"] + (["viewer/"] if os.path.isdir(os.path.join(tmp, "viewer")) else [])
      report["timings_s"]["write"] = round(time.perf_counter() - t0, 3)
      with open(os.path.join(tmp, "report.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    return report


def _package_version() -> str:
  try:
    from importlib.metadata import version
    return version("ganfit_jax")
  except Exception:  # noqa: BLE001  (not installed: running from a checkout)
    return "dev"


__all__ = ["Reconstructor", "Result", "render_outputs", "GREY"]
