"""The paper's 9 lighting numbers: point-light position (3, mm, world), point-light RGB (3), ambient RGB (3).

Colour = albedo * (ambient + light * max(n.l, 0)) [+ specular * light * max(r.v, 0) ** shininess]
(:func:`ganfit_jax.render.shading.phong`).
"""

from __future__ import annotations

import jax.numpy as jnp

DEFAULT_LIGHT_POSITION = (0.0, 200.0, 1500.0)
DEFAULT_LIGHT_COLOUR = (0.6, 0.6, 0.6)
DEFAULT_AMBIENT = (0.5, 0.5, 0.5)


def make_light(position=DEFAULT_LIGHT_POSITION, colour=DEFAULT_LIGHT_COLOUR, ambient=DEFAULT_AMBIENT):
  """(9,) light vector from its parts."""
  return jnp.concatenate([jnp.asarray(position, jnp.float32), jnp.asarray(colour, jnp.float32),
                          jnp.asarray(ambient, jnp.float32)])


def default_light():
  """A frontal, slightly raised point light plus ambient light."""
  return make_light()


def split(light):
  """(position, colour, ambient) of a (9,) light vector."""
  if light.shape != (9,):
    raise ValueError(f"light must be (9,) [position, colour, ambient], got {light.shape}; vmap over batches")
  return light[0:3], light[3:6], light[6:9]
