"""Converts an ICT-FaceKit checkout into a ganfit_jax morphable model (.npz, millimetres).

  python tools/convert_ict.py --ict_dir=../shared/assets/ict-facekit --out=/tmp/ict.npz
  python tools/convert_ict.py --ict_dir=DIR --out=FILE --regions=face,head_neck,eyes,teeth

`tools/fetch_assets.py` runs the same conversion into the asset cache.
"""

import sys

from absl import app, flags

from ganfit_jax import morphable
from ganfit_jax.formats import ict

FLAGS = flags.FLAGS
flags.DEFINE_string("ict_dir", None, "Root of an ICT-FaceKit checkout (holds FaceXModel/).", required=True)
flags.DEFINE_string("out", None, "Output .npz path.", required=True)
flags.DEFINE_list("regions", list(ict.DEFAULT_REGIONS), f"Regions to keep, from {sorted(ict.REGIONS)}.")
flags.DEFINE_integer("num_identity", 100, "Identity components to keep (<= 100).")


def main(argv):
  del argv
  try:
    model, meta = ict.convert(FLAGS.ict_dir, regions=FLAGS.regions, num_identity=FLAGS.num_identity)
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  morphable.save_npz(FLAGS.out, model, meta)
  print(f"wrote {FLAGS.out}: {model.num_vertices} vertices, {model.triangles.shape[0]} triangles, "
        f"{model.num_identity} identity, {model.num_expression} expression components")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
