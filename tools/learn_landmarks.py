"""Learns where a landmark detector's points lie on a morphable model's surface (ganfit_jax.correspondence).

  python tools/learn_landmarks.py                        # dlib's 68 -> ganfit_jax/weights/landmarks_<model>.npz
  python tools/learn_landmarks.py --points=dense         # MediaPipe's 478, into the same file
  python tools/learn_landmarks.py --model=m.npz --into   # a converted model: written into its own file
  python tools/learn_landmarks.py --train=40 --test=20 --out=/tmp/lm.npz   # a quick run
  python tools/learn_landmarks.py --points=dense --keep   # only the scatter (per-point confidence)
  python tools/learn_landmarks.py --source=photos --train=300 --test=100   # the 68 from real DevTrain photos

Renders --train random faces of the model (and --test more with another seed, held out), runs the detector
on each and learns its points' surface positions: --points=68: dlib's 68 (the 51 inner points as surface
points, the 17 jaw points as sliding contours); --points=dense: MediaPipe's 478 face-mesh points (each
started at the vertex nearest its detections, then refined on the surface). Prints the agreement (NME,
outer-eye-corner distance) between the detector's points and the model's, before and after, on the held-out
renders. --source=photos learns dlib's 68 from real photos instead (DevTrain LFW, see the flag): the
model's geometry on each photo is fitted to MediaPipe's dense points alone, so dlib's points there are an
independent target; the renders' GAN faces make dlib place some points (brows, the jaw) otherwise than on
real faces (WORKSPACE.md "Landmark correspondences learned from photos"). Each point's scatter around
the model's point on the training views (RMS, outer-eye-corner distance) is written with it: the per-point
confidence the fit can weight by (config landmark_confidence); --keep measures only that for the model's
present correspondence. The output keeps the other detector's correspondence of the model. The file is
keyed to the model's mesh; ``morphable.load`` applies the shipped file of a named model, ``--into`` writes the
correspondence into a converted model file instead. Exits 2 on bad flags, 3 on a missing or unreadable model.
"""

import os
import sys
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "ict", "Morphable model: asset name or converted .npz.")
flags.DEFINE_enum("points", "68", ["68", "dense"], "Which detector's points: dlib's 68, or MediaPipe's 478.")
flags.DEFINE_string("texture", "gan", "Texture model of the renders (asset name or path).")
flags.DEFINE_integer("train", 160, "Renders to learn from.", lower_bound=4)
flags.DEFINE_integer("test", 60, "Held-out renders to report on (another seed).", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed of the training renders (the held-out ones use seed + 1).")
flags.DEFINE_integer("size", 512, "Render side, pixels.", lower_bound=128)
flags.DEFINE_float("yaw", 25.0, "Yaw range of the renders, degrees (uniform in [-yaw, yaw]).")
flags.DEFINE_string("out", None, "Output .npz (default: ganfit_jax/weights/landmarks_<model name>.npz).")
flags.DEFINE_bool("into", False, "Write the correspondence into the --model .npz itself (converted models).")
flags.DEFINE_bool("start_fixed", True, "--points=68: start from the model's hand-picked vertices (ignore a "
                  "shipped file).")
flags.DEFINE_bool("keep", False, "Keep the model's correspondence for --points; only measure the detector's "
                  "per-point scatter around it (the landmark confidence, MorphableModel.landmark_scatter / "
                  "dense_scatter) and write it.")
flags.DEFINE_enum("source", "renders", ["renders", "photos"], "Where the detector's points come from: "
                  "'renders' (random faces of the model rendered by the project, exact geometry) or 'photos' "
                  "(--points=68 only: the first photo of each DevTrain LFW person, --train people then --test "
                  "more held out; the model fitted to MediaPipe's dense points alone (the fast preset's landmark "
                  "stage, 300 steps, the 68 unused) gives the geometry, dlib's 68 on the photo the target; starts "
                  "from the model's present correspondence).")
flags.DEFINE_string("faces_cache", "work/lfw_faces.jsonl", "--source=photos: cache of the photos' detected faces "
                    "(ganfit_jax.data.lfw.detect_cache; missing photos are detected and added).")
flags.DEFINE_string("picture", None, "Write a PNG of held-out renders with the detector's (green) and the "
                    "model's points before (red) and after (blue).")


def _views(scene, n, seed, backgrounds, keep_images=False):
  from ganfit_jax import correspondence
  t = time.time()
  detect = correspondence.dlib68 if FLAGS.points == "68" else _dense_only
  views = correspondence.render_views(scene, n, seed=seed, detect=detect, size=FLAGS.size,
                                      yaw_deg=FLAGS.yaw, backgrounds=backgrounds, keep_images=keep_images,
                                      progress=lambda s: print("  " + s, flush=True))
  print(f"{len(views)} of {n} renders detected ({time.time() - t:.0f} s)", flush=True)
  return views


def _photo_views(names, keep_images=False):
  """--source=photos: one View a DevTrain photo (the canvas, its fitted geometry, dlib's 68 on the canvas);
  photos without a face or without MediaPipe's points are skipped."""
  from ganfit_jax import correspondence, face, morphable
  from ganfit_jax.configs import fit as fit_config
  from ganfit_jax.data import lfw
  from ganfit_jax.reconstruct import Reconstructor
  import jax
  cfg = fit_config.get_config("fast")
  cfg.model, cfg.mode, cfg.stage_order = FLAGS.model, "fit", ("align",)
  cfg.stages.align.steps = 300
  cfg.stages.align.weights.align = cfg.stages.align.weights.landmark = 0.0
  rec = Reconstructor(cfg)
  root = lfw.root()
  rels = [f"{n}/{n}_0001.jpg" for n in names]
  t = time.time()
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.faces_cache)), exist_ok=True)
  found = lfw.detect_cache(root, rels, FLAGS.faces_cache)
  items = []
  for rel in rels:
    fl = found.get(rel) or []
    if fl:
      lm = np.asarray(fl[lfw.subject_face(fl, fl[0]["shape"])]["landmarks"], np.float32)
      p = face.from_landmarks(face.load_image(os.path.join(root, "images_deepfunneled", rel)), lm,
                              cfg.canvas_size, dense=True)
      if p.dense is not None:
        items.append(p)
  views, batch = [], 16
  for k in range(0, len(items), batch):
    chunk = items[k:k + batch]
    results = rec.fit(chunk, ["photo"] * len(chunk), batch=batch)
    for p, r in zip(chunk, results):
      f = jax.device_get(r.face)
      verts = np.asarray(morphable.vertices(rec.model, f.shape, f.expression), np.float32)
      views.append(correspondence.View(vertices=verts, camera=np.asarray(f.camera, np.float64),
                                       size=cfg.canvas_size, detected=np.asarray(p.landmarks, np.float64),
                                       image=p.canvas if keep_images else None))
    print(f"  fitted {len(views)}/{len(items)} photos", flush=True)
  print(f"{len(views)} of {len(names)} photos with both detectors' points ({time.time() - t:.0f} s)", flush=True)
  return views


def _dense_only(image):
  from ganfit_jax import correspondence
  both = correspondence.dlib68_and_dense(image)
  return None if both is None else both[68:]


def _table(rows, groups):
  print("| model points | " + " | ".join(f"NME {g}" for g in groups) + " |")
  print("|---|" + "---|" * len(groups))
  for name, r in rows:
    print(f"| {name} | " + " | ".join(f"{100 * r[g]:.2f}%" for g in groups) + " |")


def _learn_68(model, train, test):
  """The 68 points: (model with them learned, table rows per split, meta, pictures' point sets)."""
  from ganfit_jax import correspondence, morphable
  c0, b0 = np.asarray(model.landmark_corners), np.asarray(model.landmark_bary)
  t = time.time()
  corners, bary = correspondence.learn_points(model, train, range(17, 68))
  jaw_c, jaw_b = correspondence.learn_points(model, train, range(0, 17), radius_mm=15.0)
  corners[:17], bary[:17] = jaw_c[:17], jaw_b[:17]
  contour, turns, outside, sliding = correspondence.learn_contour(model, train, corners, bary)
  print(f"learned in {time.time() - t:.0f} s; sliding jaw points: {np.flatnonzero(sliding).tolist()}; strip turns "
        f"(deg) {turns.round(1).tolist()}, outer ends (mm) {outside.round(1).tolist()}", flush=True)

  def rows(views):
    start = "hand-picked vertices" if FLAGS.source == "renders" else "the model's present points, fixed jaw"
    present = [("the model's present points, its sliding jaw",
                correspondence.agreement(model, views, c0, b0, np.asarray(model.contour)))] \
        if FLAGS.source == "photos" and model.contour.shape[1] else []
    return [(start, correspondence.agreement(model, views, c0, b0))] + present + [
        ("learned surface points, fixed jaw", correspondence.agreement(model, views, corners, bary)),
        ("learned, sliding jaw", correspondence.agreement(model, views, corners, bary, contour))]
  meta = dict(detector="dlib 68 (ganfit_jax.face.detect, default front end)", jaw_turns_deg=turns.round(2).tolist(),
              jaw_outside_mm=outside.round(2).tolist(), jaw_sliding=sliding.tolist())
  learned = morphable.with_landmarks(model, corners, bary, contour, scatter=(
      correspondence.scatter(model, train, corners, bary, contour), model.dense_scatter))
  return learned, rows, meta, ((c0, b0, None), (corners, bary, contour)), correspondence.GROUPS


def _learn_dense(model, train, test):
  """MediaPipe's 478 points (as :func:`_learn_68`)."""
  from ganfit_jax import correspondence as C, morphable
  t = time.time()
  c0, b0 = C.nearest_vertices(model, train)
  corners, bary = C.learn_points(model, train, range(len(c0)), start=(c0, b0), eyes=C.EYES_DENSE, radius_mm=6.0)
  print(f"learned in {time.time() - t:.0f} s", flush=True)

  def rows(views):
    return [(name, C.agreement(model, views, c, b, groups=C.DENSE_GROUPS, eyes=C.EYES_DENSE))
            for name, (c, b) in (("nearest vertices", (c0, b0)), ("learned surface points", (corners, bary)))]
  meta = dict(detector="MediaPipe face landmarker v2, 478 points (ganfit_jax.face.facemesh)")
  learned = morphable.with_landmarks(model, model.landmark_corners, model.landmark_bary, model.contour,
                                     (corners, bary), (model.landmark_scatter,
                                                       C.scatter(model, train, corners, bary, eyes=C.EYES_DENSE)))
  return learned, rows, meta, ((c0, b0, None), (corners, bary, None)), C.DENSE_GROUPS


def _keep(model, train, test):
  """--keep: the model's correspondence as it is; only its scatter (the per-point confidence) is measured."""
  from ganfit_jax import correspondence as C, morphable
  if FLAGS.points == "68":
    pts = (np.asarray(model.landmark_corners), np.asarray(model.landmark_bary), np.asarray(model.contour))
    groups, eyes = C.GROUPS, C.EYES_68
    scatter = (C.scatter(model, train, *pts), model.dense_scatter)
  else:
    if not model.dense_corners.shape[0]:
      raise ValueError(f"{model.name} has no dense correspondence to keep: run without --keep first")
    pts = (np.asarray(model.dense_corners), np.asarray(model.dense_bary), None)
    groups, eyes = C.DENSE_GROUPS, C.EYES_DENSE
    scatter = (model.landmark_scatter, C.scatter(model, train, pts[0], pts[1], eyes=eyes))
  learned = morphable.with_landmarks(model, model.landmark_corners, model.landmark_bary, model.contour, None,
                                     scatter)

  def rows(views):
    return [("the model's points (kept)", C.agreement(model, views, *pts, groups=groups, eyes=eyes))]
  return learned, rows, dict(detector_scatter_only=True), (pts, pts), groups


def main(argv):
  del argv
  from ganfit_jax import runtime
  runtime.configure()
  from ganfit_jax import morphable, scene as scene_lib
  from ganfit_jax.texture import models as texture_models
  from ganfit_jax.assets import AssetError
  from ganfit_jax.data import lfw
  try:
    shipped = morphable.load(FLAGS.model, "learned")
    if FLAGS.source == "photos" and FLAGS.points != "68":
      print("error: --source=photos learns dlib's 68 (--points=68): the photos' geometry comes from the dense "
            "points", file=sys.stderr)
      return 2
    fixed = FLAGS.points == "68" and FLAGS.start_fixed and not FLAGS.keep and FLAGS.source == "renders"
    model = morphable.load(FLAGS.model, "vertices") if fixed else shipped
    scene = scene_lib.make(model, texture_models.load(FLAGS.texture))
  except (AssetError, ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 3
  root = lfw.root()
  people = [n for n, _ in lfw.read_people(os.path.join(root, "peopleDevTrain.txt"))]
  backgrounds = [lfw.image_path(root, p, 1) for p in people[:400]]
  t0 = time.time()
  if FLAGS.source == "photos":
    train = _photo_views(people[:FLAGS.train])
    test = _photo_views(people[FLAGS.train:FLAGS.train + FLAGS.test], bool(FLAGS.picture)) if FLAGS.test else []
  else:
    train = _views(scene, FLAGS.train, FLAGS.seed, backgrounds)
    test = _views(scene, FLAGS.test, FLAGS.seed + 1, backgrounds[::-1], bool(FLAGS.picture)) if FLAGS.test else []
  learn = _keep if FLAGS.keep else _learn_68 if FLAGS.points == "68" else _learn_dense
  try:
    learned, rows, meta, point_sets, groups = learn(model, train, test)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for name, views in (("training", train), ("held-out", test)):
    if views:
      print(f"\n## Detector vs model points on {len(views)} {name} {FLAGS.source} of {model.name} (NME, outer eye "
            "corners)\n")
      _table(rows(views), groups)
  # the other detector's correspondence (and its scatter) stays as the model's shipped file has it
  mine = FLAGS.points == "68"
  learned = morphable.with_landmarks(
      learned, *((learned.landmark_corners, learned.landmark_bary, learned.contour) if mine else
                 (shipped.landmark_corners, shipped.landmark_bary, shipped.contour)),
      (shipped.dense_corners, shipped.dense_bary) if mine else None,
      (learned.landmark_scatter, shipped.dense_scatter) if mine else (shipped.landmark_scatter, learned.dense_scatter))
  meta = dict(meta, points=FLAGS.points, train=FLAGS.train, detected=len(train), seed=FLAGS.seed, size=FLAGS.size,
              yaw_deg=FLAGS.yaw, texture=FLAGS.texture, source=FLAGS.source, seconds=round(time.time() - t0, 1))
  if FLAGS.into:
    if not os.path.isfile(FLAGS.model):
      print("error: --into needs --model to be a converted .npz path", file=sys.stderr)
      return 2
    morphable.save_npz(FLAGS.model, learned)
    out = FLAGS.model
  else:
    out = FLAGS.out or morphable.learned_landmarks_path(model)
    morphable.save_landmarks(out, learned, _merge_meta(out, meta))
    from ganfit_jax import assets
    if os.path.dirname(os.path.abspath(out)) == os.path.abspath(assets.WEIGHTS_DIR):
      assets.record_weights(out)
  print(f"\nwrote {out} ({time.time() - t0:.0f} s in all)")
  if FLAGS.picture and test:
    _picture(FLAGS.picture, test, model, *point_sets)
  return 0


def _merge_meta(path, meta):
  """The file's meta keeps the other detector's entry: {'68': ..., 'dense': ...}."""
  import json
  old = {}
  if os.path.isfile(path):
    with np.load(path) as z:
      old = json.loads(bytes(z["header"]).decode()).get("meta", {})
  if "detector" in old:  # a file written before dense points: its meta is the 68's
    old = {"68": old}
  old = {k: v for k, v in old.items() if k in ("68", "dense")}
  return dict(old, **{FLAGS.points: meta})


def _picture(path, views, model, before, after):
  import cv2
  from ganfit_jax import correspondence
  from ganfit_jax.face import image_io
  tiles = []
  for v in views[:6]:
    im = cv2.cvtColor(image_io.to_uint8(v.image), cv2.COLOR_RGB2BGR)
    radius = 8 if len(v.detected) <= 68 else 4
    for pts, colour in ((v.detected, (0, 200, 0)), (correspondence.points_2d(model, v, *before), (0, 0, 255)),
                        (correspondence.points_2d(model, v, *after), (255, 80, 0))):
      for x, y in pts:
        cv2.circle(im, (int(round(x * 4)), int(round(y * 4))), radius, colour, -1, lineType=cv2.LINE_AA, shift=2)
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
