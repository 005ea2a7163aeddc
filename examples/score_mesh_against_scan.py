"""Score a mesh against a 3D scan with the evaluation protocols (NoW's, its similarity variant, MICC's).

  python examples/score_mesh_against_scan.py                                     # a made-up pair, see below
  python examples/score_mesh_against_scan.py --pred=mesh.obj --pred_landmarks=pred.txt \\
      --scan=scan.obj --scan_landmarks=scan.txt

Without files it makes a pair from the ICT model: the "scan" is a random identity with 0.3 mm of noise
(open at the neck, as scans are), the predictions are that identity itself, the model's mean face and the
mean face moved 1 mm along its normals; it prints each protocol's error in mm. Landmarks are text files of
7 (NoW's order: eye corners, nose bottom, mouth corners) or 68 (iBUG) rows of x y z in mm.
"""

import os
import sys

import numpy as np
from absl import app, flags

flags.DEFINE_string("pred", None, "Your mesh (OBJ / PLY / OFF / STL, mm).")
flags.DEFINE_string("pred_landmarks", None, "Its 7 or 68 landmarks (x y z per row, mm).")
flags.DEFINE_string("scan", None, "The scan (mesh or point cloud, mm).")
flags.DEFINE_string("scan_landmarks", None, "The scan's 7 or 68 landmarks.")
FLAGS = flags.FLAGS
PROTOCOLS = ("now", "now_similarity", "micc")


def made_up_pair():
  """(scan, scan landmarks, {name: (mesh, landmarks)}) from the ICT model (see the module docstring)."""
  import ganfit_jax
  from ganfit_jax.evaluation.shape import Mesh
  from ganfit_jax.geometry import vertex_normals
  model = ganfit_jax.load_model("ict")
  rng = np.random.default_rng(0)
  tri = np.asarray(model.triangles)
  person = np.asarray(ganfit_jax.vertices(model, rng.normal(size=model.num_identity).clip(-2, 2)), np.float64)
  mean = np.asarray(model.mean, np.float64)
  keep = person[:, 1] > np.asarray(ganfit_jax.landmarks(model, person))[8, 1] - 20.0  # above the chin - 2 cm
  scan = Mesh.of(person[keep] + rng.normal(0.0, 0.3, (int(keep.sum()), 3)))  # a point cloud
  lm = lambda v: np.asarray(ganfit_jax.landmarks(model, v))  # noqa: E731
  moved = mean + vertex_normals(mean, tri)
  preds = {"the person": (Mesh.of(person, tri), lm(person)), "the mean face": (Mesh.of(mean, tri), lm(mean)),
           "the mean face + 1 mm": (Mesh.of(moved, tri), lm(moved))}
  return scan, lm(person), preds


def main(argv):
  del argv
  from ganfit_jax import runtime
  from ganfit_jax.evaluation import shape
  runtime.configure()
  given = [FLAGS.pred, FLAGS.pred_landmarks, FLAGS.scan, FLAGS.scan_landmarks]
  try:
    if any(given):
      if not all(given):
        raise ValueError("give all four of --pred, --pred_landmarks, --scan, --scan_landmarks (or none)")
      scan, scan_lm = shape.load_mesh(FLAGS.scan), np.loadtxt(FLAGS.scan_landmarks)
      preds = {os.path.basename(FLAGS.pred): (shape.load_mesh(FLAGS.pred), np.loadtxt(FLAGS.pred_landmarks))}
    else:
      scan, scan_lm, preds = made_up_pair()
  except (OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"{'prediction':<24}" + "".join(f"{p:>16}" for p in PROTOCOLS) + "   (mm)")
  for name, (mesh, lm) in preds.items():
    errs = [shape.evaluate(mesh, lm, scan, scan_lm, p) for p in PROTOCOLS]
    print(f"{name:<24}" + "".join(f"{e['scan_to_mesh_mm']:>16.3f}" for e in errs))
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
