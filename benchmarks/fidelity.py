"""Does the reconstruction look like the person? Multi-photo consistency, identity of the render alone,
render-vs-photo verification, skin colour, and coefficient sanity on LFW.

  python benchmarks/fidelity.py --section=identity --pairs=100            # DevTest: the final report
  python benchmarks/fidelity.py --section=consistency --people=10        # DevTrain: may be tuned on
  python benchmarks/fidelity.py --section=identity --split=DevTrain --pairs=30  # the same on DevTrain (tuning)
  python benchmarks/fidelity.py --section=identity --config.texture_detail=false --config.jaw_weight=1

Shape against 3D ground truth is ``benchmarks/shape.py`` (synthetic BFM faces).

consistency (DevTrain people with >= 4 photos): photos 1-4 of each of --people people, each fitted
alone; the fitted NEUTRAL meshes (face region: skin vertices within 80 mm of the mean face's nose tip,
in front of the ears) are similarity-aligned pairwise (Umeyama on the shared topology) and their mean
vertex distance taken (mm). Reported: the mean over same-person pairs, over different-person pairs, and
their ratio (lower = the fit recovers identity rather than noise).

identity (DevTest, never tuned on): --pairs same-person pairs of ``pairsDevTest.txt`` with a detected
face in both photos (each person's first pair before anyone's second: as many people as possible); photo A of
each is fitted. The independent judge (dlib's ResNet, never the
fitting network) compares
  - photo A with its own render ALONE on grey (``render.png``'s content): for the fit with photo detail,
    for the fit's pure texture-model texture, and for the fit's starting point (mean face, start latent,
    fitted camera);
  - render A with photo B: same-person pairs (B = the pair's other photo) and as many different-person
    pairs (B = the next pair's photo B, another person): 10-fold verification accuracy, accuracy at dlib's
    own threshold (distance 0.6), ROC AUC; photo A vs photo B gives the judge's own ceiling.
Also: skin colour error (CIE76 delta E between the mean skin colour of photo A and of the render over the
landmark skin mask, ``evaluation.texture``), the fitted expression's largest activation, the shape
coefficients' rms and share beyond 3 sigma, and the fitted expression's ARKit weights against MediaPipe's
blendshape scores of photo A (``face.blendshapes``: an independent model reading the same photo).
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
flags.DEFINE_enum("section", "identity", ["identity", "consistency"], "What to measure.")
flags.DEFINE_integer("pairs", 100, "identity: same-person DevTest pairs (as many different-person pairs).")
flags.DEFINE_enum("split", "DevTest", ["DevTest", "DevTrain"], "identity: the LFW pairs file (pairsSPLIT.txt); "
                  "DevTest for reports (never tuned on), DevTrain for tuning.")
flags.DEFINE_integer("people", 10, "consistency: DevTrain people (4 photos each).")
flags.DEFINE_integer("batch", 4, "Photos fitted together.")
flags.DEFINE_string("faces_cache", "work/lfw_faces.jsonl", "Landmark cache (tools/detect_lfw.py).")
flags.DEFINE_string("json_out", None, "Write every per-photo number here (JSON).")
flags.DEFINE_string("pictures", None, "Write photo | render alone (detail) | render alone (texture model) "
                    "strips of the first 16 photos to this PNG.")

DLIB_THRESHOLD = 0.6  # dlib's descriptor distance for "same person"


def _subject(faces, rel):
  from ganfit_jax.data import lfw
  fl = faces.get(rel) or []
  if not fl:
    return None
  return np.asarray(fl[lfw.subject_face(fl, fl[0]["shape"])]["landmarks"], np.float32)


def _fit_all(rec, items, root):
  """items: [(rel, landmarks)] -> [Result], fitted in fixed-size batches (the last one padded)."""
  from ganfit_jax import face
  out, t0 = [], time.time()
  for k in range(0, len(items), FLAGS.batch):
    chunk = items[k:k + FLAGS.batch]
    preps = [face.from_landmarks(face.load_image(os.path.join(root, "images_deepfunneled", rel)), lm,
                                 rec.cfg.canvas_size) for rel, lm in chunk]
    out += rec.fit(preps, [rel for rel, _ in chunk], batch=FLAGS.batch)
    print(f"  fitted {len(out)}/{len(items)} photos, {time.time() - t0:.0f} s", flush=True)
  return out


def face_region(model) -> np.ndarray:
  """Vertex indices of the face region used for consistency (skin, near the nose, in front of the ears)."""
  mean = np.asarray(model.mean)
  lm = mean[np.asarray(model.landmarks)]
  near = np.linalg.norm(mean - lm[30], axis=1) < 80.0
  front = mean[:, 2] > min(lm[0, 2], lm[16, 2])
  skin = np.asarray(model.material) == 0 if model.material is not None else np.ones(len(mean), bool)
  return np.nonzero(near & front & skin)[0]


def mesh_distance(a: np.ndarray, b: np.ndarray) -> float:
  """Mean vertex distance (mm) after similarity-aligning ``a`` onto ``b`` (same topology)."""
  from ganfit_jax.evaluation import shape
  s, r, t = shape.umeyama(a, b, scale=True)
  return float(np.linalg.norm(s * a @ r.T + t - b, axis=1).mean())


def consistency(rec, root, faces_cache):
  import jax
  from ganfit_jax import morphable
  from ganfit_jax.data import lfw
  people = [(n, c) for n, c in lfw.read_people(os.path.join(root, "peopleDevTrain.txt")) if c >= 4]
  rels = [f"{n}/{n}_{i:04d}.jpg" for n, _ in people[:FLAGS.people * 2] for i in range(1, 5)]
  faces = lfw.detect_cache(root, rels, faces_cache)
  items, who = [], []
  for n, _ in people:
    sel = [(r, _subject(faces, r)) for r in (f"{n}/{n}_{i:04d}.jpg" for i in range(1, 5))]
    if all(lm is not None for _, lm in sel):
      items += sel
      who += [n] * 4
    if len(set(who)) == FLAGS.people:
      break
  results = _fit_all(rec, items, root)
  region = face_region(rec.model)
  meshes = [np.asarray(jax.device_get(morphable.vertices(rec.model, r.face.shape)))[region] for r in results]
  same, diff = [], []
  for i in range(len(meshes)):
    for j in range(i + 1, len(meshes)):
      (same if who[i] == who[j] else diff).append(mesh_distance(meshes[i], meshes[j]))
  mean = np.asarray(rec.model.mean)[region]
  to_mean = [mesh_distance(m, mean) for m in meshes]
  print(f"\n## Multi-photo consistency: {len(set(who))} DevTrain people x 4 photos, each fitted alone "
        f"(preset {rec.cfg.preset}), neutral face region ({len(region)} vertices), mm\n")
  print("| same-person pairs | different-person pairs | ratio same/different | distance to the mean face |")
  print("|---|---|---|---|")
  print(f"| {np.mean(same):.3f} ({len(same)}) | {np.mean(diff):.3f} ({len(diff)}) | "
        f"{np.mean(same) / np.mean(diff):.3f} "
        f"| {np.mean(to_mean):.3f} |")
  return dict(same=same, different=diff, ratio=float(np.mean(same) / np.mean(diff)), to_mean=to_mean,
              people=sorted(set(who)))


def _expression_agreement(model, expression, photo_dense) -> dict:
  """The fit's ARKit weights (``arkit52.json``'s) against MediaPipe's blendshape scores of the same photo: mean
  absolute difference and correlation over the 51 names both have; {} without dense points or ARKit names."""
  from ganfit_jax.face import blendshapes
  a = blendshapes.model_weights(model, expression)
  if photo_dense is None or a is None:
    return {}
  theirs = blendshapes.scores(photo_dense)
  b = np.array(list(theirs.values()))
  corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
  smile = [blendshapes.NAMES.index(n) - 1 for n in ("mouthSmileLeft", "mouthSmileRight")]
  return dict(arkit_mae=float(np.abs(a - b).mean()), arkit_corr=corr, smile_fit=float(a[smile].mean()),
              smile_mediapipe=float(b[smile].mean()))


def identity(rec, root, faces_cache):
  import jax
  import jax.numpy as jnp
  from ganfit_jax import face, fitting
  from ganfit_jax import params as params_lib
  from ganfit_jax.data import lfw
  from ganfit_jax.evaluation import identity as id_eval
  from ganfit_jax.evaluation import landmarks as lm_eval
  from ganfit_jax.evaluation import texture as tex_eval
  from ganfit_jax.objective import project_landmarks
  from ganfit_jax.outputs.render import output_texture, render_outputs
  id_eval.check_judge("dlib", rec.scene.identity.name)
  pairs = [p for p in lfw.read_pairs(os.path.join(root, f"pairs{FLAGS.split}.txt")) if p[4]]
  # as many different people as possible: each person's first pair, then their second, ...
  rank, seen = [], {}
  for p in pairs:
    rank.append(seen.get(p[0], 0))
    seen[p[0]] = rank[-1] + 1
  pairs = [p for _, _, p in sorted(zip(rank, range(len(pairs)), pairs))]
  rel = lambda n, i: f"{n}/{n}_{i:04d}.jpg"  # noqa: E731
  faces = lfw.detect_cache(root, [rel(n, i) for n, i, _, _, _ in pairs[:FLAGS.pairs * 2]] +
                           [rel(n, j) for _, _, n, j, _ in pairs[:FLAGS.pairs * 2]], faces_cache)
  chosen = []
  for a_name, ai, b_name, bi, _ in pairs:
    la, lb = _subject(faces, rel(a_name, ai)), _subject(faces, rel(b_name, bi))
    if la is not None and lb is not None:
      chosen.append((a_name, rel(a_name, ai), la, rel(b_name, bi), lb))
    if len(chosen) == FLAGS.pairs:
      break
  results = _fit_all(rec, [(a, la) for _, a, la, _, _ in chosen], root)
  start_latent = fitting.initial_variables(rec.scene, 1, rec.schedule, jax.random.split(
      jax.random.key(rec.cfg.seed))[0]).texture[0, 0]
  sc = rec.out_scene
  judge = lambda img, lm: id_eval.judge_embedding(img, lm)  # noqa: E731
  cos = lambda a, b: float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))  # noqa: E731
  rows = []
  strips = []
  t0 = time.time()
  for k, (r, (name, a, la, b, lb)) in enumerate(zip(results, chosen)):
    canvas, lm_c = r.prepared.canvas, r.prepared.landmarks
    start = params_lib.to_face(params_lib.init(rec.model, start_latent), rec.model.expression_kind).replace(
        camera=r.face.camera)
    textures = dict(detail=output_texture(sc, r.face, r.prepared.detail, rec.detail_layout) if rec.detail_layout
                    is not None else None, model=output_texture(sc, r.face))
    e_photo = judge(canvas, lm_c)
    row = dict(photo=a, pair_photo=b, person=name, max_expression=float(np.asarray(r.face.expression).max()),
               shape_beyond_3sigma=float((np.abs(np.asarray(r.face.shape)) > 3).mean()),
               landmark_rmse_px=r.final["landmark_rmse_px"],
               landmark_nme=lm_eval.nme(np.asarray(project_landmarks(rec.scene, r.face)), lm_c))
    row["start_landmark_nme"] = lm_eval.nme(np.asarray(project_landmarks(rec.scene, start)), lm_c)
    row["shape_rms"] = float(np.sqrt(np.mean(np.square(np.asarray(r.face.shape)))))
    row.update(_expression_agreement(rec.model, r.face.expression, r.prepared.photo_dense))
    pics = [canvas]
    for kind, f, tex in (("detail", r.face, textures["detail"]), ("model", r.face, textures["model"]),
                         ("start", start, output_texture(sc, start))):
      if tex is None:
        continue
      o = jax.device_get(render_outputs(sc, f, jnp.asarray(canvas), jnp.asarray(r.embedding),
                                        jnp.asarray(r.align_matrix), tex, render_size=rec.cfg.render_size))
      e_render = judge(o["alone_small"], o["landmarks"])
      row[f"{kind}_cosine_photo_vs_render"] = cos(e_photo, e_render)
      row[f"{kind}_embedding"] = e_render
      row[f"{kind}_delta_e"] = tex_eval.skin_colour_error(canvas, o["alone_small"], lm_c, o["coverage"] > 0.99)
      if kind != "start":
        pics.append(o["alone_small"])
    strips.append(np.concatenate(pics, 1))
    img_b = face.load_image(os.path.join(root, "images_deepfunneled", b))
    row["photo_b_embedding"] = judge(img_b, lb)
    row["photo_a_embedding"] = e_photo
    rows.append(row)
    if (k + 1) % 10 == 0:
      print(f"  judged {k + 1}/{len(results)}, {time.time() - t0:.0f} s", flush=True)
  n = len(rows)
  # different-person pairs: render of pair i vs photo B of the next pair of another person
  other = []
  for i in range(n):
    j = next(((i + d) % n for d in range(1, n) if rows[(i + d) % n]["person"] != rows[i]["person"]), None)
    other.append(j)
  kinds = [k for k in ("detail", "model", "start") if f"{k}_embedding" in rows[0]]
  dist = lambda x, y: float(np.linalg.norm(x - y))  # noqa: E731
  print(f"\n## Identity of the render, judged by dlib, on {n} LFW {FLAGS.split} photos (preset {rec.cfg.preset}, "
        f"texture model {rec.scene.texture.kind})\n")
  print("| reconstruction | cosine photo vs render alone | verification render A vs photo B, 10-fold | at dlib's "
        "threshold 0.6 | ROC AUC | skin delta E (CIE76) |")
  print("|---|---|---|---|---|---|")
  table = {}
  for kind in kinds + ["photo"]:
    src = "photo_a_embedding" if kind == "photo" else f"{kind}_embedding"
    scores = [-dist(r[src], r["photo_b_embedding"]) for r in rows]
    scores += [-dist(rows[i][src], rows[j]["photo_b_embedding"]) for i, j in enumerate(other) if j is not None]
    same = [True] * n + [False] * sum(j is not None for j in other)
    v = id_eval.verification(scores, same, threshold=-DLIB_THRESHOLD)
    label = {"detail": "fit, photo detail", "model": "fit, texture model alone", "start": "start (mean face)",
             "photo": "photo A itself (the judge's ceiling)"}[kind]
    c = "" if kind == "photo" else f"{np.mean([r[f'{kind}_cosine_photo_vs_render'] for r in rows]):.3f}"
    de = "" if kind == "photo" else f"{np.nanmean([r[f'{kind}_delta_e'] for r in rows]):.2f}"
    print(f"| {label} | {c} | {100 * v['accuracy_10fold']:.1f}% | {100 * v['accuracy_fixed']:.1f}% | "
          f"{v['roc_auc']:.3f} | {de} |")
    table[kind] = dict(v, cosine=c, delta_e=de)
  print(f"\n{len(same)} pairs ({n} same-person). Fitted coefficients: largest expression activation mean "
        f"{np.mean([r['max_expression'] for r in rows]):.3f} (max {np.max([r['max_expression'] for r in rows]):.3f}); "
        f"shape coefficients beyond 3 sigma {100 * np.mean([r['shape_beyond_3sigma'] for r in rows]):.2f}%; "
        f"landmark RMSE {np.mean([r['landmark_rmse_px'] for r in rows]):.2f} px, NME (outer eye) "
        f"{np.mean([r['landmark_nme'] for r in rows]):.4f} "
        f"(start {np.mean([r['start_landmark_nme'] for r in rows]):.4f}); shape coefficients rms mean "
        f"{np.mean([r['shape_rms'] for r in rows]):.3f} sigma (median "
        f"{np.median([r['shape_rms'] for r in rows]):.3f})")
  agree = [r for r in rows if "arkit_mae" in r]
  if agree:
    print(f"Expression against MediaPipe's blendshape scores (face.blendshapes; {len(agree)} photos with dense "
          f"points, 51 ARKit names): mean absolute difference {np.mean([r['arkit_mae'] for r in agree]):.3f}, "
          f"per-photo correlation {np.nanmean([r['arkit_corr'] for r in agree]):.3f}; smile (mean of left and "
          f"right) fit {np.mean([r['smile_fit'] for r in agree]):.3f} vs MediaPipe "
          f"{np.mean([r['smile_mediapipe'] for r in agree]):.3f} (correlation across photos "
          f"{np.corrcoef([r['smile_fit'] for r in agree], [r['smile_mediapipe'] for r in agree])[0, 1]:.3f})")
  if FLAGS.pictures:
    from ganfit_jax.outputs import images
    images.write_png(FLAGS.pictures, np.concatenate([np.concatenate(strips[i:i + 2], 1)
                                                     for i in range(0, min(16, len(strips)) // 2 * 2, 2)], 0))
    print(f"pictures: {FLAGS.pictures}")
  clean = [{k: v for k, v in r.items() if not k.endswith("_embedding")} for r in rows]
  return dict(table=table, per_photo=clean)


def main(argv):
  del argv
  from ganfit_jax import runtime
  runtime.configure()
  from ganfit_jax.data import lfw
  from ganfit_jax.reconstruct import Reconstructor
  t0 = time.time()
  rec = Reconstructor(FLAGS.config)
  root = lfw.root()
  out = (identity if FLAGS.section == "identity" else consistency)(rec, root, FLAGS.faces_cache)
  print(f"({time.time() - t0:.0f} s)")
  if FLAGS.json_out:
    with open(FLAGS.json_out, "w") as fh:
      json.dump(dict(config=FLAGS.config.to_dict(), section=FLAGS.section, **out), fh, indent=1, default=float)
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
