"""Identity networks behind one interface, their stored variables, and the independent judge.

``identity_features(net, variables, image_112) -> (embedding, features)`` is
what the losses call: ``image_112`` is (..., 112, 112, 3) RGB in [0, 1], aligned
to the ArcFace five-point template (:func:`ganfit_jax.face.align.align_112`);
any leading batch shape works, under ``jit``, ``vmap`` and ``grad``.

Variables are stored as ``.npz`` files whose keys are the flattened Flax
variable paths (``params/conv_1_conv2d/kernel``) plus ``__net__`` / ``__arch__``
metadata, written by ``tools/convert_sface.py`` and ``tools/convert_arcface.py``.
"""

from __future__ import annotations

import functools
import zipfile
from typing import Any, Dict, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct, traverse_util

from ganfit_jax import assets
from ganfit_jax.nets.iresnet import IResNet
from ganfit_jax.nets.sface import SFace


@struct.dataclass
class IdentityNet:
  """A loaded identity network: frozen variables (a pytree) and its static description.

  ``net(image_112) -> (embedding, features)`` for (..., 112, 112, 3) aligned
  images in [0, 1]; :attr:`content_layers` are the feature maps the content
  loss (paper Eq. 10) compares, as the network's module declares them.
  """

  variables: Any
  net: str = struct.field(pytree_node=False, default="sface")
  arch: str = struct.field(pytree_node=False, default="")

  @property
  def name(self) -> str:
    return self.net if not self.arch else f"{self.net}-{self.arch}"

  @property
  def module(self) -> nn.Module:
    return make_module(self.net, self.arch)

  @property
  def content_layers(self) -> Tuple[str, ...]:
    return tuple(self.module.CONTENT_LAYERS)

  @property
  def embedding_size(self) -> int:
    return int(self.module.num_features)

  def __call__(self, image_112):
    return identity_features(self.module, self.variables, image_112)


def make_module(net: str, arch: str = "") -> nn.Module:
  if net == "sface":
    return SFace()
  if net == "arcface":
    if arch and "-" in arch:  # explicit blocks per stage, e.g. '1-1-1-1', and a width: '1-1-1-1w8' (tests)
      blocks, _, width = arch.partition("w")
      return IResNet(layers=tuple(int(n) for n in blocks.split("-")), width=int(width or 64),
                     num_features=8 * int(width or 64) if width else 512)
    return IResNet(arch=arch or "r50")
  raise ValueError(f"unknown identity network {net!r}; known: 'sface', 'arcface'")


def identity_features(net: nn.Module, variables, image_112) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """Embeddings (..., D) and intermediate features of (..., 112, 112, 3) images in [0, 1]."""
  image_112 = jnp.asarray(image_112)
  if image_112.shape[-3:] != (112, 112, 3):
    raise ValueError(f"identity_features expects (..., 112, 112, 3) aligned images, got {image_112.shape}")
  lead = image_112.shape[:-3]
  emb, feats = net.apply(variables, image_112.reshape((-1, 112, 112, 3)))
  emb = emb.reshape(lead + emb.shape[1:])
  feats = {k: v.reshape(lead + v.shape[1:]) for k, v in feats.items()}
  return emb, feats


def save_variables(path: str, variables, net: str, arch: str = "", dtype=np.float32) -> None:
  flat = traverse_util.flatten_dict(jax.device_get(variables), sep="/")
  arrays = {k: np.asarray(v, dtype) for k, v in flat.items()}
  with open(path, "wb") as f:  # a file object: numpy would otherwise append .npz to temp names
    np.savez(f, __net__=np.array(net), __arch__=np.array(arch), **arrays)


def load_variables(path: str) -> Tuple[str, str, Any]:
  """Reads a converted identity network: (net, arch, variables)."""
  with np.load(path) as z:
    net, arch = str(z["__net__"]), str(z["__arch__"])
    flat = {k: jnp.asarray(z[k], jnp.float32) for k in z.files if not k.startswith("__")}
  return net, arch, traverse_util.unflatten_dict(flat, sep="/")


@functools.lru_cache(maxsize=4)
def load(name_or_path: str = "sface") -> IdentityNet:
  """Loads an identity network: an asset name ('sface') or a converted ``.npz`` path."""
  path = assets.resolve(name_or_path)
  try:
    net, arch, variables = load_variables(path)
  except FileNotFoundError as e:
    raise assets.AssetError(f"identity network {name_or_path!r} not found: use 'sface' or the path of a file "
                            "written by tools/convert_arcface.py") from e
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # a cut or foreign file
    raise assets.AssetError(f"{path} is not an identity network written by tools/convert_arcface.py or "
                            f"tools/convert_sface.py ({e})") from e
  return IdentityNet(variables=variables, net=net, arch=arch)


# --------------------------------------------------------------------------- #
# The independent judge: dlib's ResNet-29 (never used inside a loss).

@functools.lru_cache(maxsize=None)
def _dlib_recognizer():
  import dlib
  return dlib.face_recognition_model_v1(assets.path("dlib_face_resnet"))


def judge_embedding(image: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
  """dlib ResNet-29 128-d descriptor of the face with the given 68 landmarks.

  Args:
    image: (H, W, 3) RGB, float in [0, 1] or uint8.
    landmarks68: (68, 2) landmarks in this project's pixel convention (centres at +0.5).
  """
  import dlib
  from ganfit_jax.face import image_io
  u8 = np.ascontiguousarray(image_io.to_uint8(image))
  lm = np.asarray(landmarks68, np.float64) - 0.5
  x0, y0 = lm.min(0)
  x1, y1 = lm.max(0)
  rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
  shape = dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in lm])
  return np.asarray(_dlib_recognizer().compute_face_descriptor(u8, shape), np.float32)
