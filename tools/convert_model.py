"""Converts a registration-gated model a user brings into a ganfit_jax model (.npz, millimetres).

  python tools/convert_model.py --format=bfm2009 --in=01_MorphableModel.mat --landmarks=lm68.txt --out=bfm09.npz
  python tools/convert_model.py --format=bfm2017 --in=model2017-1_face12_nomouth.h5 --landmarks=lm.txt --out=m.npz
  python tools/convert_model.py --format=flame --in=generic_model.pkl --landmarks=lm.txt --out=flame.npz
  python tools/convert_model.py --format=lsfm --in=all_all_all.mat --landmarks=lm.txt --out=lsfm.npz
  python tools/convert_model.py --format=3ddfa --in=bfm_noneck_v3.pkl --bfm_configs=3DDFA_V2/configs --out=bfm.npz

--landmarks: 68 vertex indices (iBUG order) as .npy or text; the official files do not ship them.
"""

import sys

from absl import app, flags

from ganfit_jax import morphable
from ganfit_jax.formats import bfm

FLAGS = flags.FLAGS
flags.DEFINE_enum("format", None, ["bfm2009", "bfm2017", "flame", "lsfm", "3ddfa"], "Input layout.",
                  required=True)
flags.DEFINE_string("in", None, "Input model file.", required=True)
flags.DEFINE_string("out", None, "Output .npz path.", required=True)
flags.DEFINE_string("landmarks", None, "68 landmark vertex indices (.npy or text).")
flags.DEFINE_string("bfm_configs", None, "3DDFA_V2 configs/ folder (format=3ddfa).")


def main(argv):
  del argv
  src = getattr(FLAGS, "in")
  try:
    if FLAGS.format == "3ddfa":
      if not FLAGS.bfm_configs:
        raise ValueError("--bfm_configs is required for --format=3ddfa")
      model, meta = bfm.convert_3ddfa(src, FLAGS.bfm_configs)
    else:
      if not FLAGS.landmarks:
        raise ValueError(f"--landmarks is required for --format={FLAGS.format}")
      model, meta = bfm.read(FLAGS.format, src, FLAGS.landmarks), dict(source=src, units="mm")
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  morphable.save_npz(FLAGS.out, model, meta)
  print(f"wrote {FLAGS.out}: {model.num_vertices} vertices, {model.num_identity} identity, "
        f"{model.num_expression} expression components")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
