"""Phong shading with the paper's 9 lighting numbers (:mod:`ganfit_jax.lighting`).

Colour = albedo * (ambient + light * max(n.l, 0)) + specular * light * max(r.v, 0) ** shininess.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ganfit_jax import lighting
from ganfit_jax import numerics as gmath

def _directions(normals, positions, light_position):
  """Unit normal n, unit direction to the light l (0 for zero vectors), their
  inverse lengths and n.l."""
  q = light_position - positions
  n2, q2 = gmath.sum_last(normals * normals), gmath.sum_last(q * q)
  rn = jnp.where(n2 > gmath.ZERO_SQ, jax.lax.rsqrt(jnp.where(n2 > gmath.ZERO_SQ, n2, 1.0)), 0.0)
  rq = jnp.where(q2 > gmath.ZERO_SQ, jax.lax.rsqrt(jnp.where(q2 > gmath.ZERO_SQ, q2, 1.0)), 0.0)
  n, l = normals * rn[..., None], q * rq[..., None]
  return n, l, rn, rq, gmath.sum_last(n * l)


def _per_pixel(light, ndim):
  """The light's position, colour and ambient, shaped to broadcast against (..., 3) pixels."""
  return tuple(x.reshape((1,) * (ndim - 1) + (3,)) for x in lighting.split(light))


def _diffuse_eval(albedo, normals, positions, light):
  pos, colour, ambient = _per_pixel(light, albedo.ndim)
  n, l, rn, rq, ndotl = _directions(normals, positions, pos)
  lit = jnp.maximum(ndotl, 0.0)
  return albedo * (ambient + colour * lit[..., None]), (n, l, rn, rq, ndotl, lit)


@jax.custom_vjp
def _diffuse(albedo, normals, positions, light):
  return _diffuse_eval(albedo, normals, positions, light)[0]


def _diffuse_fwd(albedo, normals, positions, light):
  out, res = _diffuse_eval(albedo, normals, positions, light)
  return out, (albedo, light) + res


def _diffuse_bwd(res, g):
  albedo, light, n, l, rn, rq, ndotl, lit = res
  _, colour, ambient = _per_pixel(light, albedo.ndim)
  pixels = tuple(range(g.ndim - 1))
  ga = g * albedo
  g_albedo = g * (ambient + colour * lit[..., None])
  g_ambient = jnp.sum(ga, axis=pixels)
  g_colour = jnp.sum(ga * lit[..., None], axis=pixels)
  g_ndotl = jnp.where(ndotl > 0.0, gmath.sum_last(ga * colour), 0.0)
  # d(n.l)/d normal = (l - (n.l) n) / |normal|; d(n.l)/d(light - position) = (n - (n.l) l) / |q|
  g_normals = (g_ndotl * rn)[..., None] * (l - ndotl[..., None] * n)
  g_q = (g_ndotl * rq)[..., None] * (n - ndotl[..., None] * l)
  g_light = jnp.concatenate([jnp.sum(g_q, axis=pixels), g_colour, g_ambient])
  return g_albedo, g_normals, -g_q, g_light


_diffuse.defvjp(_diffuse_fwd, _diffuse_bwd)


def phong(albedo, normals, positions, light, eye, *, specular: float = 0.0, shininess: float = 20.0):
  """Shades per pixel.

  Args:
    albedo: (H, W, 3) surface colour.
    normals: (H, W, 3) interpolated normals (normalised here).
    positions: (H, W, 3) world positions of the visible surface.
    light: (9,) light vector.
    eye: (3,) camera position (for the specular term).
    specular: specular strength (0 disables the term).
    shininess: Phong exponent.

  Returns:
    (H, W, 3) shaded colour. The diffuse part has a hand-written gradient
    (autodiff of its 3-long per-pixel dot products and normalisations is
    slower on CPU: WORKSPACE.md, "Renderer"); the specular part keeps autodiff. Zero-length normals or light directions
    shade with ambient light only, with finite gradients.
  """
  if albedo.shape[-1] != 3 or normals.shape != albedo.shape or positions.shape != albedo.shape:
    raise ValueError(f"albedo, normals and positions must share a (..., 3) shape, got {albedo.shape}, "
                     f"{normals.shape} and {positions.shape}")
  out = _diffuse(albedo, normals, positions, light)
  if specular:
    pos, colour, _ = _per_pixel(light, albedo.ndim)
    n, l, _, _, ndotl = _directions(normals, positions, pos)  # plain ops: autodiff differentiates these
    ndotl = ndotl[..., None]
    v = gmath.safe_normalize(eye.reshape(pos.shape) - positions)
    r = 2.0 * ndotl * n - l
    rv = jnp.maximum(gmath.sum_last(r * v, keepdims=True), 0.0)
    spec = jnp.where(ndotl > 0, jnp.exp(shininess * jnp.log(jnp.maximum(rv, 1e-12))), 0.0)
    out = out + specular * colour * spec
  return out
