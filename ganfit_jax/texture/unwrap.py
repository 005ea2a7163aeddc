"""Unwrapping photos into the morphable model's UV layout (:mod:`ganfit_jax.texture.layout`).

* :func:`unwrap` (one photo; ``jax.vmap`` it): projects every texel's 3D point
  into the photo, keeps it where the z-buffer says it is the visible surface and
  it faces the camera, and samples the photo's colour there.
* :func:`deshade` optionally divides out a fitted ambient + point-light shading.
* :func:`complete` fills unseen texels from their mirror, then smoothly (inpainting).
"""


from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ganfit_jax import camera as camera_lib
from ganfit_jax import numerics as gmath
from ganfit_jax.face import image_io
from ganfit_jax.render import raster
from ganfit_jax.render import texture as texture_sampling
from ganfit_jax.texture.layout import TexelMap, texel_normals, texel_points

# Texel status codes stored with every map.
OUTSIDE, FILLED, MIRRORED, OBSERVED = 0, 1, 2, 3


class Unwrapped(NamedTuple):
  """texture (T, T, 3) photo colours; visible (T, T) bool; confidence (T, T) in [0, 1]
  (cosine between the surface normal and the view direction where visible, else 0)."""
  texture: jnp.ndarray
  visible: jnp.ndarray
  confidence: jnp.ndarray


def unwrap(photo, vertices, triangles, camera, tmap: TexelMap, *, canvas_size: int,
           canvas_to_photo=None, normal_threshold: float = 0.25, depth_tolerance: float = 5.0) -> Unwrapped:
  """Samples a photo's colours into UV space for one fitted face.

  Args:
    photo: (H, W, 3) float image.
    vertices: (V, 3) fitted mesh (mm); triangles: (F, 3).
    camera: (10,) fitted camera, projecting onto a ``canvas_size`` square canvas.
    tmap: :func:`texel_map` of the model.
    canvas_to_photo: (2, 3) affine from canvas to photo coordinates (None: the
      photo is the canvas).
    normal_threshold: minimum cosine between normal and view direction.
    depth_tolerance: mm a texel may lie behind the z-buffer surface and still count as visible.
  """
  h, w = photo.shape[:2]
  s = canvas_size
  xy, depth = camera_lib.project(camera, vertices, s, s)
  fb = raster.rasterize(xy, depth, triangles, s, s)
  zbuf = raster.pixel_depth(raster.barycentrics(fb, xy, depth, triangles), fb, depth, triangles)
  pts = texel_points(vertices, tmap, triangles)  # (T, T, 3)
  t = tmap.size
  txy, tdepth = camera_lib.project(camera, pts.reshape(-1, 3), s, s)
  ix = jnp.clip(jnp.floor(txy[:, 0]).astype(jnp.int32), 0, s - 1)
  iy = jnp.clip(jnp.floor(txy[:, 1]).astype(jnp.int32), 0, s - 1)
  on_canvas = (txy[:, 0] >= 0) & (txy[:, 0] < s) & (txy[:, 1] >= 0) & (txy[:, 1] < s)
  front = fb.mask[iy, ix] & (tdepth <= zbuf[iy, ix] + depth_tolerance)
  if canvas_to_photo is not None:
    m = jnp.asarray(canvas_to_photo)
    pxy = txy @ m[:, :2].T + m[:, 2][None, :]
  else:
    pxy = txy
  in_photo = (pxy[:, 0] >= 0.5) & (pxy[:, 0] <= w - 0.5) & (pxy[:, 1] >= 0.5) & (pxy[:, 1] <= h - 0.5)
  colour = texture_sampling.bilinear(photo, pxy[:, 0] - 0.5, pxy[:, 1] - 0.5).reshape(t, t, 3)
  n = texel_normals(vertices, triangles, tmap)
  eye = camera_lib.split(camera)[0]
  cosang = jnp.sum(n * gmath.safe_normalize(eye[None, None, :] - pts), -1)
  vis = (jnp.asarray(tmap.mask) & (on_canvas & front & in_photo).reshape(t, t)
         & (cosang > normal_threshold))
  conf = jnp.where(vis, jnp.clip(cosang, 0.0, 1.0), 0.0)
  return Unwrapped(texture=jnp.where(vis[..., None], colour, 0.0), visible=vis, confidence=conf)


def _light_directions(n: int = 96) -> np.ndarray:
  """Fibonacci directions on the front hemisphere (z > 0, towards the camera side)."""
  k = np.arange(n) + 0.5
  z = 1.0 - k / n  # (0, 1]
  r = np.sqrt(1.0 - z * z)
  phi = np.pi * (3.0 - np.sqrt(5.0)) * k
  return np.stack([r * np.cos(phi), r * np.sin(phi), z], -1).astype(np.float32)


def deshade(texture, visible, normals, min_shading: float = 0.2):
  """Divides out the best-fitting ambient + directional (Phong diffuse) shading.

  Per direction l in a hemisphere grid, fits ``colour_c = a_c + d_c max(0, n.l)``
  per channel by least squares over visible texels (albedo taken as constant
  across the face, so spatial variation is attributed to light); keeps the
  best direction and returns ``colour * mean(shading) / shading`` so the map's
  overall colour is kept. Returns (texture, shading (T, T, 3)).
  """
  dirs = jnp.asarray(_light_directions())
  wv = visible.astype(texture.dtype)
  nv = jnp.maximum(jnp.sum(wv), 1.0)

  def fit(l):
    sh = jnp.maximum(jnp.sum(normals * l[None, None, :], -1), 0.0)  # (T, T)
    ms = jnp.sum(sh * wv) / nv
    mc = jnp.sum(texture * wv[..., None], (0, 1)) / nv
    cov = jnp.sum(((sh - ms) * wv)[..., None] * (texture - mc[None, None, :]), (0, 1)) / nv
    var = jnp.sum(jnp.square(sh - ms) * wv) / nv
    d = cov / jnp.maximum(var, 1e-8)
    a = mc - d * ms
    pred = a[None, None, :] + d[None, None, :] * sh[..., None]
    err = jnp.sum(jnp.square(pred - texture) * wv[..., None])
    return err, pred, jnp.sum(pred * wv[..., None], (0, 1)) / nv

  errs, preds, means = jax.vmap(fit)(dirs)
  best = jnp.argmin(errs)
  shading = preds[best] / jnp.maximum(means[best], 1e-6)[None, None, :]
  shading = jnp.maximum(shading, min_shading)
  out = jnp.where(visible[..., None], texture / shading, 0.0)
  return jnp.clip(out, 0.0, 1.0), shading


def complete(texture: np.ndarray, visible: np.ndarray, confidence: np.ndarray, tmap: TexelMap,
             inpaint_radius: int = 5):
  """Fills unseen texels: first from the mirrored texel, then by inpainting (numpy, one map).

  Returns (texture (T, T, 3) float32, status (T, T) uint8 of OUTSIDE/FILLED/MIRRORED/OBSERVED,
  confidence (T, T) float32 with mirrored texels at half their source's confidence).
  """
  import cv2
  t = tmap.size
  tex = np.asarray(texture, np.float32).reshape(t * t, 3).copy()
  vis = np.asarray(visible, bool).ravel()
  conf = np.asarray(confidence, np.float32).ravel().copy()
  mask = tmap.mask.ravel()
  mir = tmap.mirror.ravel()
  status = np.where(mask, FILLED, OUTSIDE).astype(np.uint8)
  status[vis] = OBSERVED
  take = mask & ~vis & (mir >= 0)
  take &= vis[np.where(mir >= 0, mir, 0)]
  tex[take] = tex[mir[take]]
  conf[take] = 0.5 * conf[mir[take]]
  status[take] = MIRRORED
  hole = (status == FILLED).reshape(t, t)
  tex = tex.reshape(t, t, 3)
  if hole.any():
    known = (status >= MIRRORED).reshape(t, t)
    if known.any():
      u8 = image_io.to_uint8(tex)
      # inpaint everything not known (holes and the outside) so borders blend, then keep holes only
      filled = cv2.inpaint(u8, (~known).astype(np.uint8), inpaint_radius, cv2.INPAINT_TELEA)
      tex = np.where(hole[..., None], filled.astype(np.float32) / 255.0, tex)
  tex = np.where(tmap.mask[..., None], tex, 0.0)
  return tex.astype(np.float32), status.reshape(t, t), conf.reshape(t, t)
