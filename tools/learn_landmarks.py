"""Learns where the landmark detector's 68 points lie on a morphable model's surface (ganfit_jax.correspondence).

  python tools/learn_landmarks.py                        # default model -> ganfit_jax/weights/landmarks_<model>.npz
  python tools/learn_landmarks.py --model=m.npz --into   # a converted model: written into its own file
  python tools/learn_landmarks.py --train=40 --test=20 --out=/tmp/lm.npz   # a quick run

Renders --train random faces of the model (and --test more with another seed, held out), runs the detector
on each, learns the 51 inner points as surface points and the 17 jaw points as sliding contours, and prints
the agreement (NME, outer-eye-corner distance) between the detector's points and the model's, before and
after, on the held-out renders. The output file is keyed to the model's mesh; ``morphable.load`` applies the
shipped file of a named model, ``--into`` writes the correspondence into a converted model file instead.
Exits 2 on bad flags, 3 on a missing or unreadable model.
"""

import os
import sys
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "ict", "Morphable model: asset name or converted .npz.")
flags.DEFINE_string("texture", "gan", "Texture model of the renders (asset name or path).")
flags.DEFINE_integer("train", 160, "Renders to learn from.", lower_bound=4)
flags.DEFINE_integer("test", 60, "Held-out renders to report on (another seed).", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed of the training renders (the held-out ones use seed + 1).")
flags.DEFINE_integer("size", 512, "Render side, pixels.", lower_bound=128)
flags.DEFINE_float("yaw", 25.0, "Yaw range of the renders, degrees (uniform in [-yaw, yaw]).")
flags.DEFINE_string("out", None, "Output .npz (default: ganfit_jax/weights/landmarks_<model name>.npz).")
flags.DEFINE_bool("into", False, "Write the correspondence into the --model .npz itself (converted models).")
flags.DEFINE_bool("start_fixed", True, "Start from the model's hand-picked vertices (ignore a shipped file).")
flags.DEFINE_string("picture", None, "Write a PNG of held-out renders with the detector's (green) and the "
                    "model's points before (red) and after (blue).")


def _views(scene, n, seed, backgrounds, keep_images=False):
  from ganfit_jax import correspondence
  t = time.time()
  views = correspondence.render_views(scene, n, seed=seed, detect=correspondence.dlib68, size=FLAGS.size,
                                      yaw_deg=FLAGS.yaw, backgrounds=backgrounds, keep_images=keep_images,
                                      progress=lambda s: print("  " + s, flush=True))
  print(f"{len(views)} of {n} renders detected ({time.time() - t:.0f} s)", flush=True)
  return views


def _table(rows):
  from ganfit_jax.correspondence import GROUPS
  print("| model points | " + " | ".join(f"NME {g}" for g in GROUPS) + " |")
  print("|---|" + "---|" * len(GROUPS))
  for name, r in rows:
    print(f"| {name} | " + " | ".join(f"{100 * r[g]:.2f}%" for g in GROUPS) + " |")


def main(argv):
  del argv
  from ganfit_jax import runtime
  runtime.configure()
  from ganfit_jax import correspondence, morphable, scene as scene_lib
  from ganfit_jax.texture import models as texture_models
  from ganfit_jax.assets import AssetError
  from ganfit_jax.data import lfw
  try:
    model = morphable.load(FLAGS.model, "vertices" if FLAGS.start_fixed else "learned")
    scene = scene_lib.make(model, texture_models.load(FLAGS.texture))
  except (AssetError, ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 3
  root = lfw.root()
  people = [n for n, _ in lfw.read_people(os.path.join(root, "peopleDevTrain.txt"))]
  backgrounds = [lfw.image_path(root, p, 1) for p in people[:400]]
  t0 = time.time()
  train = _views(scene, FLAGS.train, FLAGS.seed, backgrounds)
  test = _views(scene, FLAGS.test, FLAGS.seed + 1, backgrounds[::-1], bool(FLAGS.picture)) if FLAGS.test else []
  c0, b0 = np.asarray(model.landmark_corners), np.asarray(model.landmark_bary)
  t = time.time()
  corners, bary = correspondence.learn_points(model, train, range(17, 68))
  jaw_c, jaw_b = correspondence.learn_points(model, train, range(0, 17), radius_mm=15.0)
  corners[:17], bary[:17] = jaw_c[:17], jaw_b[:17]
  contour, turns, outside, sliding = correspondence.learn_contour(model, train, corners, bary)
  print(f"learned in {time.time() - t:.0f} s; sliding jaw points: {np.flatnonzero(sliding).tolist()}; strip turns "
        f"(deg) {turns.round(1).tolist()}, outer ends (mm) {outside.round(1).tolist()}", flush=True)
  for name, views in (("training", train), ("held-out", test)):
    if not views:
      continue
    print(f"\n## Detector vs model points on {len(views)} {name} renders of {model.name} (NME, outer eye corners)\n")
    _table([("hand-picked vertices", correspondence.agreement(model, views, c0, b0)),
            ("learned surface points, fixed jaw", correspondence.agreement(model, views, corners, bary)),
            ("learned, sliding jaw", correspondence.agreement(model, views, corners, bary, contour))])
  learned = morphable.with_landmarks(model, corners, bary, contour)
  meta = dict(detector="dlib 68 (ganfit_jax.face.detect, default front end)", train=FLAGS.train,
              detected=len(train), seed=FLAGS.seed, size=FLAGS.size, yaw_deg=FLAGS.yaw, texture=FLAGS.texture,
              seconds=round(time.time() - t0, 1), jaw_turns_deg=turns.round(2).tolist(),
              jaw_outside_mm=outside.round(2).tolist(), jaw_sliding=sliding.tolist())
  if FLAGS.into:
    if not os.path.isfile(FLAGS.model):
      print("error: --into needs --model to be a converted .npz path", file=sys.stderr)
      return 2
    morphable.save_npz(FLAGS.model, learned)
    out = FLAGS.model
  else:
    out = FLAGS.out or morphable.learned_landmarks_path(model)
    morphable.save_landmarks(out, learned, meta)
    from ganfit_jax import assets
    if os.path.dirname(os.path.abspath(out)) == os.path.abspath(assets.WEIGHTS_DIR):
      assets.record_weights(out)
  print(f"\nwrote {out} ({time.time() - t0:.0f} s in all)")
  if FLAGS.picture and test:
    _picture(FLAGS.picture, test, model, c0, b0, corners, bary, contour)
  return 0


def _picture(path, views, model, c0, b0, corners, bary, contour):
  import cv2
  from ganfit_jax import correspondence
  from ganfit_jax.face import image_io
  tiles = []
  for v in views[:6]:
    im = cv2.cvtColor(image_io.to_uint8(v.image), cv2.COLOR_RGB2BGR)
    for pts, colour in ((v.detected, (0, 200, 0)), (correspondence.points_2d(model, v, c0, b0, None), (0, 0, 255)),
                        (correspondence.points_2d(model, v, corners, bary, contour), (255, 80, 0))):
      for x, y in pts:
        cv2.circle(im, (int(round(x * 4)), int(round(y * 4))), 8, colour, -1, lineType=cv2.LINE_AA, shift=2)
    tiles.append(im)
  tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 3)
  rows = [np.concatenate(tiles[i:i + 3], 1) for i in range(0, len(tiles), 3)]
  from ganfit_jax.files import atomic_path
  with atomic_path(path) as tmp:
    cv2.imwrite(tmp + ".png", np.concatenate(rows, 0))
    os.replace(tmp + ".png", tmp)
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
