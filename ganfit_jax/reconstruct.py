"""The main job as a library: photos in, fitted textured faces and their files out.

  rec = Reconstructor(config)                     # loads the scene (model, texture model, identity net)
  faces = [rec.prepare(p) for p in paths]         # load, detect, 68 landmarks, canvas
  results = rec.fit(faces, paths)                 # independent photos (batched)
  results = rec.fit(faces, paths, shared_identity=True)  # several photos of one person
  report = rec.write(results[0], "out/dir")       # every output file, atomically; a typed Report

``Reconstructor`` composes the stages, it does not own them: the scene (:mod:`ganfit_jax.scene`), the mode
policy and Fast-GANFit (:mod:`ganfit_jax.regressor`), the targets and loss (:mod:`ganfit_jax.objective`), the fit
(:mod:`ganfit_jax.fitting`) and the files (:mod:`ganfit_jax.outputs.writer`). Data flow of one fit:
``face.prepare`` -> ``objective.prepare_targets`` -> ``fitting.fit`` (or ``regressor.fast_ganfit``) ->
``FaceParams`` -> ``Writer.write`` (one compiled render of every picture and mesh) -> files.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import jax
import numpy as np

from ganfit_jax import assets, face, fitting, objective, regressor
from ganfit_jax import scene as scene_lib
from ganfit_jax.outputs.report import Report, Result
from ganfit_jax.outputs.writer import Writer


class Reconstructor:
  """Loads the scene of a fit config (``ganfit_jax.configs.fit``) once; fits and writes photos.

  Attributes: ``scene`` (fitting, ``texture_size``), ``out_scene`` (outputs, ``output_texture_size``),
  ``schedule``, ``mode`` (fit / regress / regress_fit, resolved from the config's, ``mode_note`` saying why
  ``auto`` fell back to fit), ``regressor`` (None for fit), ``writer``.
  """

  def __init__(self, cfg):
    self.cfg = cfg
    if self.detector not in face.DETECTORS:
      raise ValueError(f"detector {self.detector!r} is not one of {', '.join(face.DETECTORS)}")
    self.scene = scene_lib.load(cfg.model, cfg.texture_model, cfg.identity_net, canvas_size=cfg.canvas_size,
                                texture_size=cfg.texture_size, landmarks=str(cfg.landmarks))
    self.out_scene = self.scene.resized(cfg.output_texture_size)
    self.schedule = fitting.schedule_from_config(cfg, zero_first_init=self.scene.texture.kind == "pca")
    choice = regressor.resolve_mode(str(cfg.mode), str(cfg.regressor), self.scene, canvas_size=cfg.canvas_size,
                                    identity_net=cfg.identity_net)
    self.mode, self.regressor, self.mode_note = choice.mode, choice.net, choice.note
    if self.mode != "fit":
      self.schedule = regressor.short_schedule(self.schedule, float(cfg.regress_fit_scale))
    self.expression_floor = regressor.check_expression_floor(cfg.regress_expression_floor)
    from ganfit_jax.texture import detail
    self.writer = Writer(self.out_scene, render_size=cfg.render_size, exports=cfg.export, preset=cfg.preset,
                         mode=self.mode, inits=self.schedule.num_inits,
                         detail_layout=detail.detail_layout(self.scene.model, cfg.output_texture_size)
                         if cfg.texture_detail else None)

  @property
  def model(self):
    return self.scene.model

  @property
  def detail_layout(self):
    return self.writer.detail_layout

  @property
  def use_dense(self) -> bool:
    """Whether photos get MediaPipe's dense points and fits use them (``cfg.dense``, and the model has
    their correspondence)."""
    return bool(self.cfg.dense) and int(self.scene.model.dense_corners.shape[0]) > 0

  @property
  def detector(self) -> str:
    return str(self.cfg.detector)

  @property
  def detail_scale(self) -> int:
    """The detail crop's side in canvas sides; 0 when the texture takes no photo detail."""
    return int(self.cfg.detail_scale) if self.cfg.texture_detail else 0

  def prepare(self, path: str, select="largest", landmarks=None, face_box=None) -> face.PreparedFace:
    """:func:`ganfit_jax.face.prepare` at this config's canvas size."""
    return face.prepare(path, self.cfg.canvas_size, select=select, landmarks=landmarks, face_box=face_box,
                        detector=self.detector, detail_scale=self.detail_scale, dense=self.use_dense)

  def prepare_faces(self, path: str) -> List[face.PreparedFace]:
    """:func:`ganfit_jax.face.prepare_faces` (every face of a photo) at this config's canvas size."""
    return face.prepare_faces(path, self.cfg.canvas_size, detector=self.detector, detail_scale=self.detail_scale,
                              dense=self.use_dense)

  def layout_note(self) -> Optional[str]:
    """A warning when the texture model was not made for this model's UV layout
    (:func:`ganfit_jax.scene.layout_overlap`), naming the fix; None when they agree."""
    iou = scene_lib.layout_overlap(self.scene)
    if iou is None or iou >= 0.8:
      return None
    return (f"the texture model ({self.cfg.texture_model}) was made for another UV layout than the model "
            f"{self.cfg.model!r} (chart overlap {iou:.2f}); shape, pose and landmarks fit as usual, but the texture "
            "will be misplaced. Build a texture model for this layout (tools/build_uv_dataset.py + "
            "tools/build_pca.py or tools/train_gan.py with --config.model=...), or use a model in ICT-FaceKit's "
            "layout.")

  def fit(self, prepared: List[face.PreparedFace], sources: Sequence[str], shared_identity: bool = False,
          progress=None, mesh=None, photo_keys=None, batch: Optional[int] = None) -> List[Result]:
    """Fits photos together (a batch; ``shared_identity``: one person). ``mesh``, ``photo_keys``: as
    :func:`ganfit_jax.fitting.fit` (shard the batch over devices; per-photo random keys). ``batch``: pad the
    photos to this many with copies of the first, so that every call with up to ``batch`` photos runs one
    compiled program; the copies' results are dropped (not with ``shared_identity``: copies would weigh in)."""
    if batch is None:
      return self._fit_batch(prepared, sources, shared_identity, progress, mesh, photo_keys)
    if shared_identity or not 1 <= len(prepared) <= batch:
      raise ValueError(f"batch={batch} pads 1 to {batch} independent photos; got {len(prepared)} photos"
                       + (" fitted with one shared identity" if shared_identity else ""))
    pad = batch - len(prepared)
    keys = None if photo_keys is None else list(photo_keys) + [photo_keys[0]] * pad
    return self._fit_batch(list(prepared) + [prepared[0]] * pad, list(sources) + [sources[0]] * pad, False,
                           progress, mesh, keys)[:len(prepared)]

  def _fit_batch(self, prepared, sources, shared_identity, progress, mesh, photo_keys) -> List[Result]:
    """:meth:`fit` of the photos as given (the batch that is compiled)."""
    images = np.stack([p.canvas for p in prepared]).astype(np.float32)
    lms = np.stack([p.landmarks for p in prepared]).astype(np.float32)
    if not np.all(np.isfinite(images)) or not np.all(np.isfinite(lms)):
      raise face.FaceInputError("the photo or its landmarks contain NaN/inf after loading; re-save the image")
    model = self.scene.model
    confident = bool(self.cfg.landmark_confidence)
    lw = objective.landmark_weights(len(prepared), float(self.cfg.jaw_weight),
                                    np.asarray(model.landmark_scatter) if confident else None)
    dense, dw = objective.dense_targets([p.dense if self.use_dense else None for p in prepared],
                                        int(model.dense_corners.shape[0]), float(self.cfg.dense_iris_weight),
                                        np.asarray(model.dense_scatter) if confident else None)
    key = jax.random.key(self.cfg.seed)
    if self.mode == "regress":  # Fast-GANFit
      targets, res = regressor.fast_ganfit(self.regressor, self.scene, images, lms, lw,
                                           self.schedule.stages[-1].loss_weights(), key=key,
                                           shared_identity=shared_identity,
                                           image_terms=bool(self.cfg.regress_loss_terms), progress=progress)
    else:  # GANFit, or GANFit++ from the regressor's prediction
      targets = objective.prepare_targets(self.scene, images, lms, lw, dense, dw)
      init = regressor.start(self.regressor, self.scene, targets, shared_identity,
                             self.expression_floor) if self.mode == "regress_fit" else None
      res = fitting.fit(self.scene, targets, self.schedule, key=key, init=init, shared_identity=shared_identity,
                        progress=progress, mesh=mesh, photo_keys=photo_keys)
    # one transfer to the host, then per-photo slices of NumPy arrays (slicing device arrays one by one runs
    # a small program per leaf and photo)
    faces, embedding, align = jax.device_get((res.faces, targets.embedding, targets.align_matrix))
    return [Result(source=src, prepared=p, face=jax.tree_util.tree_map(lambda x: x[i], faces),
                   final={k: float(v[i]) for k, v in res.final.items()},
                   history={k: v[:, i] for k, v in res.history.items()}, seconds=res.seconds,
                   embedding=embedding[i], align_matrix=align[i], stages=res.stages,
                   shared_with=list(sources) if shared_identity else ())
            for i, (p, src) in enumerate(zip(prepared, sources))]

  def assets_used(self, detected: bool = True) -> dict:
    """What this config's results are made with (:func:`ganfit_jax.assets.provenance`)."""
    names = [self.cfg.model, self.cfg.texture_model, self.cfg.identity_net]
    if self.mode != "fit":
      names.append(self.cfg.regressor)
    if detected:
      names.append("dlib_landmarks68")
      if self.detector in ("combined", "yunet"):
        names.append("yunet")
    if self.use_dense:  # found from the 68 points, given or detected
      names.append("facemesh")
    return assets.provenance(*names)

  def prefetch_outputs(self, prepared: face.PreparedFace):
    """:meth:`ganfit_jax.outputs.writer.Writer.prefetch`: the output programs get ready while the fit runs."""
    return self.writer.prefetch(prepared)

  def write(self, r: Result, out_dir: str, overwrite: bool = True, tmp_root=None, others=()) -> Report:
    """Writes every output of one result into ``out_dir`` atomically; returns its :class:`Report`.
    ``others``: results sharing ``r``'s identity, whose photos add to its texture's detail."""
    return self.writer.write(r, out_dir, assets=self.assets_used(detected=r.prepared.detected),
                             overwrite=overwrite, tmp_root=tmp_root, others=others)


__all__ = ["Reconstructor", "Result", "Report"]
