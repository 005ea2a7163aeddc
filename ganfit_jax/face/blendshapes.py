"""ARKit blendshape scores read from MediaPipe's 478 dense points: an independent reading of a photo's expression.

The network is MediaPipe's ``face_blendshapes.tflite`` from ``face_landmarker_v2.task`` (Apache-2.0; the
``facemesh`` asset, the same file as :mod:`ganfit_jax.face.facemesh`), run through the TFLite runtime. Its input
is 146 of the 478 points, (x, y) in the photo's pixels (the subset and order below are MediaPipe's, from its
``face_blendshapes_graph.cc``: the network's interface); its output is 52 scores in [0, 1]: ``_neutral`` and
51 of ARKit's 52 shapes (all but ``tongueOut``). The network normalises the points itself: a shift or a
uniform scale of the points leaves the scores unchanged (tested).

The scores see only the points, so they add no photo information to a fit that already uses the dense points;
the project uses them to MEASURE a fit's expression against an independent model (``benchmarks/fidelity.py``),
not as a fitting target. On the project's synthetic faces (random sparse ICT expressions, GAN textures) they
agree with the true activations only for a few shapes (smiles, mouth stretch; WORKSPACE.md "Geometry").

Sides: MediaPipe's ``...Left`` is the face's own left, as ARKit's and :mod:`ganfit_jax.outputs.arkit`'s (checked
on renders of the ICT face with one sided shape on: WORKSPACE.md).
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from ganfit_jax.face import facemesh

MEMBER = "face_blendshapes.tflite"
# the 146 of MediaPipe's 478 points the network reads, in its input order
SUBSET = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70, 78,
    80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149, 150, 152,
    153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246,
    249, 251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312,
    314, 317, 318, 321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381,
    382, 384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472,
    473, 474, 475, 476, 477)
# the network's 52 outputs: "_neutral", then ARKit's names in ARKit's order without "tongueOut"
NAMES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight")
assert len(SUBSET) == 146 and len(NAMES) == 52


def scores(points) -> Dict[str, float]:
  """ARKit blendshape scores in [0, 1] of one face: {ARKit name: score} for the 51 names the network predicts.

  Args:
    points: (478, 2) MediaPipe's points in photo pixels (``DenseLandmarks.points`` / ``PreparedFace.photo_dense``).
  """
  pts = np.asarray(points, np.float32)
  if pts.shape != (facemesh.NUM_POINTS, 2) or not np.all(np.isfinite(pts)):
    raise ValueError(f"points must be MediaPipe's {facemesh.NUM_POINTS} finite (x, y) points, got shape {pts.shape}")
  it = facemesh.interpreter(MEMBER)
  it.set_tensor(it.get_input_details()[0]["index"], pts[np.asarray(SUBSET)][None])
  it.invoke()
  out = np.asarray(it.get_tensor(it.get_output_details()[0]["index"]), np.float64).reshape(-1)
  return {n: float(v) for n, v in zip(NAMES[1:], out[1:])}


def model_weights(model, expression) -> Optional[np.ndarray]:
  """(51,) a model expression's ARKit weights (``outputs.arkit``, as ``arkit52.json``) on the network's names
  (``NAMES[1:]``, the order of :func:`scores`), to compare with its scores; None for a model without ARKit
  semantics (PCA expressions or unmapped names).

  Args:
    model: a ``MorphableModel``; expression: (E,) its expression (activations for blendshape models).
  """
  from ganfit_jax.outputs import arkit
  w = arkit.arkit52(model.expression_names, np.asarray(expression), model.expression_kind)
  if not w["arkit_semantics"]:
    return None
  return np.array([w["weights"][n] for n in NAMES[1:]])


__all__ = ["MEMBER", "SUBSET", "NAMES", "scores", "model_weights"]
