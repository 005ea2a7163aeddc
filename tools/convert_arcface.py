"""Converts an insightface ArcFace IResNet (PyTorch state dict or ONNX) into Flax variables (.npz).

  python tools/convert_arcface.py --src=backbone.pth --out=arcface_r50.npz
  python tools/convert_arcface.py --src=w600k_r50.onnx --out=arcface_r50.npz

Use the result in fitting with ``--identity_net=arcface_r50.npz``. No ArcFace
weights ship with ganfit_jax (insightface's are non-commercial): bring your own.
The depth (r18/r34/r50/r100 or other block counts) is read from the file.
"""

import os
import sys

from absl import app, flags

from ganfit_jax.convert import identity_nets

FLAGS = flags.FLAGS
flags.DEFINE_string("src", None, "insightface IResNet checkpoint: a .pth/.pt state dict or an .onnx file.")
flags.DEFINE_string("out", None, "Output .npz with the Flax variables.")


def main(argv):
  del argv
  if not FLAGS.src or not FLAGS.out:
    print("error: --src and --out are required", file=sys.stderr)
    return 2
  if not os.path.exists(FLAGS.src):
    print(f"error: --src={FLAGS.src} does not exist", file=sys.stderr)
    return 2
  try:
    arch = identity_nets.convert_arcface_file(FLAGS.src, FLAGS.out)
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {FLAGS.out} (IResNet {arch})")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
