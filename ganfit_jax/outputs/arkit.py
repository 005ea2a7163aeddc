"""Apple ARKit's 52 blendshape names, and a model's expression shapes mapped onto them.

ICT-FaceKit's 53 shapes "adopt the naming convention of the Apple ARKit, but with Left and Right specified
with _L and _R", and split two of ARKit's shapes into halves (its README, "Expression Shapes"):

- ``X_L`` / ``X_R`` -> ARKit ``XLeft`` / ``XRight`` (same side: the face's own left), 48 shapes;
- ``browInnerUp_L`` + ``browInnerUp_R`` -> ``browInnerUp`` and ``cheekPuff_L`` + ``cheekPuff_R`` ->
  ``cheekPuff``: the mean of the two halves (the least-squares single weight when the halves are mirror
  images);
- ``jawForward``, ``jawOpen``, ``mouthClose``, ... (unsided) -> the same name;
- ARKit's ``tongueOut`` has no ICT-FaceKit counterpart: 0, listed under ``no_counterpart``.

A model whose expression shapes are PCA coefficients (BFM, FLAME) or whose names do not map has no ARKit
semantics: :func:`arkit52` says so instead of guessing. The rules are generic (any model using ARKit's names,
with or without the ``_L``/``_R`` split, maps the same way).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ganfit_jax.types import EXPRESSION_BLENDSHAPE

ARKIT52: Tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut")
assert len(ARKIT52) == 52 and len(set(ARKIT52)) == 52


def arkit_name(name: str) -> Tuple[Optional[str], bool]:
  """(the ARKit shape a model shape belongs to, whether it is one half of it); (None, False) if none."""
  if name in ARKIT52:
    return name, False
  for suffix, side in (("_L", "Left"), ("_R", "Right"), (".L", "Left"), (".R", "Right")):
    if name.endswith(suffix):
      base = name[: -len(suffix)]
      if base + side in ARKIT52:
        return base + side, False
      if base in ARKIT52:  # ICT's split of an unsided ARKit shape
        return base, True
  return None, False


def mapping(names: Sequence[str]) -> Optional[Dict[str, List[int]]]:
  """ARKit name -> indices of the model shapes that make it, or None when ``names`` are not ARKit shapes
  (an unmapped name, or two shapes claiming one sided ARKit shape)."""
  out: Dict[str, List[int]] = {}
  for i, n in enumerate(names):
    a, half = arkit_name(n)
    if a is None:
      return None
    out.setdefault(a, []).append(i)
    if len(out[a]) > (2 if half else 1):
      return None
  return out if out else None


def model_target_names(model) -> List[str]:
  """A model's morph-target names for its GLB exports: :func:`target_names` of its expression names, or
  ``expression_000``... for a model without names."""
  if model.expression_names:
    return target_names(model.expression_names)
  return [f"expression_{i:03d}" for i in range(model.num_expression)]


def target_names(names: Sequence[str]) -> List[str]:
  """Names of a model's shapes as glTF morph targets: ARKit's where one shape is one ARKit shape, the
  model's own where it is a half (``browInnerUp_L``: the fitted halves need not be equal)."""
  if mapping(names) is None:
    return list(names)
  out = []
  for n in names:
    a, half = arkit_name(n)
    out.append(n if half else a)
  return out


def arkit52(names: Sequence[str], values, expression_kind: str, model_name: str = "model") -> dict:
  """The contents of ``arkit52.json``: 52 ARKit weights in [0, 1] derived from a fitted expression.

  ``names`` may be empty (a model file without expression names): then there are no ARKit semantics."""
  values = np.asarray(values, np.float64).reshape(-1)
  if names and len(values) != len(names):
    raise ValueError(f"{len(values)} expression values for {len(names)} expression names; pass the fitted "
                     "FaceParams.expression of this model")
  m = mapping(names) if expression_kind == EXPRESSION_BLENDSHAPE else None
  if m is None:
    why = (f"its {len(values)} expression components are PCA coefficients, not blendshapes"
           if expression_kind != EXPRESSION_BLENDSHAPE else
           f"its {len(values)} expression shapes have no names" if not names else
           "its expression shapes do not carry ARKit's names (see ganfit_jax/outputs/arkit.py for the rules)")
    return dict(model=model_name, arkit_semantics=False,
                note=f"model {model_name!r} has no ARKit semantics: {why}. No ARKit weights are guessed; the "
                     "fitted expression coefficients are in params.json.")
  weights, merged = {}, {}
  for a in ARKIT52:
    idx = m.get(a)
    weights[a] = round(float(np.clip(values[idx].mean(), 0.0, 1.0)), 6) if idx else 0.0
    if idx and len(idx) > 1:
      merged[a] = [names[i] for i in idx]
  return dict(model=model_name, arkit_semantics=True, weights=weights,
              merged_halves={a: dict(sources=s, rule="mean") for a, s in merged.items()},
              no_counterpart=[a for a in ARKIT52 if a not in m],
              note="ARKit's 52 blendshape weights in [0, 1] from the fitted expression activations: sided shapes "
                   "X_L/X_R are ARKit's XLeft/XRight (the face's own left), split halves are averaged, shapes "
                   "with no counterpart are 0. Mapping: ganfit_jax/outputs/arkit.py.")


__all__ = ["ARKIT52", "arkit_name", "mapping", "target_names", "model_target_names", "arkit52"]
