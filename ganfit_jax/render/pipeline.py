"""The whole image-formation chain for one example; ``jax.vmap`` it for batches.

project -> rasterize (no gradient) -> barycentrics -> interpolate UV / normal /
position -> sample texture -> Phong -> composite.
"""


from typing import NamedTuple

import jax.numpy as jnp

from ganfit_jax import camera as camera_lib
from ganfit_jax import morphable
from ganfit_jax.render import compose, interp as interp_lib, raster as rast_lib, shading, texture as tex_lib


class RenderOutput(NamedTuple):
  """image (H,W,3) composited render; mask (H,W) bool; albedo (H,W,3) unlit texture;
  shaded (H,W,3) lit colour before compositing; uv (H,W,2); normals (H,W,3);
  framebuffer: the rasteriser's Framebuffer."""

  image: jnp.ndarray
  mask: jnp.ndarray
  albedo: jnp.ndarray
  shaded: jnp.ndarray
  uv: jnp.ndarray
  normals: jnp.ndarray
  framebuffer: rast_lib.Framebuffer


def render(vertices, triangles, uv, uv_triangles, texture, camera, light, background=None, *,
           height: int, width: int, specular: float = 0.0, shininess: float = 20.0,
           cull_backfaces: bool = True) -> RenderOutput:
  """Renders a textured mesh (differentiable in vertices, texture, camera and light; jit/vmap it).

  Output range: ``image`` and ``shaded`` are NOT clamped: Phong lighting is ambient + colour * max(n.l, 0)
  (+ specular) times the albedo, so lit surfaces go above 1 (up to 1.10 for a white texture under
  ``lighting.default_light()``). Clip for display (``jnp.clip(out.image, 0, 1)``); the losses use the unclamped values.

  Which render to use: this function for any mesh; :func:`render_model` for a morphable model's
  coefficients (it builds the vertices, then calls this); :func:`ganfit_jax.objective.render_mesh` inside a
  fit (the model's mesh with only the textured UV tile composited: ICT's untextured scalp and neck stay
  background) and :func:`ganfit_jax.objective.render_face` for :class:`~ganfit_jax.types.FaceParams`.

  Example::

    out = render(verts, tri, uv, uv_tri, tex, camera.orbit_camera(0.3), lighting.default_light(),
                 height=224, width=224)
    picture = jnp.clip(out.image, 0.0, 1.0)   # (224, 224, 3)

  Args:
    vertices: (V, 3) world positions (mm).
    triangles: (F, 3) vertex indices.
    uv: (T, 2) texture coordinates; uv_triangles: (F, 3) indices into uv.
    texture: (T_h, T_w, 3) UV texture (any range; [0, 1] for images).
    camera: (10,) camera vector (``ganfit_jax.camera``).
    light: (9,) light vector (``render.shading``).
    background: (H, W, 3) image behind the face; zeros if None.
    height, width: output size (static).
    specular, shininess: Phong specular term (0 disables).
    cull_backfaces: see ``raster.rasterize``.
  """
  if background is None:
    background = jnp.zeros((height, width, 3), texture.dtype)
  if background.shape != (height, width, 3):
    raise ValueError(f"background must be ({height}, {width}, 3), got {background.shape}")
  xy, depth = camera_lib.project(camera, vertices, height, width)
  fb = rast_lib.rasterize(xy, depth, triangles, height, width, cull_backfaces=cull_backfaces)
  vn = morphable.vertex_normals(vertices, triangles)
  # one gather of every per-vertex quantity (its gradient is one scatter-add)
  table = jnp.concatenate([xy, depth[:, None], vn, vertices], -1)  # (V, 9)
  corners = table[triangles[fb.triangle_id]]  # (H, W, 3, 9)
  bary = rast_lib.corner_barycentrics(fb.mask, corners[..., 0:2], corners[..., 2])
  normals, positions = jnp.split(interp_lib.weighted_corners(bary, corners[..., 3:9]), 2, axis=-1)
  pix_uv = interp_lib.interpolate(bary, fb, uv, uv_triangles)
  albedo = tex_lib.sample(texture, pix_uv, fb.mask)
  eye = camera_lib.split(camera)[0]
  shaded = shading.phong(albedo, normals, positions, light, eye, specular=specular, shininess=shininess)
  image = compose.composite(shaded, fb.mask, background)
  return RenderOutput(image=image, mask=fb.mask, albedo=albedo, shaded=shaded, uv=pix_uv,
                      normals=normals, framebuffer=fb)


def render_model(model, shape, expression, texture, camera, light, background=None, **kw) -> RenderOutput:
  """:func:`render` for a morphable model's mesh with the given coefficients: ``shape`` (K_id,) ~N(0, 1)
  and ``expression`` (K_exp,) as :func:`ganfit_jax.morphable.vertices` reads them (ICT-FaceKit:
  activations in [0, 1]); ``kw``: ``height``, ``width`` and :func:`render`'s options. The output is
  unclamped (see :func:`render`).

  Example::

    m = morphable.load("ict")
    out = render_model(m, jnp.zeros(m.num_identity), jnp.zeros(m.num_expression), tex, cam, light,
                       height=256, width=256)
  """
  verts = morphable.vertices(model, shape, expression)
  return render(verts, model.triangles, model.uv, model.uv_triangles, texture, camera, light,
                background, **kw)
