"""Fast-GANFit on your own photos: train the regressor for a few steps on a folder, save it, load it back and
regress photos in one call.

  python examples/train_regressor_on_photos.py                        # 8 LFW DevTrain photos, 40 steps
  python examples/train_regressor_on_photos.py --photos=folder/ --steps=200 --out=my_regressor.npz

The regressor is trained self-supervised through the fit's own loss (here only its landmark stage: the
landmark and prior terms, no render, so it runs in seconds; ``tools/train_regressor.py`` trains both stages
on LFW). The network is tiny here (8 channels a stage); it prints the landmark loss of the untrained
regressor (which predicts the mean face) and of the trained one on the training photos.
"""

import os
import sys
import tempfile

import numpy as np
from absl import app, flags

flags.DEFINE_string("photos", None, "A folder of photos (default: 8 LFW DevTrain photos).")
flags.DEFINE_integer("steps", 40, "Training steps.")
flags.DEFINE_string("out", None, "Where to save the trained regressor (.npz; default: a temporary folder).")
FLAGS = flags.FLAGS
TINY_NET = dict(widths=(8, 8, 8, 8), blocks=1, hidden=32, feature_width=4)


def main(argv):
  del argv
  import jax

  import ganfit_jax
  from absl import logging

  from ganfit_jax import face, regressor, runtime
  from ganfit_jax.data import lfw
  runtime.configure()
  if logging.get_verbosity() < 1:  # orbax's checkpoint INFO lines: shown with --v=1
    logging.set_verbosity(logging.WARNING)
  if FLAGS.photos:
    if not os.path.isdir(FLAGS.photos):
      print(f"error: --photos={FLAGS.photos} is not a folder", file=sys.stderr)
      return 2
    photos = sorted(os.path.join(FLAGS.photos, n) for n in os.listdir(FLAGS.photos)
                    if n.lower().endswith((".jpg", ".jpeg", ".png")))
  else:
    photos = lfw.first_photos(8)
  scene = ganfit_jax.load_scene("ict", texture="gan", identity="sface")
  try:
    landmarks = [face.prepare(p, scene.canvas_size).photo_landmarks for p in photos]
  except face.FaceInputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if len(photos) < 2:
    print("error: give at least two photos with a face", file=sys.stderr)
    return 2
  data = regressor.prepare_photos(scene, photos, landmarks, jaw_weight=0.5)
  weights = ganfit_jax.LossWeights.create(align=1.0, reg_shape=25.0, reg_expression=0.01, sparse_expression=20.0)

  def landmark_loss(net):
    t = data.batch(np.arange(data.size))
    _, _, _, terms = ganfit_jax.regress(net, scene, t.image, t.landmarks, t.landmark_weight, weights)
    return float(np.mean(jax.device_get(terms["align"])))

  untrained = regressor.init(scene, jax.random.key(0), **TINY_NET)
  with tempfile.TemporaryDirectory() as work:
    net = regressor.train(scene, data, [dict(name="align", steps=FLAGS.steps, weights=weights)], workdir=work,
                          batch_size=min(4, data.size), lr=3e-3, net_options=TINY_NET, log=lambda s: None)
    path = FLAGS.out or os.path.join(work, "regressor.npz")
    regressor.save(path, net, meta=dict(photos=len(photos), steps=FLAGS.steps))
    loaded, meta = regressor.load(path)
    print(f"trained on {len(photos)} photos for {FLAGS.steps} steps; saved {os.path.getsize(path)} bytes"
          f"{' to ' + path if FLAGS.out else ''}")
    print(f"{'regressor':<12}{'landmark loss (align)':>24}")
    for name, n in (("untrained", untrained), ("trained", net), ("reloaded", loaded)):
      print(f"{name:<12}{landmark_loss(n):>24.3f}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
