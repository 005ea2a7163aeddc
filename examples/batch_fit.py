"""Batch fitting from Python: several photos in one vmapped fit, sharded over this machine's devices, results as
FaceParams (no files written).

  python examples/batch_fit.py                                  # 4 LFW DevTrain photos, the tiny preset
  python examples/batch_fit.py --photos=a.jpg,b.jpg,c.jpg --preset=fast

``Reconstructor.prepare`` loads and detects each photo; ``Reconstructor.fit`` fits them as ONE batch (the
photo axis vmapped inside every compiled step, and split over a 1-d device mesh when there are several
devices: ``jax.local_devices()``; pad the batch to a multiple of their count). Each result holds the photo's
:class:`ganfit_jax.FaceParams`; this prints a line per photo.
"""

import os
import sys

import numpy as np
from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_list("photos", None, "Photos (default: four LFW DevTrain photos from ../shared/assets/lfw).")
flags.DEFINE_string("preset", "tiny", "Fitting preset: tiny (seconds), fast (the default of tools/fit.py), paper.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  import jax

  import ganfit_jax
  from ganfit_jax import face, runtime
  from ganfit_jax.configs.fit import get_config
  from ganfit_jax.data import lfw
  from ganfit_jax.jobs.run import local_mesh
  runtime.configure()
  try:
    photos = FLAGS.photos or lfw.first_photos(4)
    rec = ganfit_jax.Reconstructor(get_config(FLAGS.preset))
    prepared = [rec.prepare(p) for p in photos]
  except (face.FaceInputError, OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  mesh = local_mesh()
  # the batch must split evenly over the devices: padded with copies of the first photo, their results dropped
  results = rec.fit(prepared, photos, mesh=mesh, batch=len(prepared) + (-len(prepared) % mesh.size))
  print(f"{len(photos)} photos in one batch on {mesh.size} device(s) ({jax.default_backend()}), "
        f"{results[0].seconds:.1f} s, preset {FLAGS.preset}")
  print(f"{'photo':<36}{'shape rms (sigma)':>18}{'max expression':>16}{'yaw (deg)':>11}{'landmark RMSE px':>18}")
  for r in results:
    f: ganfit_jax.FaceParams = r.face
    eye, at = np.asarray(f.camera[:3]), np.asarray(f.camera[3:6])
    yaw = np.degrees(np.arctan2((eye - at)[0], (eye - at)[2]))
    print(f"{os.path.basename(r.source):<36}{float(np.sqrt(np.mean(np.square(f.shape)))):>18.3f}"
          f"{float(np.max(f.expression)):>16.3f}{yaw:>11.1f}{r.final['landmark_rmse_px']:>18.2f}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
