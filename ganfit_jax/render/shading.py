"""Phong shading with the paper's 9 lighting numbers.

light (9,) = point-light position (3, mm, world), point-light RGB colour (3),
ambient RGB colour (3). Colour = albedo * (ambient + light * max(n.l, 0))
+ specular * light * max(r.v, 0) ** shininess.
"""

from __future__ import annotations

import jax.numpy as jnp

from ganfit_jax import math as gmath

DEFAULT_LIGHT_POSITION = (0.0, 200.0, 1500.0)
DEFAULT_LIGHT_COLOUR = (0.6, 0.6, 0.6)
DEFAULT_AMBIENT = (0.5, 0.5, 0.5)


def make_light(position=DEFAULT_LIGHT_POSITION, colour=DEFAULT_LIGHT_COLOUR, ambient=DEFAULT_AMBIENT):
  return jnp.concatenate([jnp.asarray(position, jnp.float32), jnp.asarray(colour, jnp.float32),
                          jnp.asarray(ambient, jnp.float32)])


def default_light():
  """A frontal, slightly raised point light plus ambient light."""
  return make_light()


def split(light):
  if light.shape != (9,):
    raise ValueError(f"light must be (9,) [position, colour, ambient], got {light.shape}; vmap over batches")
  return light[0:3], light[3:6], light[6:9]


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
    (H, W, 3) shaded colour.
  """
  pos, colour, ambient = (x.reshape(1, 1, 3) for x in split(light))
  n = gmath.safe_normalize(normals)
  l = gmath.safe_normalize(pos - positions)
  ndotl = gmath.sum_last(n * l, keepdims=True)
  out = albedo * (ambient + colour * jnp.maximum(ndotl, 0.0))
  if specular:
    v = gmath.safe_normalize(eye.reshape(1, 1, 3) - positions)
    r = 2.0 * ndotl * n - l
    rv = jnp.maximum(gmath.sum_last(r * v, keepdims=True), 0.0)
    spec = jnp.where(ndotl > 0, jnp.exp(shininess * jnp.log(jnp.maximum(rv, 1e-12))), 0.0)
    out = out + specular * colour * spec
  return out
