"""The scene: everything fitting holds fixed, as one pytree (arrays as leaves, structure static).

``Scene(model, texture, identity, ...)`` is an argument of every compiled
function (fit step, target preparation, output rendering), so one compilation
serves every photo and call. Build it with :func:`make` (or :func:`load`).

Texture composition (:func:`Scene.texture_image`): the texture model's decoded
map (T_model) is resized to ``texture_size``; below the jaw line it fades to the
face's own cheek colour (``texture.detail.face_weight``: the texture model learnt
collars and ties from its training photos), and the layout's fixed texels are
laid over it: the eye discs (``texture.layout.eye_fill``), which no face
texture model has seen.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ganfit_jax.nets.identity import IdentityNet
from ganfit_jax.texture import detail, layout
from ganfit_jax.texture.models import TextureModel
from ganfit_jax.types import MorphableModel

DEFAULT_TEXTURE_SIZE = 256


@struct.dataclass
class Scene:
  """Attributes:
    model: the morphable model.
    texture: the texture model, or None (landmark-only fits, e.g. the UV-dataset builder).
    identity: the identity network, or None (landmark-only fits).
    overlay: (S, S, 3) fixed texels laid over the decoded texture (the eyes).
    overlay_mask: (S, S) float in [0, 1], where ``overlay`` applies.
    face_weight: (S, S) float in [0, 1]: 1 on the face, 0 on the neck (the skin prior's weight).
    cheeks: (S, S) float, the texels whose mean colour is the neck's skin colour.
    canvas_size: the fitting canvas side in pixels (static).
    texture_size: S, the side of the composed texture (static).
  """

  model: MorphableModel
  texture: Optional[TextureModel]
  identity: Optional[IdentityNet]
  overlay: jnp.ndarray
  overlay_mask: jnp.ndarray
  face_weight: jnp.ndarray
  cheeks: jnp.ndarray
  canvas_size: int = struct.field(pytree_node=False, default=224)
  texture_size: int = struct.field(pytree_node=False, default=DEFAULT_TEXTURE_SIZE)

  @property
  def has_images(self) -> bool:
    """Whether the image terms (render + identity network) can be evaluated."""
    return self.texture is not None and self.identity is not None

  def texture_image(self, latent):
    """(L,) latent -> (S, S, 3) composed texture in [0, 1]."""
    if self.texture is None:
      raise ValueError("this scene has no texture model (make(..., texture=None))")
    return self.compose(self.texture.decode(latent))

  def compose(self, texture):
    """Resizes a (T, T, 3) texture to (S, S, 3), applies the neck's skin prior, lays the fixed texels over it."""
    s = self.texture_size
    if texture.shape[:2] != (s, s):
      texture = jax.image.resize(texture, (s, s, 3), "linear")
    texture = self.neck_prior(texture)
    m = self.overlay_mask[..., None]
    return texture * (1.0 - m) + self.overlay * m

  def neck_prior(self, texture):
    """Below the jaw line, fades an (S, S, 3) texture to the mean colour of its cheeks."""
    return detail.neck_prior(texture, self.face_weight, self.cheeks)

  def resized(self, texture_size: int) -> "Scene":
    """The same scene composing its texture at another side (e.g. the output texture's)."""
    if int(texture_size) == self.texture_size:
      return self
    return make(self.model, self.texture, self.identity, canvas_size=self.canvas_size, texture_size=texture_size)


def make(model: MorphableModel, texture: Optional[TextureModel] = None, identity: Optional[IdentityNet] = None,
         *, canvas_size: int = 224, texture_size: int = DEFAULT_TEXTURE_SIZE) -> Scene:
  """Builds a scene (computes the layout's texel map at ``texture_size`` once, on the host)."""
  if canvas_size < 32:
    raise ValueError(f"canvas_size must be >= 32 pixels, got {canvas_size}")
  if texture_size < 8:
    raise ValueError(f"texture_size must be >= 8 texels, got {texture_size}")
  tmap = layout.texel_map(model, texture_size)
  colour, mask = layout.eye_fill(tmap)
  face = np.where(tmap.mask, detail.face_weight(model, tmap), 1.0)
  scene = Scene(model=model, texture=texture, identity=identity, overlay=jnp.asarray(colour),
                overlay_mask=jnp.asarray(mask, jnp.float32), face_weight=jnp.asarray(face, jnp.float32),
                cheeks=jnp.asarray(detail.cheek_mask(model, tmap), jnp.float32), canvas_size=int(canvas_size),
                texture_size=int(texture_size))
  # committed to the first device once, as compiled calls want their inputs (not ~300 puts per call)
  return jax.device_put(scene, jax.local_devices()[0])


def load(model: str = "ict", texture: Optional[str] = "gan", identity: Optional[str] = "sface",
         landmarks: str = "learned", **kw) -> Scene:
  """:func:`make` from asset names or paths (``None`` leaves a part out; ``landmarks``: as
  :func:`ganfit_jax.morphable.load`)."""
  from ganfit_jax import morphable
  from ganfit_jax.nets import identity as identity_lib
  from ganfit_jax.texture import models
  return make(morphable.load(model, landmarks), models.load(texture) if texture else None,
              identity_lib.load(identity) if identity else None, **kw)


def layout_overlap(scene: Scene) -> Optional[float]:
  """How well the texture model fits the model's UV layout: intersection over union of the texels the
  model's charts cover and the texels the texture model colours, at the texture model's resolution (1 = the
  same layout; under 0.8 the texture lands on the wrong places). None without a texture model."""
  if scene.texture is None:
    return None
  covered = layout.texel_map(scene.model, int(scene.texture.resolution)).mask
  chart = np.asarray(scene.texture.chart, bool)
  return float((covered & chart).sum() / max((covered | chart).sum(), 1))


def parts_used(scene: Scene) -> dict:
  """Names of the parts a scene holds (for reports)."""
  return dict(model=scene.model.name, texture_model=scene.texture.kind if scene.texture is not None else None,
              identity_net=scene.identity.name if scene.identity is not None else None,
              texture_size=scene.texture_size, canvas_size=scene.canvas_size)


__all__ = ["Scene", "make", "load", "layout_overlap", "parts_used", "DEFAULT_TEXTURE_SIZE"]
