"""Dataset-job throughput (ganfit_jax.jobs): photos per hour vs local devices and batch size, and the
host pipeline's own rate, so it is clear which side limits a job.

  python benchmarks/dataset.py                                  # both tables, tiny preset, CPU
  python benchmarks/dataset.py --preset=fast --devices=1 --batch_sizes=4 --photos=8
  python benchmarks/dataset.py --section=pipeline --photos=64   # load + detect only

1. Fitting: for each (devices, batch size), a fresh process (the device count is fixed when JAX starts;
   on CPUs ``--xla_force_host_platform_device_count`` simulates devices that share the same cores) runs
   ``jobs.run.run`` (the code behind ``tools/fit.py --input_dir``) on --photos LFW DevTrain photos after
   a warm-up batch (compilation), and reports photos per hour of the whole job (load, detect, fit,
   write, manifest) and its fit seconds per photo.
2. Pipeline: ``jobs.stream.prepare_all`` (load + dlib detection + landmarks + canvas crops) over the same
   photos with 1..N worker threads: photos per second the host can feed.
3. Determinism (``--section=determinism``, not part of ``all``): ``tools/fit.py --input_dir`` on 5
   photos, twice at batch 2 and once at batch 1: max |difference| of each parameter (the same command
   must give identical files; another program (batch size) differs by float rounding only).
DevTrain photos only: the first photo of each ``peopleDevTrain.txt`` person, in list order.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("section", "all", ["all", "fit", "pipeline", "determinism"], "Which table.")
flags.DEFINE_list("devices", ["1", "2", "4"], "Local device counts (simulated on CPU).")
flags.DEFINE_list("batch_sizes", ["1", "2", "4", "8"], "Photos per fit.")
flags.DEFINE_list("workers", ["1", "2", "4"], "Host threads for the pipeline table.")
flags.DEFINE_integer("photos", 16, "Photos per measurement (after the warm-up batch).")
flags.DEFINE_string("preset", "tiny", "configs/fit.py preset.")
flags.DEFINE_string("lfw_dir", None, "LFW folder (default ../shared/assets/lfw).")
flags.DEFINE_string("child", None, "internal: one measurement as JSON 'devices,batch'.")

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _photos(n):
  lfw = FLAGS.lfw_dir or os.path.join(ROOT, "..", "shared", "assets", "lfw")
  with open(os.path.join(lfw, "peopleDevTrain.txt")) as f:
    people = [line.split()[0] for line in f.read().splitlines()[1:] if line.strip()]
  return [os.path.join(lfw, "images_deepfunneled", p, f"{p}_0001.jpg") for p in people[:n]]


def _items(paths):
  from ganfit_jax.jobs import inputs
  return inputs.with_outputs([inputs.Item(key=os.path.basename(p), path=p) for p in paths])


def child(devices: int, batch: int):
  """One (devices, batch) measurement in this process (XLA_FLAGS already set by the parent)."""
  from ganfit_jax import runtime
  runtime.configure()
  import jax
  from ganfit_jax.jobs import run
  from ganfit_jax.reconstruct import Reconstructor
  sys.path.insert(0, ROOT)
  from ganfit_jax.configs import fit as fit_config
  cfg = fit_config.get_config(FLAGS.preset)
  cfg.batch_size = batch
  rec = Reconstructor(cfg)
  mesh = run.local_mesh(devices)
  paths = _photos(batch * devices + FLAGS.photos)
  tmp = tempfile.mkdtemp(prefix="ganfit_dataset_bench_")
  try:
    run.run(rec, _items(paths[:batch * devices]), os.path.join(tmp, "warm"), batch_size=batch, mesh=mesh,
            progress=False)
    t0 = time.perf_counter()
    c = run.run(rec, _items(paths[batch * devices:]), os.path.join(tmp, "job"), batch_size=batch, mesh=mesh,
                progress=False)
    wall = time.perf_counter() - t0
    from ganfit_jax.jobs import manifest
    recs = [r for r in manifest.read(os.path.join(tmp, "job")).values() if r["status"] == "done"]
    fit_s = sum(r["fit_seconds"] for r in recs) / max(len(recs), 1)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  print("RESULT " + json.dumps(dict(devices=len(mesh.devices.flat), batch=batch * 1, done=c["done"],
                                    failed=c["failed"], wall_s=wall, per_hour=3600 * c["done"] / wall,
                                    fit_s_per_photo=fit_s, backend=jax.default_backend())))


def fit_table():
  print(f"\n## Dataset job: photos per hour (preset {FLAGS.preset}, {FLAGS.photos} DevTrain photos after a "
        "warm-up batch)\n")
  print("| local devices | batch | photos/hour | fit s/photo | wall s | failed | backend |")
  print("|---:|---:|---:|---:|---:|---:|---|")
  for d in FLAGS.devices:
    for b in FLAGS.batch_sizes:
      env = dict(os.environ)
      env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={d}").strip()
      args = [sys.executable, os.path.abspath(__file__), f"--child={d},{b}", f"--preset={FLAGS.preset}",
              f"--photos={FLAGS.photos}"] + ([f"--lfw_dir={FLAGS.lfw_dir}"] if FLAGS.lfw_dir else [])
      r = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT)
      line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
      if r.returncode or not line:
        print(f"| {d} | {b} | failed: {r.stderr.strip().splitlines()[-1:]} |||||")
        continue
      x = json.loads(line[0][7:])
      print(f"| {x['devices']} | {b} | {x['per_hour']:.0f} | {x['fit_s_per_photo']:.2f} | {x['wall_s']:.1f} | "
            f"{x['failed']} | {x['backend']} |", flush=True)


def pipeline_table():
  from ganfit_jax.jobs import stream
  from ganfit_jax.face import prepare
  paths = _photos(FLAGS.photos)
  print(f"\n## Host pipeline: load + detect + 68 landmarks + canvas, {len(paths)} DevTrain photos\n")
  print("| worker threads | photos/s | failed |")
  print("|---:|---:|---:|")
  for w in FLAGS.workers:  # warm-up: every thread loads its own copy of dlib's models once
    list(stream.prepare_all(_items(paths[:2 * int(w)]), lambda it: prepare(it.path), workers=int(w)))
  for w in FLAGS.workers:
    t0 = time.perf_counter()
    out = list(stream.prepare_all(_items(paths), lambda it: prepare(it.path), workers=int(w)))
    dt = time.perf_counter() - t0
    failed = sum(isinstance(p, stream.Failure) for _, p in out)
    print(f"| {w} | {len(out) / dt:.1f} | {failed} |", flush=True)


def determinism_table():
  import numpy as np
  paths = _photos(5)
  tmp = tempfile.mkdtemp(prefix="ganfit_dataset_det_")
  try:
    folder = os.path.join(tmp, "in")
    os.makedirs(folder)
    for p in paths:
      shutil.copy(p, folder)
    runs = dict(a=2, b=2, c=1)
    for name, batch in runs.items():
      r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fit.py"), f"--input_dir={folder}",
                          f"--out={os.path.join(tmp, name)}", f"--config=configs/fit.py:{FLAGS.preset}",
                          f"--config.batch_size={batch}"], capture_output=True, text=True, cwd=ROOT)
      if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    keys = ("shape", "expression", "texture_latent", "camera", "light")
    print(f"\n## Determinism: {len(paths)} DevTrain photos, preset {FLAGS.preset}: max |difference|\n")
    print("| runs | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for other, label in (("b", "same command twice (batch 2)"), ("c", "batch 2 vs batch 1")):
      diff = {k: 0.0 for k in keys}
      for p in paths:
        stem = os.path.splitext(os.path.basename(p))[0]
        with np.load(os.path.join(tmp, "a", stem, "params.npz")) as x, \
             np.load(os.path.join(tmp, other, stem, "params.npz")) as y:
          for k in keys:
            diff[k] = max(diff[k], float(np.abs(x[k] - y[k]).max()))
      print(f"| {label} | " + " | ".join(f"{diff[k]:.3g}" for k in keys) + " |")
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
  del argv
  if FLAGS.child:
    d, b = (int(x) for x in FLAGS.child.split(","))
    child(d, b)
    return
  print(f"# benchmarks/dataset.py  (cpu count {os.cpu_count()})")
  if FLAGS.section in ("all", "pipeline"):
    pipeline_table()
  if FLAGS.section in ("all", "fit"):
    fit_table()
  if FLAGS.section == "determinism":
    determinism_table()


if __name__ == "__main__":
  app.run(main)
