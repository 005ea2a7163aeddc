"""GANFit vs Fast-GANFit vs GANFit++ (the paper's Table 1, on LFW DevTest): quality and seconds per photo.

  python benchmarks/regressor.py --pairs=100                  # every row; the fit rows take the longest
  python benchmarks/regressor.py --pairs=20 --modes=regress,regress_fit

Quality: ``benchmarks/fidelity.py --section=identity --pairs=N --config.mode=M`` per mode (one process
each, same photos: photo A of the first N same-person DevTest pairs): landmark RMSE (canvas px) and NME
(the 68 projected points vs the detected ones, outer-eye normalised), dlib's judged cosine of photo vs
render alone, verification render A vs photo B, skin colour delta E. The mean-face row is the fidelity
benchmark's "start" row of the fit run (mean shape, start latent, the fit's camera). Shape on the
synthetic benchmark: ``benchmarks/shape.py --num=K --config.mode=M`` (needs the bfm asset; --shape_num=0
skips it).

Speed (this process, one mode at a time, after a warm-up call): seconds per photo of Reconstructor.fit
after detection, batch 1 and batch --batch, and 3DDFA_V2's ONNX regressor on the same crops.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
FLAGS = flags.FLAGS
flags.DEFINE_integer("pairs", 100, "DevTest photos (photo A of each same-person pair).")
flags.DEFINE_list("modes", ["fit", "regress", "regress_fit"], "Modes to compare.")
flags.DEFINE_integer("shape_num", 10, "Synthetic faces for the shape rows (0: skip).")
flags.DEFINE_integer("batch", 8, "Batch size of the batched speed row.")
flags.DEFINE_integer("speed_photos", 8, "Photos timed per speed row.")
flags.DEFINE_string("preset", "fast", "configs/fit.py preset.")
flags.DEFINE_string("workdir", os.path.join(ROOT, "work", "bench_regressor"), "JSON outputs of the sub-runs.")

LABEL = dict(fit="GANFit (fit)", regress="Fast-GANFit (regress)", regress_fit="GANFit++ (regress_fit)")


def _sub(script, args, log):
  cmd = [sys.executable, os.path.join(ROOT, "benchmarks", script)] + args
  print("$ " + " ".join(cmd[1:]), flush=True)
  with open(log, "w") as f:
    r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
  if r.returncode != 0:
    raise RuntimeError(f"{script} failed (log: {log})")


def quality(mode, peer=False):
  cfg = f"--config={os.path.join(ROOT, 'configs', 'fit.py')}:{FLAGS.preset}"
  out = os.path.join(FLAGS.workdir, f"fidelity_{mode}.json")
  if not os.path.exists(out):
    _sub("fidelity.py", ["--section=identity", f"--pairs={FLAGS.pairs}", cfg, f"--config.mode={mode}",
                         f"--json_out={out}"], out.replace(".json", ".log"))
  fid = json.load(open(out))
  shape = None
  if FLAGS.shape_num:
    sout = os.path.join(FLAGS.workdir, f"shape_{mode}.json")
    if not os.path.exists(sout):
      _sub("shape.py", [f"--num={FLAGS.shape_num}", cfg, f"--config.mode={mode}", f"--json_out={sout}",
                        "--peer" if peer else "--nopeer", "--nobounds"], sout.replace(".json", ".log"))
    shape = json.load(open(sout))
  return fid, shape


def speed(modes):
  """Seconds per photo of Reconstructor.fit (after detection), batch 1 and batched, per mode."""
  from ganfit_jax.configs.fit import get_config
  from ganfit_jax import face
  from ganfit_jax.data import lfw
  from ganfit_jax.evaluation import peers
  from ganfit_jax.reconstruct import Reconstructor
  root = lfw.root()
  pairs = [p for p in lfw.read_pairs(os.path.join(root, "pairsDevTest.txt")) if p[4]][:FLAGS.speed_photos * 2]
  photos = [lfw.image_path(root, n, i) for n, i, _, _, _ in pairs][:FLAGS.speed_photos]
  out = {}
  for mode in modes:
    cfg = get_config(FLAGS.preset)
    cfg.mode = mode
    rec = Reconstructor(cfg)
    ps = [rec.prepare(p) for p in photos]
    rec.fit(ps[:1], photos[:1])  # warm-up (compile)
    t = time.perf_counter()
    for p, src in zip(ps, photos):
      rec.fit([p], [src])
    one = (time.perf_counter() - t) / len(ps)
    b = min(FLAGS.batch, len(ps))
    batch = (ps * -(-b // len(ps)))[:b]
    rec.fit(batch, photos[:1] * b)  # warm-up of the batched program
    t = time.perf_counter()
    rec.fit(batch, photos[:1] * b)
    out[mode] = (one, (time.perf_counter() - t) / b)
  d = peers.ddfa()
  ps = [face.prepare(p, 224) for p in photos]
  imgs = [face.load_image(p) for p in photos]
  d(imgs[0], ps[0].photo_landmarks)
  t = time.perf_counter()
  for img, p in zip(imgs, ps):
    d(img, p.photo_landmarks)
  out["3ddfa_v2"] = ((time.perf_counter() - t) / len(ps), None)
  return out


def main(argv):
  del argv
  from ganfit_jax import runtime
  runtime.configure()
  os.makedirs(FLAGS.workdir, exist_ok=True)
  t0 = time.time()
  res = {m: quality(m, peer=k == 0) for k, m in enumerate(FLAGS.modes)}
  sp = speed(FLAGS.modes)
  first = res[FLAGS.modes[0]][0]
  n = len(first["per_photo"])
  print(f"\n## GANFit / Fast-GANFit / GANFit++ on {n} LFW DevTest photos (preset {FLAGS.preset}; "
        f"shape: {FLAGS.shape_num} synthetic BFM faces)\n")
  print("| method | landmark NME (outer eye) | landmark RMSE, canvas px | judged cosine photo vs render alone | "
        "verification render A vs photo B (10-fold) | same, texture model alone | skin delta E | shape error mm "
        "(synthetic, MICC) | s/photo batch 1 | s/photo batched |")
  print("|---|---|---|---|---|---|---|---|---|---|")

  def shape_cell(shape, row="ganfit_jax fit"):
    vals = (shape or {}).get("rows", {}).get(row)
    return f"{np.mean([v['micc'] for v in vals]):.3f}" if vals else ""

  for m in FLAGS.modes:
    fid, shape = res[m]
    rows = fid["per_photo"]
    t = fid["table"]["detail"]
    one, batched = sp[m]
    print(f"| {LABEL[m]} | {np.mean([r['landmark_nme'] for r in rows]):.4f} | "
          f"{np.mean([r['landmark_rmse_px'] for r in rows]):.2f} | {t['cosine']} | "
          f"{100 * t['accuracy_10fold']:.1f}% | {100 * fid['table']['model']['accuracy_10fold']:.1f}% | "
          f"{t['delta_e']} | {shape_cell(shape)} | {one:.3f} | {batched:.3f} |")
  t = first["table"]["start"]
  shape0 = res[FLAGS.modes[0]][1]
  nme0 = np.mean([r["start_landmark_nme"] for r in first["per_photo"]])
  print(f"| mean face (the fit's start, fitted camera) | {nme0:.4f} | | {t['cosine']} | "
        f"{100 * t['accuracy_10fold']:.1f}% | | {t['delta_e']} | {shape_cell(shape0, 'ICT mean face')} | | |")
  print(f"| 3DDFA_V2 (ONNX regressor) | | | | | | | {shape_cell(shape0, '3DDFA_V2')} | {sp['3ddfa_v2'][0]:.4f} | |")
  print(f"\n({time.time() - t0:.0f} s; sub-run logs and JSON in {FLAGS.workdir})")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
