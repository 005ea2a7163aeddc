"""ArcFace IResNet backbones (r18/r34/r50/r100) in Flax, exactly as insightface's ``iresnet.py``.

Architecture (insightface ``recognition/arcface_torch/backbones/iresnet.py``):
stem conv3x3(3->64, stride 1, pad 1, no bias) -> BN -> PReLU; four stages of
``IBasicBlock`` (64, 128, 256, 512 planes, first block of each stage stride 2);
BN -> flatten (NCHW order) -> dropout -> fc(512*7*7 -> 512) -> BN ("features").

``IBasicBlock``: BN -> conv3x3 (stride 1) -> BN -> PReLU -> conv3x3 (stride s) -> BN,
plus the identity, or conv1x1(stride s) -> BN when the shape changes. Every 3x3
conv pads (1, 1) explicitly: Flax's 'SAME' would pad (0, 1) at stride 2 and
shift the grid. BN eps 1e-5 everywhere.

Input: (B, 112, 112, 3) RGB normalised as insightface does, ``(x - 127.5) / 127.5``
for 0..255 pixels; :class:`IResNet` takes [0, 1] images and normalises itself
(``normalize=False`` to feed already-normalised tensors).
Returns ``(embedding (B, 512), features)`` with ``features`` = {'stem',
'layer1'..'layer4'} NHWC activations, used by the content loss.
"""

from __future__ import annotations

from typing import ClassVar, Dict, Sequence, Tuple

import flax.linen as nn

from ganfit_jax.nets.layers import PReLU, batch_norm, flatten_nchw

LAYERS: Dict[str, Tuple[int, ...]] = {
    "r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3), "r50": (3, 4, 14, 3), "r100": (3, 13, 30, 3)}
_EPS = 1e-5
_PAD1 = ((1, 1), (1, 1))


def _conv3x3(features: int, stride: int, name: str):
  return nn.Conv(features, (3, 3), strides=(stride, stride), padding=_PAD1, use_bias=False, name=name)


class IBasicBlock(nn.Module):
  planes: int
  stride: int = 1
  downsample: bool = False

  @nn.compact
  def __call__(self, x):
    out = batch_norm(_EPS, "bn1")(x)
    out = _conv3x3(self.planes, 1, "conv1")(out)
    out = batch_norm(_EPS, "bn2")(out)
    out = PReLU(name="prelu")(out)
    out = _conv3x3(self.planes, self.stride, "conv2")(out)
    out = batch_norm(_EPS, "bn3")(out)
    identity = x
    if self.downsample:
      identity = nn.Conv(self.planes, (1, 1), strides=(self.stride, self.stride), padding="VALID",
                         use_bias=False, name="downsample_conv")(x)
      identity = batch_norm(_EPS, "downsample_bn")(identity)
    return out + identity


class IResNet(nn.Module):
  """IResNet; ``arch`` in {'r18', 'r34', 'r50', 'r100'} (or explicit ``layers``)."""
  CONTENT_LAYERS: ClassVar[Tuple[str, ...]] = ("layer1", "layer2", "layer3")  # the content loss's feature maps

  arch: str = "r50"
  num_features: int = 512
  normalize: bool = True
  layers: Sequence[int] | None = None
  width: int = 64  # planes of the stem and first stage (x2 per stage); 64 in every published IResNet

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4 or x.shape[1:] != (112, 112, 3):
      raise ValueError(f"IResNet expects (B, 112, 112, 3) images, got {x.shape}")
    if self.normalize:
      x = (x * 255.0 - 127.5) / 127.5
    layers = tuple(self.layers) if self.layers is not None else LAYERS[self.arch]
    feats = {}
    w = self.width
    x = _conv3x3(w, 1, "conv1")(x)
    x = batch_norm(_EPS, "bn1")(x)
    x = PReLU(name="prelu")(x)
    feats["stem"] = x
    inplanes = w
    for s, (planes, n) in enumerate(zip((w, 2 * w, 4 * w, 8 * w), layers)):
      for b in range(n):
        stride = 2 if b == 0 else 1
        down = b == 0 and (stride != 1 or inplanes != planes)
        x = IBasicBlock(planes, stride, down, name=f"layer{s + 1}_{b}")(x)
        inplanes = planes
      feats[f"layer{s + 1}"] = x
    x = batch_norm(_EPS, "bn2")(x)
    x = flatten_nchw(x)  # dropout is identity at inference
    x = nn.Dense(self.num_features, name="fc")(x)
    x = batch_norm(_EPS, "features")(x)
    return x, feats
