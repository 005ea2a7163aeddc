"""A term of your own in GANFit's objective, without forking it: a left-right symmetry prior on the shape.

  python examples/custom_loss_term.py                        # the astronaut, 60 landmark steps each way
  python examples/custom_loss_term.py --image=me.jpg --weight=5 --steps=100

The same landmark-stage fit (the 68 + dense points and the priors, no render) runs twice through
``ganfit_jax.fit``, once as it is and once with the term ``symmetry`` (the mean squared distance in mm^2
between each vertex of the neutral shape and its mirror partner's reflection) weighted in the stage's
``extra_weights``; it prints how asymmetric each fitted shape is and how well each follows the landmarks.
"""

import os
import sys

import numpy as np
from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_string("image", os.path.join(ROOT, "examples", "astronaut.jpg"), "A photo of a face.")
flags.DEFINE_float("weight", 2.0, "Weight of the symmetry term (mm^2 -> loss units).")
flags.DEFINE_integer("steps", 60, "Adam steps of each fit.")
FLAGS = flags.FLAGS


def mirror_pairs(vertices: np.ndarray) -> np.ndarray:
  """For each vertex of a (V, 3) mesh, the index of the vertex nearest its reflection x -> -x."""
  from scipy.spatial import cKDTree
  return cKDTree(vertices).query(vertices * np.array([-1.0, 1.0, 1.0]))[1]


def main(argv):
  del argv
  import jax
  import jax.numpy as jnp

  import ganfit_jax
  from ganfit_jax import face, objective, runtime
  runtime.configure()
  scene = ganfit_jax.load_scene("ict", texture=None, identity=None)  # no render needed: landmark terms only
  model = scene.model
  try:
    photo = face.prepare(FLAGS.image, dense=True)
  except (face.FaceInputError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  weights, dense_w = objective.dense_targets([photo.dense], int(model.dense_corners.shape[0]))
  targets = objective.prepare_targets(scene, photo.canvas[None].astype(np.float32),
                                      photo.landmarks[None], objective.landmark_weights(1, 0.5),
                                      weights, dense_w)
  partner = jnp.asarray(mirror_pairs(np.asarray(model.mean)))
  flip = jnp.array([-1.0, 1.0, 1.0])

  def symmetry(face_params, variables, target):
    v = ganfit_jax.vertices(model, face_params.shape)  # the neutral shape, mm
    return jnp.mean(jnp.sum(jnp.square(v - v[partner] * flip), -1))

  terms = (("align", 1.0), ("dense", 1.0), ("reg_shape", 1.0), ("reg_expression", 0.01),
           ("sparse_expression", 20.0))
  groups = ("shape", "expression", "camera", "focal")
  lrs = tuple((g, 0.05) for g in ("shape", "expression", "texture", "camera", "focal", "light"))
  print(f"{'fit':<22} {'asymmetry (rms mm)':>19} {'landmark RMSE (px)':>19}")
  for name, extra in (("as it is", ()), (f"+ symmetry x {FLAGS.weight:g}", (("symmetry", FLAGS.weight),))):
    stage = ganfit_jax.Stage("landmarks", FLAGS.steps, terms, groups, lr_scale=3.0, extra_weights=extra)
    res = ganfit_jax.fit(scene, targets, ganfit_jax.Schedule(stages=(stage,), learning_rates=lrs, chunk=20),
                         key=jax.random.key(0), extra_terms={"symmetry": symmetry})
    asym = float(np.sqrt(res.final["symmetry"][0]))
    print(f"{name:<22} {asym:>19.3f} {float(res.final['landmark_rmse_px'][0]):>19.2f}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
