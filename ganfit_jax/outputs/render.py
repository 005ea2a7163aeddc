"""The pictures and meshes of a fitted face, computed on the device: the final texture and one compiled render.

  tex = output_texture(scene, face, detail_crop, layout)     # the composed texture (+ the photo's detail)
  o = render_outputs(scene, face, canvas, embedding, align_matrix, tex, render_size=512)

Both run as one compiled call each (:func:`ganfit_jax.compiled.call`); :mod:`ganfit_jax.outputs.writer` turns
their results into files.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ganfit_jax import compiled, lighting, morphable, numerics, objective
from ganfit_jax.face import align
from ganfit_jax.scene import Scene
from ganfit_jax.texture import detail
from ganfit_jax.types import FaceParams

GREY = 0.5  # background of renders shown alone


def output_texture(scene: Scene, f: FaceParams, detail_canvas=None, lay=None, others=()):
  """The final texture at ``scene.texture_size``: the fitted texture composed (neck prior, eyes), with the
  photo's detail blended in (:func:`ganfit_jax.texture.detail.photo_detail`) when ``detail_canvas`` (the
  prepared face's detail crop, uint8 or [0, 1]) and its texel layout ``lay`` are given. ``others``: (detail
  crop, FaceParams) of more photos of the same face (a shared identity: the same shape and texture, their own
  expression, camera and light), whose detail is fused with this one's. (T, T, 3) in [0, 1]."""
  if detail_canvas is None:
    return compiled.call(lambda sc, lat: (sc.texture_image(lat),), scene, f.texture, name="compose_texture")[0]
  scale = detail_canvas.shape[0] / scene.canvas_size
  c2d = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]], np.float32)

  def as01(x):
    x = np.asarray(x)
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)

  if others:
    crops = [detail_canvas] + [c for c, _ in others]
    if len({np.shape(c) for c in crops}) != 1:
      raise ValueError(f"the detail crops of one face must share a size, got {sorted({np.shape(c) for c in crops})}")
    faces = [f] + [g for _, g in others]
    stack = lambda k: compiled.float32(np.stack([np.asarray(getattr(g, k), np.float32) for g in faces]))  # noqa

    def run_many(sc, shape, latent, expressions, cameras, lights, photos, lay, c2d):
      verts = jax.vmap(lambda e: morphable.vertices(sc.model, shape, e))(expressions)
      return detail.photo_detail(photos, verts, sc.model.triangles, cameras, lights, sc.texture_image(latent), c2d,
                                 lay, sc.face_weight, sc.cheeks, canvas_size=sc.canvas_size)

    photos = compiled.float32(np.stack([as01(c) for c in crops]))
    shape, latent = (compiled.float32(np.asarray(x, np.float32)) for x in (f.shape, f.texture))
    return compiled.call(run_many, scene, shape, latent, stack("expression"), stack("camera"), stack("light"),
                         photos, lay, c2d, name="photo_detail_many", static=len(crops))[0]

  def run(sc, f, photo, lay, c2d):
    verts = morphable.vertices(sc.model, f.shape, f.expression)
    tex, conf = detail.photo_detail(photo, verts, sc.model.triangles, f.camera, f.light, sc.texture_image(f.texture),
                                    c2d, lay, sc.face_weight, sc.cheeks, canvas_size=sc.canvas_size)
    return tex, conf

  return compiled.call(run, scene, f, compiled.float32(as01(detail_canvas)), lay, c2d, name="photo_detail")[0]


def render_outputs(scene: Scene, f: FaceParams, canvas, embedding, align_matrix, texture, *, render_size: int):
  """Everything the output files show, in one compiled call (one example; ``texture`` the final map).

  Returns a dict: ``overlay`` (S, S, 3) the render over the canvas; ``alone`` (R, R, 3) the face on grey at
  ``render_size``; ``alone_small``, ``shape`` (S, S, 3) the render alone and the shape alone (grey albedo,
  default light); ``coverage`` (S, S); ``texture``; ``vertices`` / ``neutral`` (V, 3) mm, fitted and neutral
  expression; ``landmarks`` (68, 2) canvas pixels; ``identity_cosine`` of the overlay against ``embedding``.
  """
  return compiled.call(functools.partial(_render_outputs, render_size=render_size), scene, f,
                       compiled.float32(canvas), compiled.float32(embedding), compiled.float32(align_matrix),
                       compiled.float32(texture), name="render_outputs", static=render_size)


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
  return dict(overlay=overlay, alone=views[0], alone_small=small(views[0]), coverage=alpha[..., 0],
              shape=small(views[1]), texture=texture, vertices=verts, neutral=morphable.vertices(scene.model, f.shape),
              landmarks=objective.project_landmarks(scene, f), identity_cosine=numerics.cosine(emb, embedding))


__all__ = ["GREY", "output_texture", "render_outputs"]
