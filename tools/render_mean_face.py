"""Renders the default model's mean face with a flat grey texture, frontal and at 45 degrees yaw.

  python tools/render_mean_face.py --out=docs/images/mean_face.png --size=384
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from ganfit_jax import assets, camera, morphable
from ganfit_jax.outputs import images
from ganfit_jax.render import default_light, render_model

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "docs/images/mean_face.png", "Output PNG.")
flags.DEFINE_integer("size", 384, "Image height and width per view.")
flags.DEFINE_string("model", "ict", "Morphable-model asset name.")
flags.DEFINE_list("yaw_degrees", ["0", "45"], "Views to render.")


def main(argv):
  del argv
  try:
    model = morphable.load(FLAGS.model)
  except (assets.AssetError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  tex = jnp.full((64, 64, 3), 0.7)
  n = model.num_identity, model.num_expression
  views = []
  for yaw in FLAGS.yaw_degrees:
    cam = camera.orbit_camera(yaw=np.deg2rad(float(yaw)))
    out = jax.jit(lambda c: render_model(model, jnp.zeros(n[0]), jnp.zeros(n[1]), tex, c, default_light(),
                                         height=FLAGS.size, width=FLAGS.size, specular=0.1))(cam)
    views.append(np.asarray(out.image))
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  images.write_png(FLAGS.out, np.concatenate(views, 1))
  print(f"wrote {FLAGS.out}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
