"""SFace (OpenCV Zoo ``face_recognition_sface_2021dec``) in Flax.

The ONNX graph is a plain MobileNet-V1-style stack (no residuals): conv3x3 ->
BN -> PReLU, then 13 pairs of depthwise 3x3 and pointwise 1x1 convs (each
followed by BN eps 1e-3 and PReLU), BN (eps 2e-5), flatten in NCHW order, fc to
128, BN (eps 2e-5). The graph's input normalisation ``(x - 127.5) * 0.0078125``
on 0..255 RGB is reproduced (``normalize=True`` takes [0, 1] images).
Weights come from :mod:`tools.convert_sface` (int8 blocks dequantised with numpy).

Returns ``(embedding (B, 128), features)``; ``features`` holds the output at
each resolution: 'res112' (conv_2), 'res56' (conv_4), 'res28' (conv_6),
'res14' (conv_12), 'res7' (conv_14).
"""

from __future__ import annotations

from typing import ClassVar, Tuple

import flax.linen as nn

from ganfit_jax.nets.layers import DepthwiseConv, PReLU, batch_norm, flatten_nchw

# (name, out channels, kernel, stride, depthwise)
SPEC = [("conv_1", 32, 3, 1, False)]
_PLAN = [(2, 64, 1), (3, 128, 2), (4, 128, 1), (5, 256, 2), (6, 256, 1), (7, 512, 2), (8, 512, 1),
         (9, 512, 1), (10, 512, 1), (11, 512, 1), (12, 512, 1), (13, 1024, 2), (14, 1024, 1)]
for _k, _c, _s in _PLAN:
  SPEC += [(f"conv_{_k}_dw", None, 3, _s, True), (f"conv_{_k}", _c, 1, 1, False)]
FEATURE_AT = {"conv_2": "res112", "conv_4": "res56", "conv_6": "res28", "conv_12": "res14",
              "conv_14": "res7"}


class SFace(nn.Module):
  CONTENT_LAYERS: ClassVar[Tuple[str, ...]] = ("res56", "res28", "res14")  # the content loss's feature maps

  num_features: int = 128
  normalize: bool = True

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4 or x.shape[1:] != (112, 112, 3):
      raise ValueError(f"SFace expects (B, 112, 112, 3) images, got {x.shape}")
    if self.normalize:
      x = (x * 255.0 - 127.5) * 0.0078125
    feats = {}
    for name, out, k, s, dw in SPEC:
      if dw:
        x = DepthwiseConv(k, s, name=f"{name}_conv2d")(x)
      else:
        pad = ((k // 2, k // 2),) * 2
        x = nn.Conv(out, (k, k), strides=(s, s), padding=pad, use_bias=False, name=f"{name}_conv2d")(x)
      x = batch_norm(1e-3, f"{name}_batchnorm")(x)
      x = PReLU(name=f"{name}_relu")(x)
      if name in FEATURE_AT:
        feats[FEATURE_AT[name]] = x
    x = batch_norm(2e-5, "bn1")(x)
    x = flatten_nchw(x)
    x = nn.Dense(self.num_features, name="pre_fc1")(x)
    x = batch_norm(2e-5, "fc1")(x)
    return x, feats
