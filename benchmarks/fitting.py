"""The main job's speed (cold and warm), and fitting quality on LFW DevTest photos.

  python benchmarks/fitting.py                    # speed table + quality on 100 DevTest photos
  python benchmarks/fitting.py --num=0            # speed only
  python benchmarks/fitting.py --runs=0 --num=20  # quality only

1. Speed: ``tools/fit.py --image=examples/astronaut.jpg`` as a new user runs it, twice, in fresh
   processes, with an empty compilation cache for the first run (``JAX_COMPILATION_CACHE_DIR`` set to a
   new folder): wall time of each process, and from its ``report.json`` the fit and write seconds and
   the seconds JAX spent tracing, lowering and compiling.
2. Quality on --num DevTest photos (the first photo of each of the first ``peopleDevTest.txt`` people
   with a detected face; subject = face nearest the centre), fitted in batches: landmark error (pixels
   of the 224 canvas; NME by the outer eye corners) and the independent dlib judge's cosine between the
   photo and (a) the render composited over the photo, (b) the face rendered alone on grey
   (``evaluation.identity``); "start" = the fit's starting point seen through the fitted camera.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("runs", 2, "Main-job runs for the speed table (the first with an empty cache; 0 skips).")
flags.DEFINE_string("preset", "fast", "Preset for both tables.")
flags.DEFINE_integer("num", 100, "DevTest photos for the quality table (0 skips it).")
flags.DEFINE_integer("batch", 4, "Photos fitted together in the quality table.")
flags.DEFINE_string("lfw_dir", None, "LFW folder.")
flags.DEFINE_string("faces_cache", "work/lfw_faces.jsonl", "Landmark cache (tools/detect_lfw.py).")
flags.DEFINE_list("variants", ["config.seed=0"], "Speed table: the config overrides of each variant, "
                  "comma-separated, space-separated within one (e.g. 'config.dense=False,config.dense=True'); the "
                  "variants' runs interleave (run i of every variant before run i + 1), each variant with its own "
                  "compilation-cache folder. The default, config.seed=0, is the preset unchanged.")

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def speed():
  print(f"\n## Main job speed: tools/fit.py --image=examples/astronaut.jpg, preset {FLAGS.preset}\n")
  print("| variant | run | compilation cache | wall s | fit s | write s | trace s | lower s | XLA compile s |")
  print("|---|---|---|---|---|---|---|---|---|")
  with tempfile.TemporaryDirectory() as tmp:
    for i in range(FLAGS.runs):
      for k, variant in enumerate(FLAGS.variants):
        env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=os.path.join(tmp, f"xla{k}"))
        out = os.path.join(tmp, f"out{k}_{i}")
        extra = [f"--{o.lstrip('-')}" for o in variant.split()]
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fit.py"), "--image",
                            os.path.join(ROOT, "examples", "astronaut.jpg"), f"--out={out}",
                            f"--config={os.path.join(ROOT, 'configs', 'fit.py')}:{FLAGS.preset}"] + extra,
                           capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
          print(r.stderr[-3000:])
          raise SystemExit(f"tools/fit.py failed (exit {r.returncode})")
        with open(os.path.join(out, "report.json")) as f:
          t = json.load(f)["timings_s"]
        print(f"| {variant} | {i + 1} | {'empty' if i == 0 else 'warm'} | {wall:.1f} | {t['fit']:.1f} | "
              f"{t['write']:.1f} | {t['trace_so_far']:.1f} | {t['lower_so_far']:.1f} | {t['compile_so_far']:.1f} |",
              flush=True)


def quality():
  import jax
  import jax.numpy as jnp
  from ganfit_jax import face, fitting
  from ganfit_jax import params as params_lib
  from ganfit_jax.data import lfw
  from ganfit_jax.evaluation import identity as id_eval
  from ganfit_jax.evaluation import landmarks as lm_eval
  from ganfit_jax.outputs.render import output_texture, render_outputs
  from ganfit_jax.reconstruct import Reconstructor
  from ganfit_jax.configs.fit import get_config
  rec = Reconstructor(get_config(FLAGS.preset))
  root = lfw.root(FLAGS.lfw_dir)
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
  s = rec.cfg.canvas_size
  names = ("fitted", "start")
  rows = {n: {"px": [], "nme": [], "judge_overlay": [], "judge_alone": []} for n in names}
  t0 = time.time()
  start_latent = fitting.initial_variables(rec.scene, 1, rec.schedule, jax.random.split(
      jax.random.key(rec.cfg.seed))[0]).texture[0, 0]
  for k in range(0, len(chosen), FLAGS.batch):
    chunk = chosen[k:k + FLAGS.batch]
    preps = []
    for rel, lm in chunk:
      preps.append(face.from_landmarks(face.load_image(os.path.join(root, "images_deepfunneled", rel)), lm, s))
    results = rec.fit(preps, [c[0] for c in chunk], batch=FLAGS.batch)
    for r in results:
      canvas, lm_c = r.prepared.canvas, r.prepared.landmarks
      start = params_lib.to_face(params_lib.init(rec.model, start_latent), rec.model.expression_kind).replace(
          camera=r.face.camera)
      # the fitted face with the texture the job writes (photo detail when on), the start with the model's
      detail = r.prepared.detail if rec.detail_layout is not None else None
      for name, f, tex in (("fitted", r.face, output_texture(rec.out_scene, r.face, detail, rec.detail_layout)),
                           ("start", start, output_texture(rec.out_scene, start))):
        o = jax.device_get(render_outputs(rec.out_scene, f, jnp.asarray(canvas), jnp.asarray(r.embedding),
                                          jnp.asarray(r.align_matrix), tex, render_size=rec.cfg.render_size))
        rows[name]["px"].append(float(np.linalg.norm(o["landmarks"] - lm_c, axis=1).mean()))
        rows[name]["nme"].append(lm_eval.nme(o["landmarks"], lm_c, "outer_eye"))
        rows[name]["judge_overlay"].append(id_eval.judge_cosine(canvas, lm_c, o["overlay"], lm_c))
        rows[name]["judge_alone"].append(id_eval.judge_cosine(canvas, lm_c, o["alone_small"], lm_c))
    f, m = rows["fitted"], rows["start"]
    print(f"  {min(k + FLAGS.batch, len(chosen))}/{len(chosen)} photos, {time.time() - t0:.0f} s: fitted "
          f"{np.mean(f['px']):.2f}px judge {np.mean(f['judge_overlay']):.3f}/{np.mean(f['judge_alone']):.3f}; "
          f"start {np.mean(m['px']):.2f}px judge {np.mean(m['judge_overlay']):.3f}/{np.mean(m['judge_alone']):.3f}",
          flush=True)
  print(f"\n## Quality on {len(chosen)} LFW DevTest photos (preset {FLAGS.preset}, texture model "
        f"{rec.scene.texture.kind})\n")
  print("| reconstruction | landmark error (px, 224 canvas) | NME (outer eye corners) | judge cosine, render over "
        "photo | judge cosine, render alone on grey |\n|---|---|---|---|---|")
  for name, r in rows.items():
    print(f"| {name} | {np.mean(r['px']):.2f} | {np.mean(r['nme']):.4f} | {np.mean(r['judge_overlay']):.3f} | "
          f"{np.mean(r['judge_alone']):.3f} |")
  print(f"\n({time.time() - t0:.0f} s for the quality table)")


def main(argv):
  del argv
  from ganfit_jax import runtime
  runtime.configure()
  if FLAGS.runs:
    speed()
  if FLAGS.num:
    quality()
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
