"""Fitting speed per preset, and reconstruction quality on LFW DevTest photos.

  python benchmarks/fitting.py --num=100

1. Speed on this machine: milliseconds per stage-1 and stage-2 step (compiled,
   one photo; ``paper`` runs 4 texture initialisations in parallel) and seconds
   per whole fit: measured end to end for ``fast``, the sum of measured step
   times for ``paper`` (its 1,300 steps take too long to repeat here).
2. Quality on --num DevTest photos (the first photos of pairsDevTest.txt's
   people, subject face nearest the centre; fitted with ``fast`` in batches):
   landmark reprojection error (pixels of the 224 canvas, and normalised by the
   outer-eye-corner distance), and identity cosine photo-vs-render judged by the
   independent dlib ResNet (never used in fitting): descriptors of the photo
   canvas and of the render, both at the photo's landmarks. Baseline ("mean
   face"): the fit's starting point (shape 0, expression 0, the initial texture
   latent, default light) seen through the same fitted camera.
"""

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from ganfit_jax import face, fitting, morphable
from ganfit_jax import objective as obj
from ganfit_jax.data import lfw
from ganfit_jax.nets import identity

FLAGS = flags.FLAGS
flags.DEFINE_integer("num", 100, "DevTest photos for the quality table (0 skips it).")
flags.DEFINE_integer("batch", 4, "Photos fitted together.")
flags.DEFINE_string("lfw_dir", None, "LFW folder.")
flags.DEFINE_string("faces_cache", "work/lfw_faces.jsonl", "Landmark cache (tools/detect_lfw.py).")
flags.DEFINE_string("texture_model", "gan", "Texture model.")


def load_config(preset):
  import importlib.util
  spec = importlib.util.spec_from_file_location("fitcfg", os.path.join(os.path.dirname(__file__), "..",
                                                                       "configs", "fit.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  cfg = mod.get_config(preset)
  cfg.texture_model = FLAGS.texture_model
  return cfg


def step_times(rec, prepared, reps=5):
  o, fr = rec.objective, rec.frozen
  images = np.stack([prepared.canvas]).astype(np.float32)
  lms = np.stack([prepared.landmarks]).astype(np.float32)
  targets = fitting.prepare_targets(o, fr, images, lms, jax.random.PRNGKey(0))
  n = rec.fit_cfg.num_inits
  base = o.init_params(rec.model, rec.texture.latent_dim)
  params = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (1, n) + x.shape), base)
  import optax
  st = jax.vmap(jax.vmap(optax.scale_by_adam().init))(params)
  keys = jax.random.split(jax.random.PRNGKey(1), n).reshape(1, n, -1)
  out = []
  for w, scale in ((obj.LossWeights.stage1(), 3.0), (obj.LossWeights(**dict(rec.fit_cfg.weights)).as_arrays(), 1.0)):
    p, s, _ = rec.step(params, st, fr, targets, w, jnp.float32(scale), keys)
    jax.block_until_ready(p)
    t0 = time.perf_counter()
    for _ in range(reps):
      p, s, _ = rec.step(p, s, fr, targets, w, jnp.float32(scale), keys)
    jax.block_until_ready(p)
    out.append((time.perf_counter() - t0) / reps)
  return out


def main(argv):
  del argv
  from ganfit_jax.reconstruct import Reconstructor
  root = lfw.root(FLAGS.lfw_dir)
  example = os.path.join(os.path.dirname(__file__), "..", "examples", "astronaut.jpg")
  print(f"\n## Fitting speed on {jax.devices()[0].device_kind} ({jax.default_backend()})\n")
  print("| preset | steps (stage 1 + 2) | inits | ms / stage-1 step | ms / stage-2 step | s / whole fit |")
  print("|---|---|---|---|---|---|")
  rec_fast = None
  for preset in ("fast", "paper"):
    rec = Reconstructor(load_config(preset), log=lambda s: None)
    prep = rec.prepare(example)
    t1, t2 = step_times(rec, prep)
    c = rec.cfg
    if preset == "fast":
      t0 = time.perf_counter()
      rec.fit([prep], [example])
      whole = f"{time.perf_counter() - t0:.1f} (measured)"
      rec_fast = rec
    else:
      whole = f"{c.stage1_steps * t1 + c.stage2_steps * t2:.0f} (steps x step time)"
    print(f"| {preset} | {c.stage1_steps} + {c.stage2_steps} | {c.num_inits} | {1000 * t1:.0f} | {1000 * t2:.0f} | "
          f"{whole} |", flush=True)
  if not FLAGS.num:
    return 0

  # quality on DevTest photos
  people = lfw.read_people(os.path.join(root, "peopleDevTest.txt"))
  rels = [f"{n}/{n}_0001.jpg" for n, _ in people][:FLAGS.num * 2]
  faces = lfw.detect_cache(root, rels, FLAGS.faces_cache)
  chosen = []
  for rel in rels:
    fl = faces[rel]
    if fl:
      chosen.append((rel, np.asarray(fl[lfw.subject_face(fl, fl[0]["shape"])]["landmarks"], np.float32)))
    if len(chosen) == FLAGS.num:
      break
  rec = rec_fast
  s = rec.cfg.canvas_size
  rows = {"fitted": {"px": [], "nme": [], "judge": []}, "mean face": {"px": [], "nme": [], "judge": []}}
  t0 = time.time()
  render = jax.jit(rec.objective.render_params)
  lm_of = jax.jit(lambda p: fitting.camera_lib.project(obj.camera_of(p), morphable.landmark_points(
      rec.model, p.shape, obj.expression_values(rec.model.expression_kind, p.expression)), s, s)[0])
  # the baseline's texture is the fit's own starting latent (init 0), i.e. where fitting begins
  k_lat = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(rec.cfg.seed), 1))[0]
  start_latent = jax.random.normal(k_lat, (rec.fit_cfg.num_inits, rec.texture.latent_dim))[0] * \
      rec.fit_cfg.init_latent_std
  if rec.fit_cfg.zero_first_init:
    start_latent = jnp.zeros_like(start_latent)
  for k in range(0, len(chosen), FLAGS.batch):
    chunk = chosen[k:k + FLAGS.batch]
    preps = []
    for rel, lm in chunk:
      img = face.load_image(os.path.join(root, "images_deepfunneled", rel))
      canvas, lm_c, m = face.crop_to_canvas(img, lm, s)
      preps.append(face.PreparedFace(canvas=canvas, landmarks=lm_c, to_canvas=m, photo_landmarks=lm,
                                     photo_shape=img.shape[:2], num_faces=1))
    pad = FLAGS.batch - len(preps)
    results = rec.fit(preps + [preps[0]] * pad, [c[0] for c in chunk] + [chunk[0][0]] * pad)[:len(preps)]
    for r in results:
      canvas, lm_c = r.prepared.canvas, r.prepared.landmarks
      iod = np.linalg.norm(lm_c[36] - lm_c[45])
      ref = identity.judge_embedding(canvas, lm_c)
      mean_p = rec.objective.init_params(rec.model, rec.texture.latent_dim, start_latent).replace(
          camera_delta=r.params.camera_delta)
      for name, p in (("fitted", r.params), ("mean face", mean_p)):
        out, _ = render(rec.frozen, p, jnp.asarray(canvas))
        err = np.linalg.norm(np.asarray(lm_of(p)) - lm_c, axis=1).mean()
        e = identity.judge_embedding(np.asarray(out.image), lm_c)
        rows[name]["px"].append(err)
        rows[name]["nme"].append(err / iod)
        rows[name]["judge"].append(float(e @ ref / (np.linalg.norm(e) * np.linalg.norm(ref))))
    f, m = rows["fitted"], rows["mean face"]
    print(f"  {min(k + FLAGS.batch, len(chosen))}/{len(chosen)} photos, {time.time() - t0:.0f} s; running means: "
          f"fitted {np.mean(f['px']):.2f}px / NME {np.mean(f['nme']):.4f} / judge {np.mean(f['judge']):.3f}, "
          f"mean face {np.mean(m['px']):.2f}px / {np.mean(m['nme']):.4f} / {np.mean(m['judge']):.3f}", flush=True)
  print(f"\n## Quality on {len(chosen)} LFW DevTest photos (preset fast, texture model "
        f"{rec.texture.kind})\n")
  print("| reconstruction | landmark error (px, 224 canvas) | NME (outer eye corners) | "
        "judge cosine photo vs render (dlib) |\n|---|---|---|---|")
  for name, r in rows.items():
    print(f"| {name} | {np.mean(r['px']):.2f} | {np.mean(r['nme']):.4f} | {np.mean(r['judge']):.3f} |")
  print(f"\n({time.time() - t0:.0f} s for the quality table)")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
