"""Shape error on faces of ANOTHER morphable model (BFM) rendered into photos and fitted with ICT-FaceKit.

  python benchmarks/shape.py --num=20                           # the default (fast) preset
  python benchmarks/shape.py --num=20 --config.stages.full.steps=0   # the landmark stage alone

Needs the ``bfm`` and ``ddfa_v2`` assets (setup fetches them when 3DDFA_V2's configs are available).
``evaluation.synthetic`` makes the photos (random BFM identity, expression ~ N(0, --expression_std),
a texture sample of the shipped GAN carried onto the BFM surface, random pose, light and focal length,
blurred DevTrain backgrounds). Each photo goes through the main job's front end (dlib detection, 68
landmarks, canvas) and fit; the fitted NEUTRAL mesh is measured against the generating neutral mesh by
each protocol of ``evaluation.shape`` (similarity alignment). Rows: the fit, the ICT mean face (the
fit's start: same protocols), and 3DDFA_V2's regressor on the same photo and landmarks. Also printed:
expression activations (max per face) and the share of shape coefficients beyond 3 sigma.
Two reference rows (``--bounds``) show what the models allow at all: the ICT shape closest to each 3D face
(fitted to the ground-truth surface, :func:`best_model_shape`: a lower bound for any photo fit with ICT)
and the BFM mean face (what a regressor of the generating model starts from).
"""

import json
import os
import sys
import time

import numpy as np
from absl import app, flags
from ml_collections import config_flags

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", os.path.join(ROOT, "configs", "fit.py"), "Fitting preset and overrides.")
flags.DEFINE_integer("num", 20, "Synthetic faces.")
flags.DEFINE_integer("seed", 0, "Seed of the synthetic faces (identities, textures, poses).")
flags.DEFINE_float("expression_std", 0.0, "Expression coefficients of the generated faces ~ N(0, std).")
flags.DEFINE_integer("batch", 4, "Photos fitted together.")
flags.DEFINE_list("protocols", ["micc", "now"], "Protocols to report.")
flags.DEFINE_string("json_out", None, "Write every per-face number here (JSON).")
flags.DEFINE_bool("peer", True, "Include the 3DDFA_V2 row.")
flags.DEFINE_bool("bounds", True, "Include the two reference rows that need no photo: the best ICT shape for "
                  "each 3D face (fitted to the ground-truth surface itself) and the BFM mean face.")


def synthetic_faces(num, seed, expression_std, scene):
  import jax
  from ganfit_jax import morphable
  from ganfit_jax.data import lfw
  from ganfit_jax.evaluation import synthetic
  bfm = morphable.load("bfm")
  uv = synthetic.transfer_uv(bfm, scene.model)
  lat = jax.random.normal(jax.random.PRNGKey(1000 + seed), (min(num, 16), scene.texture.latent_dim))
  textures = np.asarray(jax.jit(jax.vmap(scene.texture_image))(lat))
  root = lfw.root()
  people = [n for n, _ in lfw.read_people(os.path.join(root, "peopleDevTrain.txt"))]
  backgrounds = [lfw.image_path(root, p, 1) for p in people[:300]]
  return bfm, synthetic.make_faces(bfm, uv, textures, num, seed=seed, expression_std=expression_std,
                                   background_photos=backgrounds)


def best_model_shape(model, scan_vertices, scan_triangles, scan_landmarks, rounds: int = 10, ridge: float = 0.1):
  """The model's closest shape to a 3D face, fitted to the ground-truth SURFACE (not a photo): alternately
  align (Umeyama on landmarks, then ICP) and solve ridge-regularised least squares for the identity
  coefficients against the closest surface points (within 5 mm) of the face-region vertices. No photo
  fit with this model can beat it by these protocols (up to the protocol's own alignment)."""
  from ganfit_jax.evaluation import shape
  mean = np.asarray(model.mean, np.float64)
  basis = np.asarray(model.id_basis, np.float64)
  lm = np.asarray(model.landmarks)
  tri = np.asarray(model.triangles)
  region = np.asarray(model.face_mask, bool) & (np.asarray(model.material) == 0)
  scan = shape.Mesh.of(scan_vertices, scan_triangles)
  k = basis.shape[0]
  a = np.zeros(k)
  for _ in range(rounds):
    v = mean + np.tensordot(a, basis, 1)
    s, r, t = shape.umeyama(v[lm], scan_landmarks)
    _, (s2, r2, t2) = shape.icp(shape.Mesh.of(v, tri).transformed(s, r, t), scan, iterations=10)
    sc, rot, tr = s2 * s, r2 @ r, s2 * r2 @ t + t2
    c = shape.closest_points(sc * v[region] @ rot.T + tr, scan)
    ok = c.distance < 5.0
    target = ((c.points - tr) @ rot) / sc
    design = basis[:, region][:, ok].reshape(k, -1).T
    y = (target[ok] - mean[region][ok]).reshape(-1)
    a = np.linalg.solve(design.T @ design + ridge * np.eye(k), design.T @ y)
  return mean + np.tensordot(a, basis, 1)


def measure(pred_vertices, pred_triangles, pred_lm, face, protocols):
  from ganfit_jax.evaluation import shape
  pred = shape.Mesh.of(pred_vertices, pred_triangles)
  scan = shape.Mesh.of(face.neutral, face.triangles)
  return {p: shape.evaluate(pred, pred_lm, scan, face.landmarks_3d, p)["scan_to_mesh_mm"] for p in protocols}


def main(argv):
  del argv
  from ganfit_jax import runtime
  runtime.configure()
  from ganfit_jax import face as face_lib
  from ganfit_jax import morphable
  from ganfit_jax.reconstruct import Reconstructor
  cfg = FLAGS.config
  rec = Reconstructor(cfg)
  t0 = time.time()
  bfm, faces = synthetic_faces(FLAGS.num, FLAGS.seed, FLAGS.expression_std, rec.scene)
  print(f"{len(faces)} synthetic BFM faces in {time.time() - t0:.0f} s", flush=True)
  tri = np.asarray(rec.model.triangles)
  lm_idx = np.asarray(rec.model.landmarks)
  mean = np.asarray(rec.model.mean)
  peer = None
  if FLAGS.peer:
    from ganfit_jax.evaluation import peers
    peer = peers.ddfa()
  rows = {"ganfit_jax fit": [], "ICT mean face": []}
  if peer:
    rows["3DDFA_V2"] = []
  if FLAGS.bounds:
    rows["ICT best shape for the 3D face (bound)"] = []
    rows["BFM mean face (the generating model's)"] = []
  extra = {"max_expression": [], "shape_beyond_3sigma": [], "detected": 0}
  per_face = []
  prepared = []
  for i, f in enumerate(faces):
    try:
      prepared.append((i, face_lib.prepare_image(f.photo, cfg.canvas_size, source=f"synthetic {i}")))
    except face_lib.FaceInputError as e:
      print(f"  face {i}: {e}", flush=True)
  extra["detected"] = len(prepared)
  import jax
  for k in range(0, len(prepared), FLAGS.batch):
    chunk = prepared[k:k + FLAGS.batch]
    preps = [p for _, p in chunk]
    pad = FLAGS.batch - len(preps)
    results = rec.fit(preps + [preps[0]] * pad, [f"synthetic {i}" for i, _ in chunk] + ["pad"] * pad)[:len(preps)]
    for (i, p), r in zip(chunk, results):
      f = faces[i]
      neutral = np.asarray(jax.device_get(morphable.vertices(rec.model, r.face.shape)))
      row = dict(face=i)
      row["ganfit_jax fit"] = measure(neutral, tri, neutral[lm_idx], f, FLAGS.protocols)
      row["ICT mean face"] = measure(mean, tri, mean[lm_idx], f, FLAGS.protocols)
      if peer:
        pr = peer(f.photo, p.photo_landmarks)
        row["3DDFA_V2"] = measure(pr.neutral, pr.triangles, pr.neutral[np.asarray(peer.model.landmarks)], f,
                                  FLAGS.protocols)
      if FLAGS.bounds:
        best = best_model_shape(rec.model, f.neutral, f.triangles, f.landmarks_3d)
        row["ICT best shape for the 3D face (bound)"] = measure(best, tri, best[lm_idx], f, FLAGS.protocols)
        bmean = np.asarray(bfm.mean)
        row["BFM mean face (the generating model's)"] = measure(bmean, np.asarray(bfm.triangles),
                                                                bmean[np.asarray(bfm.landmarks)], f, FLAGS.protocols)
      for name in rows:
        rows[name].append(row[name])
      e, s = np.asarray(r.face.expression), np.asarray(r.face.shape)
      extra["max_expression"].append(float(e.max()))
      extra["shape_beyond_3sigma"].append(float((np.abs(s) > 3).mean()))
      row.update(max_expression=float(e.max()), shape_beyond_3sigma=float((np.abs(s) > 3).mean()),
                 landmark_rmse_px=r.final["landmark_rmse_px"])
      per_face.append(row)
      print(f"  face {i}: " + "; ".join(f"{n} " + ", ".join(f"{p} {v:.2f}" for p, v in row[n].items())
                                         for n in rows) + f"; max expression {e.max():.2f}", flush=True)
  print(f"\n## Shape error on {len(per_face)} synthetic BFM faces (of {len(faces)}; dlib found "
        f"{extra['detected']}), fitted with ICT-FaceKit, preset {cfg.preset}, mm (lower is better)\n")
  print("| reconstruction | " + " | ".join(f"{p} mean" for p in FLAGS.protocols) + " |")
  print("|---|" + "---|" * len(FLAGS.protocols))
  for name, vals in rows.items():
    print(f"| {name} | " + " | ".join(f"{np.mean([v[p] for v in vals]):.3f}" for p in FLAGS.protocols) + " |")
  base = {p: np.mean([v[p] for v in rows["ICT mean face"]]) for p in FLAGS.protocols}
  fit = {p: np.mean([v[p] for v in rows["ganfit_jax fit"]]) for p in FLAGS.protocols}
  print("\nfit / mean face: " + ", ".join(f"{p} {fit[p] / base[p]:.3f}" for p in FLAGS.protocols))
  print(f"max expression activation: mean {np.mean(extra['max_expression']):.3f}, max "
        f"{np.max(extra['max_expression']):.3f}; shape coefficients beyond 3 sigma: "
        f"{100 * np.mean(extra['shape_beyond_3sigma']):.2f}%")
  print(f"({time.time() - t0:.0f} s)")
  if FLAGS.json_out:
    with open(FLAGS.json_out, "w") as fh:
      json.dump(dict(config=cfg.to_dict(), rows={n: v for n, v in rows.items()}, per_face=per_face), fh, indent=1)
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
