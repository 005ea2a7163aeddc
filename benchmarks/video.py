"""Video: jitter and throughput of ``--video`` (ganfit_jax.video) on a real clip, against independent
per-frame fits and the raw detector.

  python benchmarks/video.py                                  # setup's clip (clip_talking), fast preset
  python benchmarks/video.py --clip=clip_expressions --max_frames=120
  python benchmarks/video.py --clip=path/to/clip.mp4

Variants (one process, the same frames): 'clip' (the default: warm-started batches + the zero-lag smoother),
'no smoother' (warm starts only), 'independent' (every frame from the identity's start, no smoother).
Jitter: mean absolute second difference over consecutive tracked frames of the 68 fitted points (px/frame^2,
video pixels) and of the head's yaw, pitch and roll (deg/frame^2); the detector's own points' for reference.
NME vs detector: the fitted 68 points' mean distance to the tracker's, over its outer-eye-corner distance.
Throughput: frames a second of the per-frame phase (after the identity), and each phase's seconds. Not yet:
the synthetic clip with exact truth (expression and rotation error, the lag of a step).
"""

import os
import sys
import time

import numpy as np
from absl import app, flags
from ml_collections import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
config_flags.DEFINE_config_file("config", os.path.join(ROOT, "configs", "fit.py"), "Fitting preset and overrides.")
flags.DEFINE_string("clip", "clip_talking", "An asset name (tools/fetch_assets.py --list) or a video path.")
flags.DEFINE_integer("max_frames", None, "Read at most this many frames.")
flags.DEFINE_integer("keyframes", 5, "Keyframes of the identity.")
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


def main(argv):
  del argv
  from ganfit_jax import assets, runtime
  runtime.configure()
  from ganfit_jax.reconstruct import Reconstructor
  from ganfit_jax.video import clip as clip_lib, files
  path = FLAGS.clip if os.path.isfile(FLAGS.clip) else assets.path(FLAGS.clip)
  cfg = FLAGS.config
  rec = Reconstructor(cfg)
  v = cfg.video
  rows = []
  for name, kw in (("clip (warm starts + smoother)", dict(smooth_frames=float(v.smooth_frames))),
                   ("no smoother", dict(smooth_frames=0.0)),
                   ("independent per-frame fits", dict(smooth_frames=0.0, warm_start=False))):
    t = time.perf_counter()
    c = clip_lib.fit_clip(rec, path, max_frames=FLAGS.max_frames, keyframes=FLAGS.keyframes, batch=int(v.batch),
                          steps=int(v.track_steps), **kw)
    wall = time.perf_counter() - t
    ypr = np.degrees(files.yaw_pitch_roll(files.rotations(np.asarray(c.faces.camera), c.to_canvas)))
    n = int(c.found.sum())
    rows.append((name, accel(c.landmarks_px, c.found), accel(ypr, c.found), n / c.seconds["frames"], c.seconds,
                 wall, n, len(c.found), nme(c.landmarks_px, c.detected_px, c.found)))
    det = accel(c.detected_px, c.found)
  print(f"\n## Video: {os.path.basename(path)}, {rows[0][7]} frames ({rows[0][6]} with a face), preset "
        f"{cfg.preset}, batch {v.batch}, {v.track_steps} steps a batch\n")
  print("| variant | landmark jitter px/frame^2 | head rotation jitter deg/frame^2 | NME vs detector % | "
        "frames/s (per-frame phase) | track s | identity s | frames s | wall s |")
  print("|---|---|---|---|---|---|---|---|---|")
  for name, lj, rj, fps, sec, wall, _, _, e in rows:
    print(f"| {name} | {lj:.3f} | {rj:.3f} | {e:.2f} | {fps:.1f} | {sec['track']:.1f} | {sec['identity']:.1f} | "
          f"{sec['frames']:.1f} | {wall:.1f} |")
  print(f"| the detector's own 68 points | {det:.3f} | - | 0 | - | - | - | - | - |")
  print("\n(The first variant's times include compiling; the others reuse its programs.)")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
