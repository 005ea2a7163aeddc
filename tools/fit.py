"""Reconstructs a face from a photo.

  python tools/fit.py --image=examples/astronaut.jpg --out=out/astronaut

Currently runs GANFit's stage 1 (68 landmarks + regularisers -> shape, expression, camera) and writes
mesh.obj (mm, model frame, fitted expression), mesh_neutral.obj, overlay.png (the fitted mesh rendered over
the aligned photo), params.npz and report.json. Stage 2 (texture GAN + identity losses) is issue 8.
Exit codes: 0 ok, 2 bad input (message says why), 3 missing asset.
"""

import json
import os
import shutil
import sys
import tempfile
import time

import cv2
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from ganfit_jax import assets, face, fitting, morphable
from ganfit_jax.render import default_light, render_model

FLAGS = flags.FLAGS
flags.DEFINE_string("image", None, "Photo to reconstruct.")
flags.DEFINE_string("out", None, "Output directory (created; must not hold a previous result unless --overwrite).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --out directory.")
flags.DEFINE_integer("steps", 300, "Stage-1 optimisation steps.")
flags.DEFINE_integer("size", 224, "Fitting canvas size in pixels.")
flags.DEFINE_string("face", "largest", "Which face: 'largest' or an index (largest first).")
flags.DEFINE_string("model", "ict", "Morphable-model asset.")


def run(image_path, out_dir):
  t0 = time.perf_counter()
  model = assets.load_model(FLAGS.model)
  prepared = face.prepare(image_path, FLAGS.size, select=FLAGS.face)
  if prepared.num_faces > 1:
    print(f"note: {prepared.num_faces} faces found; fitting the largest (choose with --face=INDEX)")
  cfg = fitting.Stage1Config(steps=FLAGS.steps, image_size=FLAGS.size)
  t1 = time.perf_counter()

  def progress(i, aux):
    if i % 50 == 0 or i == cfg.steps - 1:
      print(f"  step {i + 1:4d}/{cfg.steps}  loss {aux['loss']:.4f}  landmark RMSE {aux['landmark_rmse_px']:.2f} px",
            flush=True)

  params, history = fitting.fit_stage1(model, prepared.landmarks, cfg, callback=progress)
  t2 = time.perf_counter()
  expr = fitting.expression_values(model, params.expression)
  verts = morphable.vertices(model, params.shape, expr)
  neutral = morphable.vertices(model, params.shape)
  cam = fitting.camera_of(params)
  out = render_model(model, params.shape, expr, jnp.full((8, 8, 3), 0.75), cam, default_light(),
                     height=FLAGS.size, width=FLAGS.size)
  overlay = 0.5 * np.asarray(out.image) + 0.5 * prepared.canvas
  overlay = np.where(np.asarray(out.mask)[..., None], overlay, prepared.canvas)
  lm_canvas = np.asarray(fitting.project_landmarks(model, params, FLAGS.size))
  lm_photo = face.apply_affine(face.invert_affine(prepared.to_canvas), lm_canvas)

  os.makedirs(os.path.dirname(os.path.abspath(out_dir)) or ".", exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".fit-", dir=os.path.dirname(os.path.abspath(out_dir)))
  try:
    fitting.export_obj(os.path.join(tmp, "mesh.obj"), np.asarray(verts), model)
    fitting.export_obj(os.path.join(tmp, "mesh_neutral.obj"), np.asarray(neutral), model)
    cv2.imwrite(os.path.join(tmp, "overlay.png"), (np.clip(overlay, 0, 1) * 255).astype(np.uint8)[..., ::-1])
    np.savez(os.path.join(tmp, "params.npz"), shape=np.asarray(params.shape), expression=np.asarray(expr),
             camera=np.asarray(cam))
    final = history[-1]
    report = dict(
        image=os.path.abspath(image_path), stage="stage1 (landmarks + regularisers)", model=model.name,
        final_loss_terms={k: v for k, v in final.items() if k != "step"},
        landmarks_photo_px=lm_photo.round(2).tolist(),
        landmarks_3d_mm=np.asarray(morphable.landmarks(model, verts)).round(3).tolist(),
        expression={n: float(v) for n, v in zip(model.expression_names, np.asarray(expr))},
        camera=np.asarray(cam).tolist(), faces_detected=prepared.num_faces,
        timings_s=dict(prepare=round(t1 - t0, 3), fit=round(t2 - t1, 3)),
        history=history)
    with open(os.path.join(tmp, "report.json"), "w") as f:
      json.dump(report, f, indent=1)
    if os.path.exists(out_dir):
      shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  print(f"wrote {out_dir}: landmark RMSE {final['landmark_rmse_px']:.2f} px on the {FLAGS.size}px canvas, "
        f"fit {t2 - t1:.1f} s")


def main(argv):
  del argv
  if not FLAGS.image or not FLAGS.out:
    print("error: --image and --out are required", file=sys.stderr)
    return 2
  if os.path.exists(FLAGS.out) and not FLAGS.overwrite and os.listdir(FLAGS.out):
    print(f"error: {FLAGS.out} already holds files; pass --overwrite or another --out", file=sys.stderr)
    return 2
  try:
    run(FLAGS.image, FLAGS.out)
  except face.FaceInputError as e:
    print(f"error: {e}", file=sys.stderr)
    return e.exit_code
  except assets.AssetError as e:
    print(f"error: {e}", file=sys.stderr)
    return 3
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
