"""Shape error on synthetic photos with exact 3D truth: faces of ANOTHER model (BFM) or of the fitted model itself.

  python benchmarks/shape.py --num=20                                # BFM faces, the default (fast) preset
  python benchmarks/shape.py --source=ict --num=20                   # same-model faces (ICT within 2 sigma)
  python benchmarks/shape.py --num=20 --config.stages.full.steps=0   # the landmark stage alone

``--source=bfm`` needs the ``bfm`` and ``ddfa_v2`` assets (setup fetches them when 3DDFA_V2's configs are
available). ``evaluation.synthetic`` makes the photos: random identity (BFM: N(0, 1); ICT: N(0, 1) clipped
to +-2 sigma), expression (BFM: N(0, --expression_std); ICT: sparse random activations up to
--expression_high), a texture sample of the shipped GAN (carried onto the BFM surface, or in ICT's own
layout), random pose (ICT: yaw uniform within +-45 degrees), light and focal length, blurred DevTrain
backgrounds. Each photo goes through the main job's front end (detection, 68 landmarks, canvas) and fit;
the fitted NEUTRAL mesh is measured against the generating neutral mesh by each protocol of
``evaluation.shape`` (``now``: NoW's alignment, scaled landmarks then rigid ICP). Rows: the fit, the ICT mean
face (the fit's start), 3DDFA_V2 on the same photo and landmarks, and with ``--bounds`` what the model allows
at all: :func:`ganfit_jax.evaluation.shape.model_bound` (the ICT model fitted to the TRUE surface by
point-to-plane Gauss-Newton, unconstrained and with --bound_ridge) and, for BFM faces, the BFM mean face.
Also printed: shape coefficients (rms and share beyond 3 sigma), expression activations (max, and for ICT
faces the mean absolute error against the truth) and the landmark NME against the true projected points.
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
flags.DEFINE_enum("source", "bfm", ["bfm", "ict"], "Model that generates the faces: the BFM (another model) "
                  "or the fitted model itself (ICT: exact truth for shape and expression).")
flags.DEFINE_float("expression_high", 0.7, "--source=ict: expression activations ~ U(0, this), each on with "
                   "probability 0.08 (0: neutral faces).")
flags.DEFINE_float("yaw", None, "Yaw of the faces, degrees (default: std 15 for BFM, uniform +-45 for ICT).")
flags.DEFINE_list("bound_ridge", ["0", "0.02"], "Ridges of the bound rows (mm^2 per coefficient^2).")
flags.DEFINE_integer("num", 20, "Synthetic faces.")
flags.DEFINE_integer("seed", 0, "Seed of the synthetic faces (identities, textures, poses).")
flags.DEFINE_float("expression_std", 0.0, "Expression coefficients of the generated faces ~ N(0, std).")
flags.DEFINE_integer("batch", 4, "Photos fitted together.")
flags.DEFINE_integer("views", 1, "Photos per synthetic person (each its own pose, expression and light); > 1: "
                     "each person's photos are fitted together sharing one shape (--batch is then the views), "
                     "and the shared shape is measured once per person.", lower_bound=1)
flags.DEFINE_bool("shared", True, "--views > 1: fit each person's photos together with one shared shape (False: "
                  "each photo alone, the same faces: the single-view baseline).")
flags.DEFINE_bool("oracle_landmarks", False, "--source=ict: fit the TRUE projected model points (68 and dense) "
                  "instead of the detectors' (a diagnostic: what the fit makes of perfect landmarks).")
flags.DEFINE_float("scan_crop_mm", 95.0, "The truth is measured as a scan: its skin within this radius of its nose "
                   "tip (NoW's scans are face crops); 0: the whole mesh (for ICT the full head and neck, which no "
                   "photo shows: the figures before 2026-12-07's second session).")
flags.DEFINE_list("protocols", ["now", "micc"], "Protocols to report (now, now_similarity, micc, regions).")
flags.DEFINE_string("json_out", None, "Write every per-face number here (JSON).")
flags.DEFINE_bool("peer", True, "Include the 3DDFA_V2 row.")
flags.DEFINE_bool("bounds", True, "Include the two reference rows that need no photo: the best ICT shape for "
                  "each 3D face (fitted to the ground-truth surface itself) and the BFM mean face.")


def synthetic_faces(num, seed, scene):
  import jax
  from ganfit_jax import morphable
  from ganfit_jax.data import lfw
  from ganfit_jax.evaluation import synthetic
  lat = jax.random.normal(jax.random.PRNGKey(1000 + seed), (min(num, 16), scene.texture.latent_dim))
  textures = np.asarray(jax.jit(jax.vmap(scene.texture_image))(lat))
  root = lfw.root()
  people = [n for n, _ in lfw.read_people(os.path.join(root, "peopleDevTrain.txt"))]
  backgrounds = [lfw.image_path(root, p, 1) for p in people[:300]]
  if FLAGS.source == "ict":
    src = scene.model
    faces = synthetic.make_faces(src, np.asarray(src.uv), textures, num, seed=seed, background_photos=backgrounds,
                                 views=FLAGS.views,
                                 uv_triangles=np.asarray(src.uv_triangles), sparse_expression=FLAGS.expression_high,
                                 shape_sigma=2.0, yaw_deg=45.0 if FLAGS.yaw is None else FLAGS.yaw, yaw_uniform=True)
    return src, faces
  bfm = morphable.load("bfm")
  uv = synthetic.transfer_uv(bfm, scene.model)
  return bfm, synthetic.make_faces(bfm, uv, textures, num, seed=seed, expression_std=FLAGS.expression_std,
                                   background_photos=backgrounds, yaw_deg=15.0 if FLAGS.yaw is None else FLAGS.yaw,
                                   views=FLAGS.views)


def oracle(prepared, f, model, size, dense):
  """``prepared`` with the true projections of the model's 68 and dense points (photo -> canvas as detected)."""
  import dataclasses
  from ganfit_jax import camera as camera_lib
  from ganfit_jax import face as face_lib
  h = f.photo.shape[0]
  lm = np.asarray(f.landmarks_photo, np.float32)
  p = face_lib.from_landmarks(f.photo, lm, size, detected=True, detail_scale=0, dense=False)
  p = dataclasses.replace(p, detail=prepared.detail)
  if dense and model.dense_corners.shape[0]:
    pts = np.einsum("lk,lkd->ld", np.asarray(model.dense_bary), f.vertices[np.asarray(model.dense_corners)])
    xy = np.asarray(camera_lib.project(f.camera, pts, h, h)[0], np.float32)
    p = dataclasses.replace(p, photo_dense=xy, dense=face_lib.apply_affine(p.to_canvas, xy).astype(np.float32))
  return p


def arkit_errors(model, fitted, truth, photo_dense) -> dict:
  """Mean absolute error over the 51 ARKit names MediaPipe's blendshape network predicts (ARKit weights of the
  true and fitted expressions, ``outputs.arkit``): of the fit, and of MediaPipe's scores of the photo
  (``face.blendshapes``: an independent reading of the same photo). {} without dense points or ARKit names."""
  from ganfit_jax.face import blendshapes
  tw = blendshapes.model_weights(model, truth)
  if photo_dense is None or tw is None:
    return {}
  mp = np.array(list(blendshapes.scores(photo_dense).values()))
  return dict(arkit_mae_fit=float(np.mean(np.abs(blendshapes.model_weights(model, fitted) - tw))),
              arkit_mae_zero=float(np.mean(np.abs(tw))), arkit_mae_mediapipe=float(np.mean(np.abs(mp - tw))))


def truth_scan(face, src):
  """The synthetic face's neutral mesh as a scan: like NoW's scans (and the real scans of the geometry issue), a
  crop to the skin within --scan_crop_mm of its nose tip (iBUG 30); the whole mesh (a full head for ICT: the
  back of the skull and the neck, which no photo shows) with --scan_crop_mm=0."""
  from ganfit_jax.evaluation import shape
  from ganfit_jax.types import MATERIAL_SKIN
  scan = shape.Mesh.of(face.neutral, face.triangles)
  if FLAGS.scan_crop_mm <= 0:
    return scan
  keep = np.linalg.norm(scan.vertices - np.asarray(face.landmarks_3d)[30], axis=1) <= FLAGS.scan_crop_mm
  if src.material is not None:
    keep &= np.asarray(src.material) == MATERIAL_SKIN
  return scan.cropped(keep)


def measure(pred_vertices, pred_triangles, pred_lm, face, protocols, scan):
  from ganfit_jax.evaluation import shape
  pred = shape.Mesh.of(pred_vertices, pred_triangles)
  out = {}
  for p in protocols:
    r = shape.evaluate(pred, pred_lm, scan, face.landmarks_3d, p)
    out[p] = r["scan_to_mesh_mm"]
    if p == "micc":
      out["micc one-way"] = r["scan_to_pred_mm"]
  return out


def main(argv):
  del argv
  from ganfit_jax import runtime
  runtime.configure()
  import jax
  from ganfit_jax import face as face_lib
  from ganfit_jax import morphable, objective
  from ganfit_jax.evaluation import landmarks as lm_eval
  from ganfit_jax.evaluation import shape
  from ganfit_jax.reconstruct import Reconstructor
  cfg = FLAGS.config
  rec = Reconstructor(cfg)
  t0 = time.time()
  src, faces = synthetic_faces(FLAGS.num, FLAGS.seed, rec.scene)
  print(f"{len(faces)} synthetic {FLAGS.source.upper()} faces in {time.time() - t0:.0f} s", flush=True)
  model = rec.model
  tri = np.asarray(model.triangles)
  mean = np.asarray(model.mean)
  lm_of = lambda v: np.asarray(morphable.landmarks(model, v))  # noqa: E731
  peer = None
  if FLAGS.peer:
    from ganfit_jax.evaluation import peers
    peer = peers.ddfa()
  names = ["ganfit_jax fit", "ICT mean face"] + (["3DDFA_V2"] if peer else [])
  ridges = [float(r) for r in FLAGS.bound_ridge]
  if FLAGS.bounds:
    names += [f"ICT fitted to the true surface (bound, ridge {r:g})" for r in ridges]
    if FLAGS.source == "bfm":
      names.append("BFM mean face (the generating model's)")
  rows = {n: [] for n in names}
  per_face, prepared = [], []
  for i, f in enumerate(faces):
    try:
      prepared.append((i, face_lib.prepare_image(f.photo, cfg.canvas_size, source=f"synthetic {i}",
                                                 dense=rec.use_dense)))
    except face_lib.FaceInputError as e:
      print(f"  face {i}: {e}", flush=True)
  if FLAGS.oracle_landmarks:
    if FLAGS.source != "ict":
      raise app.UsageError("--oracle_landmarks needs --source=ict (the fitted model's own faces)")
    prepared = [(i, oracle(p, faces[i], model, cfg.canvas_size, rec.use_dense)) for i, p in prepared]
  shared = FLAGS.views > 1 and FLAGS.shared
  if shared:  # each person's photos together, one shared shape
    chunks = [[ip for ip in prepared if ip[0] // FLAGS.views == person]
              for person in sorted({i // FLAGS.views for i, _ in prepared})]
  else:
    chunks = [prepared[k:k + FLAGS.batch] for k in range(0, len(prepared), FLAGS.batch)]
  for chunk in chunks:
    preps = [p for _, p in chunk]
    results = rec.fit(preps, [f"synthetic {i}" for i, _ in chunk], shared_identity=shared,
                      batch=None if shared else FLAGS.batch)
    for (i, p), r in zip(chunk, results):
      f = faces[i]
      neutral = np.asarray(jax.device_get(morphable.vertices(model, r.face.shape)))
      row = dict(face=i)
      scan = truth_scan(f, src)
      row["ganfit_jax fit"] = measure(neutral, tri, lm_of(neutral), f, FLAGS.protocols, scan)
      row["ICT mean face"] = measure(mean, tri, lm_of(mean), f, FLAGS.protocols, scan)
      if peer:
        pr = peer(f.photo, p.photo_landmarks)
        row["3DDFA_V2"] = measure(pr.neutral, pr.triangles, pr.neutral[np.asarray(peer.model.landmarks)], f,
                                  FLAGS.protocols, scan)
      if FLAGS.bounds:
        for rg in ridges:
          best, _, _ = shape.model_bound(model, scan, f.landmarks_3d, ridge=rg, expression=False)
          row[f"ICT fitted to the true surface (bound, ridge {rg:g})"] = measure(best, tri, lm_of(best), f,
                                                                                 FLAGS.protocols, scan)
        if FLAGS.source == "bfm":
          row["BFM mean face (the generating model's)"] = measure(
              np.asarray(src.mean), np.asarray(src.triangles), np.asarray(morphable.landmarks(src, src.mean)), f,
              FLAGS.protocols, scan)
      for name in rows:
        rows[name].append(row[name])
      e, sh = np.asarray(r.face.expression), np.asarray(r.face.shape)
      truth_canvas = face_lib.apply_affine(p.to_canvas, f.landmarks_photo)
      fit_canvas = np.asarray(objective.project_landmarks(rec.scene, r.face))
      row.update(max_expression=float(e.max()), shape_rms=float(np.sqrt(np.mean(sh ** 2))),
                 shape_beyond_3sigma=float((np.abs(sh) > 3).mean()), landmark_rmse_px=r.final["landmark_rmse_px"],
                 true_max_expression=float(np.max(f.expression)) if f.expression.size else 0.0,
                 landmark_nme_truth=lm_eval.nme(fit_canvas, truth_canvas, "outer_eye"),
                 detector_nme_truth=lm_eval.nme(p.photo_landmarks, f.landmarks_photo, "outer_eye"))
      if FLAGS.source == "ict":
        row["expression_mae"] = float(np.mean(np.abs(e - f.expression)))
        active = f.expression > 0.1
        row["expression_mae_active"] = float(np.mean(np.abs(e - f.expression)[active])) if active.any() else 0.0
        row.update(arkit_errors(model, e, f.expression, p.photo_dense))
      per_face.append(row)
      print(f"  face {i}: " + "; ".join(f"{n} " + ", ".join(f"{q} {v:.2f}" for q, v in row[n].items())
                                         for n in rows) + f"; shape rms {row['shape_rms']:.2f}; max expression "
            f"{e.max():.2f}" + (f"; expression error {row['expression_mae']:.3f}" if "expression_mae" in row else ""),
            flush=True)
  cols = list(rows["ganfit_jax fit"][0]) if per_face else []
  print(f"\n## Shape error on {len(per_face)} synthetic {FLAGS.source.upper()} faces (of {len(faces)} rendered), "
        f"fitted with {model.name}, preset {cfg.preset}, mm (lower is better)\n")
  print("| reconstruction | " + " | ".join(f"{c} mean" for c in cols) + " |")
  print("|---|" + "---|" * len(cols))
  for name, vals in rows.items():
    print(f"| {name} | " + " | ".join(f"{np.mean([v[c] for v in vals]):.3f}" for c in cols) + " |")
  if per_face:
    base = {c: np.mean([v[c] for v in rows["ICT mean face"]]) for c in cols}
    fit = {c: np.mean([v[c] for v in rows["ganfit_jax fit"]]) for c in cols}
    print("\nfit / mean face: " + ", ".join(f"{c} {fit[c] / base[c]:.3f}" for c in cols))
    stat = lambda k: np.mean([r[k] for r in per_face])  # noqa: E731
    print(f"shape coefficients: rms {stat('shape_rms'):.3f} sigma, beyond 3 sigma "
          f"{100 * stat('shape_beyond_3sigma'):.2f}%; max expression activation: mean {stat('max_expression'):.3f}"
          f" (truth {stat('true_max_expression'):.3f})")
    if "expression_mae" in per_face[0]:
      print(f"expression activation error (mean absolute): all components {stat('expression_mae'):.4f}, the "
            f"components active in the truth (> 0.1) {stat('expression_mae_active'):.4f}")
    mp = [r for r in per_face if "arkit_mae_mediapipe" in r]
    if mp:
      print(f"ARKit weights (51 names) against the truth's, mean absolute: fit "
            f"{np.mean([r['arkit_mae_fit'] for r in mp]):.4f}, MediaPipe's blendshape scores of the photo "
            f"{np.mean([r['arkit_mae_mediapipe'] for r in mp]):.4f}, all zero "
            f"{np.mean([r['arkit_mae_zero'] for r in mp]):.4f} ({len(mp)} faces with dense points)")
    print(f"landmark NME against the true projected points: fit {100 * stat('landmark_nme_truth'):.2f}%, "
          f"detector {100 * stat('detector_nme_truth'):.2f}%")
  print(f"({time.time() - t0:.0f} s)")
  if FLAGS.json_out:
    with open(FLAGS.json_out, "w") as fh:
      json.dump(dict(config=cfg.to_dict(), rows={n: v for n, v in rows.items()}, per_face=per_face), fh, indent=1)
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
