"""Writing one fitted photo: every output file, atomically, and its typed report.

  w = Writer(scene, detail_layout=..., render_size=512, exports=("obj", "glb"), preset="fast", mode="fit", inits=1)
  w.prefetch(prepared)                          # optional: builds the output programs while the fit runs
  report = w.write(result, "out/dir", assets={...})   # a Report; report.json holds report.to_json()

What is written (``--export`` chooses the mesh and page files, :data:`EXPORTS`; the rest always):
texture.png, params.npz / params.json, overlay.png, photo.jpg, render.png, comparison.png, convergence.png
(:data:`PICTURES`), report.json, and the exports.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ganfit_jax import morphable, objective, runtime
from ganfit_jax import params as params_lib
from ganfit_jax.face import PreparedFace, apply_affine, invert_affine
from ganfit_jax.files import atomic_dir
from ganfit_jax.outputs import arkit, images, meshes, page
from ganfit_jax.outputs.render import GREY, output_texture, render_outputs
from ganfit_jax.outputs.report import Report, Result
from ganfit_jax.scene import Scene
from ganfit_jax.types import EXPRESSION_BLENDSHAPE, FaceParams

# Files --export (config field ``export``) chooses among; report.json, params.* and the PNGs are always written.
EXPORTS = {"obj": "mesh.obj + mesh.mtl + mesh_neutral.obj (mm, texture.png)",
           "glb": "mesh.glb: textured, metres, the expression shapes as morph targets (animatable)",
           "ply": "mesh.ply: vertex colours from the texture and per-vertex UVs (mm)",
           "arkit": "arkit52.json: ARKit's 52 blendshape weights (models with ARKit semantics)",
           "html": "index.html: the report page with a 3D view of mesh.glb (viewer/ beside it)"}
PICTURES = (("photo.jpg", "photo (the fitted crop)"), ("overlay.png", "fit over the photo"),
            ("render.png", "the face rendered alone, in the photo's frame"), ("texture.png", "UV texture"),
            ("comparison.png", "photo | overlay | render | texture | shape"), ("convergence.png", "loss terms"))
# the convergence plot's panels: the total, every term of the objective, the landmark error in pixels
PLOTTED = ("loss",) + objective.TERMS + ("landmark_rmse_px",)


def parse_exports(value) -> tuple:
  """The export names of a comma-separated string or a sequence; a ValueError names unknown ones."""
  names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
  bad = [n for n in names if n not in EXPORTS]
  if bad:
    raise ValueError(f"unknown export(s) {', '.join(bad)}: choose from {', '.join(EXPORTS)}")
  return tuple(dict.fromkeys(names))


def named_params(model, texture_kind: str, f: FaceParams) -> dict:
  """Every parameter of ``f`` by name (params.json): expression names from the model, camera and light parts."""
  expr = np.asarray(f.expression)
  cam, light = np.asarray(f.camera), np.asarray(f.light)
  names = model.expression_names or tuple(f"expression_{i:03d}" for i in range(len(expr)))
  return dict(
      shape=np.asarray(f.shape).round(6).tolist(),
      expression={n: round(float(v), 6) for n, v in zip(names, expr)},
      texture_latent=np.asarray(f.texture).round(6).tolist(),
      camera=dict(position=cam[0:3].tolist(), look_at=cam[3:6].tolist(), up=cam[6:9].tolist(), focal=float(cam[9])),
      light=dict(position=light[0:3].tolist(), colour=light[3:6].tolist(), ambient=light[6:9].tolist()),
      model=model.name, texture_model=texture_kind, units="mm, model frame; focal in image heights")


class Writer:
  """Writes results of one scene (the output scene: its ``texture_size`` is the output texture's).

  Args:
    scene: the scene the results were fitted in, at the output texture size.
    detail_layout: the texel layout of the photo detail (:func:`ganfit_jax.texture.detail.detail_layout`), or
      None for the texture model's output alone.
    render_size: side of the renders behind render.png.
    exports: names from :data:`EXPORTS`.
    preset, mode, inits: what the report says produced the results.
  """

  def __init__(self, scene: Scene, *, detail_layout=None, render_size: int = 512,
               exports: Sequence[str] = tuple(EXPORTS), preset: str = "", mode: str = "fit", inits: int = 1):
    self.scene = scene
    self.detail_layout = detail_layout
    self.render_size = int(render_size)
    self.exports = parse_exports(exports)
    self.preset, self.mode, self.inits = preset, mode, int(inits)
    self._prefetch: Optional[threading.Thread] = None

  @property
  def model(self):
    return self.scene.model

  def _texture(self, f: FaceParams, prepared: PreparedFace, detail_crop=None, others: Sequence[Result] = ()):
    use_detail = self.detail_layout is not None and prepared.detail is not None
    crop = (prepared.detail if detail_crop is None else detail_crop) if use_detail else None
    more = [(o.prepared.detail, o.face) for o in others if o.prepared.detail is not None] if use_detail else []
    return output_texture(self.scene, f, crop, self.detail_layout, more), use_detail

  def prefetch(self, prepared: PreparedFace) -> threading.Thread:
    """Starts making the programs :meth:`write` runs ready (compiled, or loaded from the compilation caches)
    in a background thread, by running them once on a placeholder result shaped like a fit of ``prepared``;
    returns the thread (the first call's: later calls start nothing).

    Call it before the fit: the fit's compiled steps leave CPU cores idle, so the outputs' programs are ready
    when the fit ends instead of compiling after it. :meth:`write` waits for a program still being built
    (:func:`ganfit_jax.compiled.call`); errors in the thread are dropped (:meth:`write` meets them itself)."""
    if not isinstance(prepared, PreparedFace):
      raise TypeError(f"prefetch needs a PreparedFace (Reconstructor.prepare), got {type(prepared).__name__}")

    def run():
      try:
        # only the shapes matter: zeros shaped like a fit's Result.face (NumPy leaves), no program to make them
        shapes = jax.eval_shape(lambda: params_lib.to_face(params_lib.init(
            self.model, jnp.zeros((self.scene.texture.latent_dim,))), self.model.expression_kind))
        f = jax.tree_util.tree_map(lambda x: np.zeros(x.shape, x.dtype), shapes)
        tex, _ = self._texture(f, prepared, None if prepared.detail is None else np.zeros_like(prepared.detail))
        s = self.scene.canvas_size
        emb = np.zeros((self.scene.identity.embedding_size,), np.float32)
        jax.block_until_ready(render_outputs(self.scene, f, np.zeros((s, s, 3), np.float32), emb,
                                             np.zeros((2, 3), np.float32), tex, render_size=self.render_size))
      except Exception:  # noqa: BLE001  (a warm-up only: write() builds and reports for itself)
        pass

    if self._prefetch is None:  # once per Writer
      self._prefetch = threading.Thread(target=run, name="ganfit-prefetch-outputs")
      self._prefetch.start()
    return self._prefetch

  def write(self, r: Result, out_dir: str, *, assets: Dict[str, str], overwrite: bool = True,
            tmp_root: Optional[str] = None, others: Sequence[Result] = ()) -> Report:
    """Writes every output of one result into ``out_dir`` (atomically: a temp dir, in ``tmp_root`` when given,
    renamed at the end: :func:`ganfit_jax.files.atomic_dir`); returns its :class:`Report`. ``assets``: what
    the result was made with (:func:`ganfit_jax.assets.provenance`). ``others``: results of more photos that
    share ``r``'s identity (a person's ``identity/``, a clip's keyframes): the texture's photo detail is
    gathered from all of them (:func:`ganfit_jax.outputs.render.output_texture`)."""
    t0 = time.perf_counter()
    f, s = r.face, self.scene.canvas_size
    canvas = r.prepared.canvas.astype(np.float32)
    texture, use_detail = self._texture(f, r.prepared, others=others)
    o = jax.device_get(render_outputs(self.scene, f, canvas, r.embedding, r.align_matrix, texture,
                                      render_size=self.render_size))
    lm_photo = apply_affine(invert_affine(r.prepared.to_canvas), o["landmarks"])
    # render.png: the face alone on grey, at its place in the photo, the photo's size
    photo_to_render = np.asarray(r.prepared.to_canvas, np.float64) * (self.render_size / s)
    alone_photo = images.to_photo_frame(o["alone"], photo_to_render, r.prepared.photo_shape, GREY)
    with atomic_dir(out_dir, overwrite=overwrite, tmp_root=tmp_root) as tmp:
      exported, names = self._write_files(tmp, r, o, canvas, alone_photo)
      report = Report(
          source=os.path.abspath(r.source), preset=self.preset, mode=self.mode,
          shared_identity_with=list(r.shared_with),
          final_loss_terms={k: round(v, 6) for k, v in r.final.items()},
          final_loss_terms_note=None if "loss" in r.final else (
              "the regressor's prediction, evaluated on its landmark and regulariser terms only; "
              "--config.regress_loss_terms=True adds the image terms and the total loss"),
          identity_cosine_photo_vs_render=round(float(o["identity_cosine"]), 4),
          identity_cosine_note="fitting network on the final render composited over the photo, 112 crop",
          identity_net=self.scene.identity.name, texture_model=self.scene.texture.kind, model=self.model.name,
          texture_detail=bool(use_detail), texture_size=int(o["texture"].shape[0]),
          landmarks_photo_px=np.asarray(lm_photo).round(2).tolist(),
          landmarks_3d_mm=np.asarray(morphable.landmarks(self.model, o["vertices"])).round(3).tolist(),
          faces_detected=r.prepared.num_faces, photo_size=list(r.prepared.photo_shape),
          timings_s=dict(fit=round(r.seconds, 3), write=round(time.perf_counter() - t0, 3),
                         **{f"{k}_so_far": v for k, v in runtime.compile_seconds().items()}),
          steps={name: n for name, n in r.stages}, inits=self.inits, assets=dict(assets), exports=exported,
          versions=dict(jax=jax.__version__, ganfit_jax=_package_version()))
      if "html" in self.exports:
        gaussian = self.model.expression_kind != EXPRESSION_BLENDSHAPE
        page.write_page(tmp, report.to_dict(), glb="mesh.glb" if "glb" in self.exports else None, target_names=names,
                        weight_range=(-3.0, 3.0) if gaussian else (0.0, 1.0), pictures=PICTURES)
        report.exports["html"] = ["index.html"] + (["viewer/"] if os.path.isdir(os.path.join(tmp, "viewer")) else [])
      report.timings_s["write"] = round(time.perf_counter() - t0, 3)
      with open(os.path.join(tmp, "report.json"), "w") as fh:
        fh.write(report.to_json())
    return report

  def _write_files(self, tmp: str, r: Result, o: dict, canvas, alone_photo):
    """The exports, params and pictures of one result into ``tmp``; returns (what was exported, target names)."""
    import cv2
    f, s, ex, model = r.face, self.scene.canvas_size, self.exports, self.model
    exported = {}
    texture_png = images.encode_png(o["texture"])
    with open(os.path.join(tmp, "texture.png"), "wb") as fh:
      fh.write(texture_png)
    if "obj" in ex:
      meshes.write_obj(os.path.join(tmp, "mesh.obj"), o["vertices"], model, material="mesh.mtl")
      meshes.write_mtl(os.path.join(tmp, "mesh.mtl"), "texture.png")
      meshes.write_obj(os.path.join(tmp, "mesh_neutral.obj"), o["neutral"], model, material="mesh.mtl")
      exported["obj"] = ["mesh.obj", "mesh.mtl", "mesh_neutral.obj"]
    names = arkit.model_target_names(model)
    if "glb" in ex:
      info = meshes.write_glb(os.path.join(tmp, "mesh.glb"), model, o["neutral"], texture_png,
                              expression=np.asarray(f.expression), target_names=names)
      exported["glb"] = dict(file="mesh.glb", **info)
    if "ply" in ex:
      exported["ply"] = dict(file="mesh.ply", vertices=meshes.write_ply(
          os.path.join(tmp, "mesh.ply"), o["vertices"], model, o["texture"]))
    if "arkit" in ex:
      with open(os.path.join(tmp, "arkit52.json"), "w") as fh:
        json.dump(arkit.arkit52(model.expression_names, np.asarray(f.expression), model.expression_kind,
                                model.name), fh, indent=1)
      exported["arkit"] = ["arkit52.json"]
    with open(os.path.join(tmp, "params.json"), "w") as fh:
      json.dump(named_params(model, self.scene.texture.kind, f), fh, indent=1)
    np.savez(os.path.join(tmp, "params.npz"), shape=np.asarray(f.shape), expression=np.asarray(f.expression),
             expression_names=np.array(model.expression_names), texture_latent=np.asarray(f.texture),
             camera=np.asarray(f.camera), light=np.asarray(f.light))
    images.write_png(os.path.join(tmp, "overlay.png"), o["overlay"])
    images.write_jpg(os.path.join(tmp, "photo.jpg"), r.prepared.detail if r.prepared.detail is not None else canvas)
    images.write_png(os.path.join(tmp, "render.png"), alone_photo)
    tex_small = cv2.resize(o["texture"], (s, s), interpolation=cv2.INTER_AREA)
    images.write_png(os.path.join(tmp, "comparison.png"),
                     np.concatenate([canvas, o["overlay"], o["alone_small"], tex_small, o["shape"]], 1))
    starts = np.cumsum([n for _, n in r.stages])[:-1].tolist()
    images.write_png(os.path.join(tmp, "convergence.png"), images.convergence_plot(r.history, starts, PLOTTED))
    return exported, names


def _package_version() -> str:
  try:
    from importlib.metadata import version
    return version("ganfit_jax")
  except Exception:  # noqa: BLE001  (not installed: running from a checkout)
    return "dev"


__all__ = ["EXPORTS", "PICTURES", "PLOTTED", "parse_exports", "named_params", "Writer"]
