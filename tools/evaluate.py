"""Evaluates reconstructions: shape against a 3D scan, landmarks against ground truth, identity of fits.

  python tools/evaluate.py --mode=scan --pred=out/x/mesh_neutral.obj --pred_landmarks=out/x/report.json \
      --scan=scan.obj --scan_landmarks=scan_lm.json --protocol=now
  python tools/evaluate.py --mode=landmarks --results=out/batch --ground_truth=gt_dir
  python tools/evaluate.py --mode=identity --results=out/batch [--labels=people.csv]

scan: one JSON line with scan_to_mesh_mm (mean scan-to-prediction point-to-surface distance), median_mm,
  std_mm, protocol (now | now_similarity | micc | regions; ganfit_jax.evaluation.shape documents each).
  Landmark files: a
  report.json of tools/fit.py (its landmarks_3d_mm) or a 68x3 .json / .npy. --rigid: no scale in alignment.
landmarks: each report.json under --results is matched by its photo's file name to NAME.pts (iBUG,
  1-based) / .json / .ljson / .npy under --ground_truth; one JSON line per photo, then the mean.
identity: the independent dlib judge on every pair of fits: photo vs render (render.png) and render vs
  render, same person or not (person = --labels CSV 'photo,person', else the photo's folder name);
  verification accuracy (10-fold and dlib's 0.6 threshold) and ROC AUC.
Exit codes: 0 ok, 2 bad input (the message says which file and why).
"""

import csv
import glob
import json
import os
import sys

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("mode", None, ["scan", "landmarks", "identity"], "What to evaluate.")
flags.DEFINE_string("pred", None, "scan: predicted mesh (OBJ/PLY), e.g. mesh_neutral.obj.")
flags.DEFINE_string("pred_landmarks", None, "scan: predicted 68 3D landmarks (report.json, .json or .npy).")
flags.DEFINE_string("scan", None, "scan: the 3D scan (OBJ/PLY mesh or point cloud), in mm.")
flags.DEFINE_string("scan_landmarks", None, "scan: the scan's 68 3D landmarks (.json or .npy).")
flags.DEFINE_enum("protocol", "now", ["now", "now_similarity", "micc", "regions"],
                  "scan: the protocol (now: NoW's own alignment, scaled landmarks then rigid ICP; now_similarity: "
                  "similarity ICP, flatters offsets; micc: symmetric, for full scans, scan_to_pred_mm is the "
                  "one-directional figure).")
flags.DEFINE_bool("rigid", False, "scan: rigid alignment (no scale).")
flags.DEFINE_string("results", None, "landmarks / identity: a folder of tools/fit.py outputs.")
flags.DEFINE_string("ground_truth", None, "landmarks: folder of ground-truth landmark files.")
flags.DEFINE_enum("normalisation", "outer_eye", ["outer_eye", "inter_pupil", "bbox_diagonal"], "landmarks: NME.")
flags.DEFINE_string("labels", None, "identity: CSV with columns photo,person (photo = file name or path).")


class InputError(ValueError):
  pass


def _need(name):
  v = getattr(FLAGS, name)
  if not v:
    raise InputError(f"--{name} is required for --mode={FLAGS.mode}")
  if name != "protocol" and not os.path.exists(v):
    raise InputError(f"--{name}={v} does not exist")
  return v


def _reports(folder):
  paths = sorted(glob.glob(os.path.join(folder, "**", "report.json"), recursive=True))
  if not paths:
    raise InputError(f"no report.json under {folder}; point --results at tools/fit.py's --out")
  out = []
  for p in paths:
    try:
      with open(p) as f:
        out.append((p, json.load(f)))
    except (OSError, json.JSONDecodeError) as e:
      raise InputError(f"{p} is not readable JSON ({e})") from e
  return out


def scan_mode():
  from ganfit_jax.evaluation import landmarks as lm_eval
  from ganfit_jax.evaluation import shape
  pred = shape.load_mesh(_need("pred"))
  scan = shape.load_mesh(_need("scan"))
  pl = lm_eval.read_landmarks(_need("pred_landmarks"), dims=3)
  sl = lm_eval.read_landmarks(_need("scan_landmarks"), dims=3)
  res = shape.evaluate(pred, pl, scan, sl, FLAGS.protocol, scale=not FLAGS.rigid)
  print(json.dumps(dict(res, pred=os.path.abspath(FLAGS.pred), scan=os.path.abspath(FLAGS.scan),
                        alignment="rigid" if FLAGS.rigid else "similarity")))


def landmarks_mode():
  from ganfit_jax.evaluation import landmarks as lm_eval
  gt_dir = _need("ground_truth")
  found = {}
  for p in glob.glob(os.path.join(gt_dir, "**", "*"), recursive=True):
    stem, ext = os.path.splitext(os.path.basename(p))
    if ext.lower() in (".pts", ".json", ".ljson", ".npy"):
      found.setdefault(stem, p)
  errors = []
  for path, rep in _reports(_need("results")):
    stem = os.path.splitext(os.path.basename(rep.get("source", "")))[0]
    if stem not in found:
      print(json.dumps(dict(photo=stem, report=path, error="no ground truth file")), file=sys.stderr)
      continue
    gt = lm_eval.read_landmarks(found[stem])
    pred = np.asarray(rep["landmarks_photo_px"], np.float64)
    e = lm_eval.nme(pred, gt, FLAGS.normalisation)
    errors.append(e)
    print(json.dumps(dict(photo=stem, nme=round(e, 5), ground_truth=found[stem])))
  if not errors:
    raise InputError(f"no report under --results matched a ground-truth file name under {gt_dir}")
  print(json.dumps(dict(mean_nme=round(float(np.mean(errors)), 5), photos=len(errors),
                        normalisation=FLAGS.normalisation)))


def identity_mode():
  import cv2
  from ganfit_jax.evaluation import identity as id_eval
  from ganfit_jax.face import image_io
  labels = {}
  if FLAGS.labels:
    with open(_need("labels")) as f:
      for row in csv.DictReader(f):
        if "photo" not in row or "person" not in row:
          raise InputError(f"{FLAGS.labels} needs the columns photo,person")
        labels[os.path.basename(row["photo"])] = row["person"]
  fits = []
  for path, rep in _reports(_need("results")):
    id_eval.check_judge(id_eval.JUDGE, rep.get("identity_net", ""))
    render_path = os.path.join(os.path.dirname(path), "render.png")
    if not os.path.exists(render_path):
      raise InputError(f"{render_path} is missing (fits made before render.png existed: refit them)")
    src = rep["source"]
    person = labels.get(os.path.basename(src), os.path.basename(os.path.dirname(src)))
    lm = np.asarray(rep["landmarks_photo_px"], np.float64)
    photo = image_io.load_image(src)
    render = cv2.imread(render_path)[..., ::-1].astype(np.float32) / 255.0
    fits.append(dict(person=person, photo=id_eval.judge_embedding(photo, lm),
                     render=id_eval.judge_embedding(render, lm)))
  pairs = [(a, b) for a in range(len(fits)) for b in range(a + 1, len(fits))]
  same = [fits[a]["person"] == fits[b]["person"] for a, b in pairs]
  if len(pairs) < 10 or all(same) or not any(same):
    raise InputError(f"{len(fits)} fits give {len(pairs)} pairs ({sum(same)} same person): need >= 10 pairs "
                     "with both same- and different-person pairs")
  out = dict(fits=len(fits), judge=id_eval.JUDGE)
  for name, (ka, kb) in (("photo_vs_render", ("photo", "render")), ("render_vs_render", ("render", "render"))):
    d = [float(np.linalg.norm(fits[a][ka] - fits[b][kb])) for a, b in pairs]
    out[name] = id_eval.verification(d, same, higher_is_same=False, threshold=id_eval.JUDGE_THRESHOLD)
  d_own = [float(np.linalg.norm(f["photo"] - f["render"])) for f in fits]
  out["own_photo_vs_render_distance_mean"] = float(np.mean(d_own))
  print(json.dumps(out))


def main(argv):
  del argv
  from ganfit_jax.evaluation.landmarks import LandmarkFileError
  from ganfit_jax.face.errors import FaceInputError
  if not FLAGS.mode:
    print("error: --mode=scan|landmarks|identity is required (see --help)", file=sys.stderr)
    return 2
  try:
    {"scan": scan_mode, "landmarks": landmarks_mode, "identity": identity_mode}[FLAGS.mode]()
  except (InputError, LandmarkFileError, FaceInputError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
