"""Photo detail on top of the fitted texture (beyond the paper), and the skin prior of the neck.

After a fit, :func:`photo_detail` (one photo, or several of one face fused texel by texel: :func:`fuse`):

1. unwraps the photo onto the fitted mesh (``texture.unwrap``, at the output texture's resolution, the
   visibility z-buffer at ``2 x`` the canvas): every visible texel's colour and confidence (the cosine
   between normal and view, eased from 0 at ``CONF_LO`` to 1 at ``CONF_HI``);
2. divides out the fitted lighting (ambient + point light, as the renderer shades): the photo's albedo;
3. completes the unseen side from the mirror texel (half confidence);
4. matches the fitted texture's colours to the albedo where both are known (one luminance gain; on skin
   the albedo's mean chroma replaces the texture model's), so the parts only the texture model covers
   (ears, temples, the hidden side) share the photo's skin colour;
5. blends albedo into the fitted texture with the confidence as mask, band by band (a Laplacian
   pyramid: low frequencies blend over wide regions, high ones over narrow ones, so no seam shows);
6. lays the skin prior over the neck (:func:`face_weight`): below the jaw line the texture fades to the
   face's own skin colour, so collars and ties (in the texture model's training photos and in the photo
   itself) stay off the face mesh;
7. keeps the scene's fixed eye texels (sclera, iris, pupil) on the eye caps.

Every step is a pure JAX function of arrays (``photo_detail_jit``: compiled once per resolution).
"""

from __future__ import annotations

from typing import NamedTuple

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

from ganfit_jax import lighting
from ganfit_jax import numerics as gmath
from ganfit_jax.texture import layout
from ganfit_jax.texture import unwrap as uw

CONF_LO, CONF_HI = 0.35, 0.75  # cos(normal, view): no detail below LO, full weight above HI
NECK_FADE_MM = (-22.0, -4.0)  # height above the jaw line (mm): skin prior below the first, texture above the second


def face_weight(model, tmap: layout.TexelMap) -> np.ndarray:
  """(T, T) float in [0, 1]: 1 on the face, fading to 0 on the neck below the jaw line (mean shape, frontal).

  The jaw line is the 17 contour landmarks (iBUG 0-16); a texel's height above it is measured at its x
  (linear interpolation between contour points; beyond the ends, the end's height). Texels behind the
  jaw's depth by more than 40 mm (the back of the neck) count as neck too.
  """
  mean = np.asarray(model.mean, np.float64)
  pts = layout.texel_points(np.asarray(model.mean), tmap, model.triangles).reshape(-1, 3)
  jaw = mean[np.asarray(model.landmarks)[:17]]
  order = np.argsort(jaw[:, 0])
  jy = np.interp(pts[:, 0], jaw[order, 0], jaw[order, 1])
  height = pts[:, 1] - jy
  lo, hi = NECK_FADE_MM
  w = np.clip((height - lo) / (hi - lo), 0.0, 1.0)
  w = w * w * (3 - 2 * w)  # smoothstep
  behind = pts[:, 2] < jaw[:, 2].min() - 40.0
  w = np.where(behind & (height < 0), 0.0, w)
  return np.where(tmap.mask.reshape(-1), w, 0.0).reshape(tmap.size, tmap.size).astype(np.float32)


def cheek_mask(model, tmap: layout.TexelMap) -> np.ndarray:
  """(T, T) bool: texels of the cheeks (between the eyes and the mouth corners, outside the nose)."""
  lm = np.asarray(model.mean)[np.asarray(model.landmarks)]
  pts = layout.texel_points(np.asarray(model.mean), tmap, model.triangles).reshape(-1, 3)
  x, y = pts[:, 0], pts[:, 1]
  lateral = (np.abs(x) > np.abs(lm[31, 0]) + 5) & (np.abs(x) < np.abs(lm[36, 0]))
  rows = (y < lm[41, 1] - 5) & (y > lm[48, 1])
  return (lateral & rows).reshape(tmap.size, tmap.size) & tmap.mask & (tmap.material == 0)


def neck_prior(texture, face, cheek_weight):
  """Fades a (T, T, 3) texture to its own skin tone where ``face`` (T, T) is 0 (below the jaw line).

  The tone is the mean colour of the texture over ``cheek_weight`` (T, T), e.g. the cheek texels.
  """
  tone = jnp.sum(texture * cheek_weight[..., None], (0, 1)) / jnp.maximum(jnp.sum(cheek_weight), 1e-3)
  f = face[..., None]
  return texture * f + tone[None, None, :] * (1.0 - f)


class DetailLayout(NamedTuple):
  """The per-texel arrays :func:`photo_detail` needs for one model and texture size (jnp arrays)."""
  triangle: jax.Array
  bary: jax.Array
  mask: jax.Array
  mirror: jax.Array
  skin: jax.Array


def detail_layout(model, size: int) -> DetailLayout:
  tmap = layout.texel_map(model, size)
  return DetailLayout(triangle=jnp.asarray(tmap.triangle), bary=jnp.asarray(tmap.bary), mask=jnp.asarray(tmap.mask),
                      mirror=jnp.asarray(tmap.mirror), skin=jnp.asarray(tmap.mask & (tmap.material == 0)))


def shading(normals, positions, light):
  """(..., 3) the renderer's diffuse shading (ambient + colour * max(n.l, 0)) at surface points."""
  lead = (1,) * (positions.ndim - 1)
  pos, colour, ambient = (x.reshape(lead + (3,)) for x in lighting.split(light))
  l = gmath.safe_normalize(pos - positions)
  n = gmath.safe_normalize(normals)
  return ambient + colour * jnp.maximum(jnp.sum(n * l, -1, keepdims=True), 0.0)


def _blur(x, sigma):
  return dm_pix.gaussian_blur(x, sigma, kernel_size=int(4 * sigma) | 1)


def laplacian_blend(base, detail, mask, levels: int = 5):
  """Blends ``detail`` over ``base`` (both (T, T, C)) with ``mask`` (T, T) in [0, 1], one pyramid band at a
  time: the mask of band k is the mask blurred at that band's scale."""
  def pyr(img):
    out, cur = [], img
    for _ in range(levels - 1):
      low = _blur(cur, 1.0)
      small = jax.image.resize(low, (cur.shape[0] // 2, cur.shape[1] // 2, cur.shape[2]), "linear", antialias=False)
      up = jax.image.resize(small, cur.shape, "linear")
      out.append(cur - up)
      cur = small
    return out + [cur]

  pb, pd = pyr(base), pyr(detail)
  m = mask[..., None]
  masks, cur = [], m
  for _ in range(levels):
    masks.append(cur)
    cur = jax.image.resize(_blur(cur, 1.0), (cur.shape[0] // 2, cur.shape[1] // 2, 1), "linear", antialias=False)
  blended = [b * (1 - mk) + d * mk for b, d, mk in zip(pb, pd, masks)]
  out = blended[-1]
  for band in reversed(blended[:-1]):
    out = jax.image.resize(out, band.shape, "linear") + band
  return out


def observe(photo, vertices, triangles, face_camera, face_light, canvas_to_photo, lay: DetailLayout, *,
            canvas_size: int):
  """(albedo (T, T, 3), confidence (T, T)) of one photo: steps 1-2 of the module docstring (unwrap at the
  layout's size, a 2x z-buffer, the fitted lighting divided out); arguments as :func:`photo_detail`."""
  t = lay.triangle.shape[0]
  tmap = layout.TexelMap(size=t, triangle=lay.triangle, bary=lay.bary, mask=lay.mask, mirror=lay.mirror,
                         material=jnp.zeros_like(lay.triangle))
  # a finer z-buffer than the fitting canvas: the same camera on a 2x canvas
  s2 = 2 * canvas_size
  c2p = canvas_to_photo @ jnp.diag(jnp.array([0.5, 0.5, 1.0]))
  u = uw.unwrap(photo, vertices, triangles, face_camera, tmap, canvas_size=s2, canvas_to_photo=c2p,
                normal_threshold=CONF_LO, depth_tolerance=3.0)
  normals = layout.texel_normals(vertices, triangles, tmap)
  points = layout.texel_points(vertices, tmap, triangles)
  shade = shading(normals, points, face_light)
  albedo = jnp.clip(u.texture / jnp.maximum(shade, 0.15), 0.0, 1.0)
  conf = jnp.clip((u.confidence - CONF_LO) / (CONF_HI - CONF_LO), 0.0, 1.0) * u.visible
  return albedo, conf


FUSE_PRIORITY = 8.0  # photo k of several counts FUSE_PRIORITY**-k as much as the first where both see a texel


def fuse(albedos, confs, priority: float = FUSE_PRIORITY):
  """One (albedo, confidence) from N photos' ((N, T, T, 3), (N, T, T)), in order of preference: each texel's
  albedo is the mean over the photos weighted by confidence x ``priority``**-k (photo k), so where the first
  photo sees a texel well it gives most of the colour (averaging several photos of a face blurs it: no two
  are registered exactly, e.g. a smile fitted short of the photo's), and a texel it sees badly or not at
  all comes from the next photos that see it; the confidence is the best of the photos'."""
  rank = priority ** -jnp.arange(confs.shape[0], dtype=confs.dtype)
  w = (confs * rank[:, None, None])[..., None]
  albedo = jnp.sum(albedos * w, 0) / jnp.maximum(jnp.sum(w, 0), 1e-6)
  return albedo, jnp.max(confs, 0)


def photo_detail(photo, vertices, triangles, face_camera, face_light, base_texture, canvas_to_photo,
                 lay: DetailLayout, face, cheeks, *, canvas_size: int):
  """(texture (T, T, 3), confidence (T, T)): the fitted texture with the photo's albedo blended in.

  Args:
    photo: (H, W, 3) the original photo in [0, 1].
    vertices: (V, 3) the fitted mesh (with expression); triangles (F, 3).
    face_camera, face_light: the fitted camera (10,) and light (9,).
    base_texture: (T, T, 3) the fitted (composed) texture at the output size.
    canvas_to_photo: (2, 3) canvas (``canvas_size``) -> photo coordinates.
    lay: :func:`detail_layout` for the model at T.
    face, cheeks: (T, T) the scene's skin-prior weight and cheek texels (``Scene.face_weight``, ``.cheeks``).

  Several photos of one face (one fitted shape; each photo its own expression, camera and light): give
  ``photo`` (N, H, W, 3), ``vertices`` (N, V, 3), ``face_camera`` (N, 10), ``face_light`` (N, 9), the
  preferred photo first; their albedos are fused texel by texel (:func:`fuse`), so a head seen from both
  sides fills both sides of the texture from the photos before the mirror fills what none saw.
  """
  if photo.ndim == 4:
    albedos, confs = jax.vmap(lambda p, v, c, li: observe(p, v, triangles, c, li, canvas_to_photo, lay,
                                                          canvas_size=canvas_size))(photo, vertices, face_camera,
                                                                                    face_light)
    albedo, conf = fuse(albedos, confs)
  else:
    albedo, conf = observe(photo, vertices, triangles, face_camera, face_light, canvas_to_photo, lay,
                           canvas_size=canvas_size)
  return compose(albedo, conf, base_texture, lay, face, cheeks)


def compose(albedo, conf, base_texture, lay: DetailLayout, face, cheeks):
  """Steps 3-7 of the module docstring: the mirror completion, colour match, blend, neck prior and eyes of
  an observed (albedo, confidence) over the fitted ``base_texture``; returns (texture, confidence)."""
  t = base_texture.shape[0]
  # mirror completion: an unseen texel whose mirror is seen takes its albedo at half confidence
  flat_a, flat_c = albedo.reshape(t * t, 3), conf.reshape(-1)
  mir = lay.mirror.reshape(-1)
  has = mir >= 0
  m_idx = jnp.where(has, mir, 0)
  m_conf = jnp.where(has, flat_c[m_idx], 0.0) * 0.5
  use_m = m_conf > flat_c
  flat_a = jnp.where(use_m[:, None], flat_a[m_idx], flat_a)
  flat_c = jnp.maximum(flat_c, m_conf)
  albedo, conf = flat_a.reshape(t, t, 3), flat_c.reshape(t, t) * lay.mask
  # colour match the fitted texture to the photo's albedo where both are known: its luminance by one gain,
  # its chroma replaced on skin by the albedo's mean skin chroma (the texture model's chroma drifts, e.g.
  # green at the temples, where the photo cannot correct it)
  w = conf * lay.skin
  wsum = jnp.maximum(jnp.sum(w), 1.0)
  mean_albedo = jnp.sum(albedo * w[..., None], (0, 1)) / wsum
  mean_base = jnp.sum(base_texture * w[..., None], (0, 1)) / wsum
  luma = lambda x: jnp.mean(x, -1, keepdims=True)  # noqa: E731
  enough = jnp.sum(w) > 50.0
  gain = jnp.where(enough, jnp.clip(luma(mean_albedo) / jnp.maximum(luma(mean_base), 1e-3), 0.5, 2.0), 1.0)
  chroma = jnp.where(enough, mean_albedo / jnp.maximum(luma(mean_albedo), 1e-3), jnp.ones(3))
  gain, chroma = gain[None, None, :], chroma[None, None, :]
  base = jnp.where(lay.skin[..., None], luma(base_texture) * gain * chroma, base_texture * gain)
  base = jnp.clip(base, 0.0, 1.0)
  blended = jnp.clip(laplacian_blend(base, albedo, conf * face), 0.0, 1.0)
  # skin prior below the jaw line: the face's own cheek colour (weighted to the texels the photo saw)
  out = jnp.where(lay.mask[..., None], neck_prior(blended, face, cheeks * (0.25 + conf)), base_texture)
  # the eyes keep the scene's fixed eye texels: in UV the eye discs border unrelated skin, whose low
  # frequencies the pyramid would otherwise spread over them (pale, iris-less eyes)
  eye = lay.mask & ~lay.skin
  out = jnp.where(eye[..., None], base_texture, out)
  return out, conf


photo_detail_jit = jax.jit(photo_detail, static_argnames=("canvas_size",))


__all__ = ["photo_detail", "photo_detail_jit", "observe", "fuse", "FUSE_PRIORITY", "compose", "detail_layout",
           "DetailLayout", "face_weight", "cheek_mask", "neck_prior", "laplacian_blend", "shading"]
