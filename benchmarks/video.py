"""Video: jitter and throughput of ``--video`` (ganfit_jax.video) on a real clip, against independent
per-frame fits and the raw detector.

  python benchmarks/video.py                                  # setup's clip (clip_talking), fast preset
  python benchmarks/video.py --clip=clip_expressions --max_frames=120
  python benchmarks/video.py --clip=path/to/clip.mp4
  python benchmarks/video.py --clip=synthetic                 # known truth: expression, rotation, a step's lag

Variants (one process, the same frames): 'clip' (the default: warm-started batches + the zero-lag smoother),
'no smoother' (warm starts only), 'independent' (every frame from the identity's start, no smoother).
Jitter: mean absolute second difference over consecutive tracked frames of the 68 fitted points (px/frame^2,
video pixels) and of the head's yaw, pitch and roll (deg/frame^2); the detector's own points' for reference.
NME vs detector: the fitted 68 points' mean distance to the tracker's, over its outer-eye-corner distance.
Throughput: frames a second of the per-frame phase (after the identity), and each phase's seconds.
Synthetic clip (:func:`synthetic_clip`): 60 frames at 30 fps, 480 px, one random ICT identity (+-2 sigma) with
a random GAN texture over a blurred DevTrain photo with noise (sigma 0.02), talking (jawOpen), smiling,
blinking, brows raised in the last part; yaw sways and steps by 20 degrees at frame 30, pitch sways. Errors:
mean absolute expression activation error (all 53, and the 7 animated), mean geodesic head-rotation error,
and the lag of the step (frames from the truth's crossing of the step's half-way value to the fit's).
"""

import os
import sys
import time

import numpy as np
from absl import app, flags
from ml_collections import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
config_flags.DEFINE_config_file("config", os.path.join(ROOT, "configs", "fit.py"), "Fitting preset and overrides.")
flags.DEFINE_string("clip", "clip_talking", "An asset name (tools/fetch_assets.py --list), a video path, or "
                    "'synthetic' (an ICT face with known expression and pose curves: errors against the truth).")
flags.DEFINE_integer("max_frames", None, "Read at most this many frames.")
flags.DEFINE_integer("keyframes", 5, "Keyframes of the identity.")
flags.DEFINE_list("variants", ["clip", "no_smoother", "independent"], "Which variants to run (a subset of the "
                  "three, in that order).")
FLAGS = flags.FLAGS


def accel(x: np.ndarray, found: np.ndarray) -> float:
  """Mean |x[t+1] - 2 x[t] + x[t-1]| over triples of consecutive tracked frames."""
  ok = found[2:] & found[1:-1] & found[:-2]
  d = x[2:] - 2 * x[1:-1] + x[:-2]
  return float(np.abs(d[ok]).mean()) if ok.any() else float("nan")


def nme(points: np.ndarray, detected: np.ndarray, found: np.ndarray) -> float:
  """Mean over tracked frames of the mean point distance / the detector's outer-eye-corner distance (%)."""
  p, d = points[found], detected[found]
  eye = np.linalg.norm(d[:, 45] - d[:, 36], axis=-1)
  return float(100 * np.mean(np.linalg.norm(p - d, axis=-1).mean(-1) / eye))


STEP_FRAME = 30  # the synthetic clip's yaw jumps by STEP_DEG between this frame and the one before
STEP_DEG = 20.0


def synthetic_clip(scene, path: str, frames: int = 60, fps: float = 30.0, size: int = 480, seed: int = 0) -> dict:
  """Writes an MP4 of one random ICT identity (a random GAN texture) whose expression and head pose follow
  known curves, rendered by the project's renderer over a blurred DevTrain photo with per-frame noise;
  returns the truth: ``expression`` (F, E), ``rotation`` (F, 3, 3) in files.rotations' convention, the
  identity's ``shape`` coefficients and the ``focal`` length."""
  import cv2
  import jax
  import jax.numpy as jnp
  from ganfit_jax import camera as camera_lib, lighting, morphable, objective
  from ganfit_jax.data import lfw
  from ganfit_jax.evaluation.synthetic import backgrounds
  model = scene.model
  rng = np.random.default_rng(seed)
  root = lfw.root()
  people = [n for n, _ in lfw.read_people(os.path.join(root, "peopleDevTrain.txt"))]
  bg = backgrounds(1, size, rng, [lfw.image_path(root, people[int(rng.integers(len(people)))], 1)])[0]
  shape = np.clip(rng.normal(size=model.num_identity), -2, 2).astype(np.float32)
  latent = rng.normal(size=scene.texture.latent_dim).astype(np.float32)
  names = list(model.expression_names)
  t = np.arange(frames) / fps
  expr = np.zeros((frames, model.num_expression), np.float32)
  u = np.arange(frames) / max(frames - 1, 1)
  expr[:, names.index("jawOpen")] = 0.45 * np.sin(np.pi * 3 * u) ** 2  # talking: three openings
  smile = np.clip(np.sin(np.pi * u) * 0.9 - 0.2, 0, None)  # a smile that comes and goes
  expr[:, names.index("mouthSmile_L")] = expr[:, names.index("mouthSmile_R")] = smile
  for b in (12, 45):  # two blinks, 3 frames each
    expr[b:b + 3, names.index("eyeBlink_L")] = expr[b:b + 3, names.index("eyeBlink_R")] = [0.6, 1.0, 0.6]
  expr[:, names.index("browInnerUp_L")] = expr[:, names.index("browInnerUp_R")] = 0.4 * (u > 0.6)
  yaw = np.deg2rad(np.where(np.arange(frames) >= STEP_FRAME, STEP_DEG, 0.0) - 10.0 + 4.0 * np.sin(2 * np.pi * u))
  pitch = np.deg2rad(6.0 * np.sin(2 * np.pi * u * 1.5))
  lm = np.asarray(morphable.landmarks(model, model.mean))
  centre, face_h, f = lm.mean(0), float(np.ptp(lm[:, 1])), 5.0
  cams = np.stack([np.asarray(camera_lib.orbit_camera(y, p, distance=f * face_h / 0.45, look_at=tuple(centre),
                                                      focal=f)) for y, p in zip(yaw, pitch)])
  light = jnp.asarray(lighting.default_light())

  @jax.jit
  def render(e, cam, background):
    verts = morphable.vertices(model, jnp.asarray(shape), e)
    out, _ = objective.render_mesh(scene, verts, scene.texture_image(jnp.asarray(latent)), cam, light, background,
                                   size=size)
    return out.image

  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
  for i in range(frames):
    img = np.asarray(render(jnp.asarray(expr[i]), jnp.asarray(cams[i]), jnp.asarray(bg)))
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
    writer.write(cv2.cvtColor((img * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
  writer.release()
  rot = np.stack([np.asarray(camera_lib.view_matrix(jnp.asarray(c))[0]) for c in cams])
  return dict(expression=expr, rotation=rot, time_s=t, shape=shape, focal=np.float32(f))


def truth_rows(c, truth: dict, ypr_fit: np.ndarray) -> dict:
  """Expression and rotation errors of a fitted clip against the synthetic truth, and the step's lag."""
  from ganfit_jax.video import files
  found = c.found
  e = np.abs(np.asarray(c.faces.expression) - truth["expression"])[found]
  animated = truth["expression"].max(0) > 0
  r_fit = files.rotations(np.asarray(c.faces.camera), c.to_canvas)
  rel = np.einsum("fji,fjk->fik", r_fit, truth["rotation"])  # R_fit^T R_true
  angle = lambda r: np.degrees(np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1)))  # noqa: E731
  ang = angle(rel)[found]
  ypr_true = np.degrees(files.yaw_pitch_roll(truth["rotation"]))
  half = (ypr_true[STEP_FRAME - 1, 0] + ypr_true[STEP_FRAME, 0]) / 2
  up = np.sign(ypr_true[STEP_FRAME, 0] - ypr_true[STEP_FRAME - 1, 0])
  after = np.flatnonzero(up * (ypr_fit[STEP_FRAME - 5:, 0] - half) > 0)
  lag = int(after[0]) + STEP_FRAME - 5 - STEP_FRAME if len(after) else None
  bias = (ypr_fit - ypr_true)[found].mean(0)  # a constant offset (e.g. pitch against the focal length)
  # the rotation error left after removing the clip's constant rotation offset (its chordal mean)
  u, _, vt = np.linalg.svd(rel[found].sum(0))
  mean_rel = u @ np.diag([1, 1, np.sign(np.linalg.det(u @ vt))]) @ vt
  rel_c = np.einsum("ij,fjk->fik", mean_rel.T, rel[found])
  ang_c = angle(rel_c)
  return dict(expr_mae=float(e.mean()), expr_mae_animated=float(e[:, animated].mean()),
              rot_err=float(ang.mean()), rot_err_centred=float(ang_c.mean()), bias=bias, lag=lag)


def main(argv):
  del argv
  from ganfit_jax import assets, runtime
  runtime.configure()
  from ganfit_jax.reconstruct import Reconstructor
  from ganfit_jax.video import clip as clip_lib, files
  cfg = FLAGS.config
  rec = Reconstructor(cfg)
  truth = None
  if FLAGS.clip == "synthetic":
    path = os.path.join(ROOT, "work", "video_synthetic.mp4")  # kept (work/ is git-ignored) to look at
    os.makedirs(os.path.dirname(path), exist_ok=True)
    truth = synthetic_clip(rec.scene, path)
  else:
    path = FLAGS.clip if os.path.isfile(FLAGS.clip) else assets.path(FLAGS.clip)
  v = cfg.video
  rows = []
  variants = {"clip": ("clip (warm starts + smoother)", dict(smooth_frames=float(v.smooth_frames))),
              "no_smoother": ("no smoother", dict(smooth_frames=0.0)),
              "independent": ("independent per-frame fits", dict(smooth_frames=0.0, warm_start=False))}
  unknown = set(FLAGS.variants) - set(variants)
  if unknown:
    print(f"error: --variants: unknown {sorted(unknown)}; choose from {list(variants)}", file=sys.stderr)
    return 2
  for name, kw in (variants[k] for k in variants if k in FLAGS.variants):
    t = time.perf_counter()
    c = clip_lib.fit_clip(rec, path, max_frames=FLAGS.max_frames, keyframes=FLAGS.keyframes, batch=int(v.batch),
                          steps=int(v.track_steps), photometric_steps=int(v.photometric_steps), **kw)
    wall = time.perf_counter() - t
    ypr = np.degrees(files.yaw_pitch_roll(files.rotations(np.asarray(c.faces.camera), c.to_canvas)))
    n = int(c.found.sum())
    rows.append((name, accel(c.landmarks_px, c.found), accel(ypr, c.found), n / c.seconds["frames"], c.seconds,
                 wall, n, len(c.found), nme(c.landmarks_px, c.detected_px, c.found),
                 truth_rows(c, truth, ypr) if truth else None))
    det = accel(c.detected_px, c.found)
  print(f"\n## Video: {os.path.basename(path)}, {rows[0][7]} frames ({rows[0][6]} with a face), preset "
        f"{cfg.preset}, batch {v.batch}, {v.track_steps} steps a batch"
        + (f" + {v.photometric_steps} photometric" if v.photometric_steps else "") + "\n")
  print("| variant | landmark jitter px/frame^2 | head rotation jitter deg/frame^2 | NME vs detector % | "
        "frames/s (per-frame phase) | track s | identity s | frames s | wall s |")
  print("|---|---|---|---|---|---|---|---|---|")
  for name, lj, rj, fps, sec, wall, _, _, e, _ in rows:
    print(f"| {name} | {lj:.3f} | {rj:.3f} | {e:.2f} | {fps:.1f} | {sec['track']:.1f} | {sec['identity']:.1f} | "
          f"{sec['frames']:.1f} | {wall:.1f} |")
  print(f"| the detector's own 68 points | {det:.3f} | - | 0 | - | - | - | - | - |")
  if truth:
    print(f"\n### Against the synthetic clip's truth (yaw step of {STEP_DEG:g} deg at frame {STEP_FRAME})\n")
    print("| variant | expression MAE, all 53 | expression MAE, the animated shapes | rotation error deg | "
          "less its constant offset | mean yaw / pitch / roll offset deg | step lag frames |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
      t = r[-1]
      b = " / ".join(f"{x:+.2f}" for x in t["bias"])
      print(f"| {r[0]} | {t['expr_mae']:.3f} | {t['expr_mae_animated']:.3f} | {t['rot_err']:.2f} | "
            f"{t['rot_err_centred']:.2f} | {b} | {t['lag']} |")
  print("\n(The first variant's times include compiling; the others reuse its programs.)")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
