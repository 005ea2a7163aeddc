"""Exports of one fit: file sizes, write seconds per format, the glTF validator and Blender's importer.

  python benchmarks/exports.py                                        # astronaut, tiny preset
  python benchmarks/exports.py --blender_python=/tmp/bpyenv/bin/python  # + Blender's import (see _blender_check.py)

Write times: Reconstructor.write of the same fit with one export set at a time, the sets interleaved over
--reps rounds (this VM is noisy), after one warm-up write (compilation); "median (min)" seconds. The
'none' row writes what is always written (pictures, params, report). Printed as Markdown.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

FLAGS = flags.FLAGS
flags.DEFINE_string("image", os.path.join(ROOT, "examples", "astronaut.jpg"), "Photo to fit.")
flags.DEFINE_string("preset", "tiny", "configs/fit.py preset of the fit (the exports do not depend on it).")
flags.DEFINE_integer("reps", 3, "Interleaved rounds of write timings.")
flags.DEFINE_string("blender_python", None, "Python with the PyPI bpy module (Blender as a module).")


def main(argv):
  del argv
  from ganfit_jax import runtime
  runtime.configure()
  from ganfit_jax.configs.fit import get_config
  from ganfit_jax.outputs.writer import EXPORTS
  from ganfit_jax.reconstruct import Reconstructor
  cfg = get_config(FLAGS.preset)
  cfg.render_size, cfg.output_texture_size, cfg.detail_scale = 512, 512, 4  # the default outputs
  rec = Reconstructor(cfg)
  (r,) = rec.fit([rec.prepare(FLAGS.image)], [FLAGS.image])
  tmp = tempfile.mkdtemp(prefix="exports_bench_")
  try:
    rec.write(r, os.path.join(tmp, "warm"))
    sets = {"none": ()} | {e: (e,) for e in EXPORTS} | {"all (default)": tuple(EXPORTS)}
    times = {k: [] for k in sets}
    for rep in range(FLAGS.reps):
      for k, ex in sets.items():
        rec.writer.exports = ex
        t0 = time.perf_counter()
        rec.write(r, os.path.join(tmp, f"w{rep}_{k.split()[0]}"))
        times[k].append(time.perf_counter() - t0)
    base = float(np.median(times["none"]))
    print("| exports | write seconds, median (min) | over 'none' |\n|---|---|---|")
    for k, v in times.items():
      print(f"| {k} | {np.median(v):.2f} ({min(v):.2f}) | {np.median(v) - base:+.2f} |")
    out = os.path.join(tmp, "w0_all")
    rep_json = json.load(open(os.path.join(out, "report.json")))
    print("\n| file | bytes |\n|---|---|")
    for name in sorted(os.listdir(out)):
      p = os.path.join(out, name)
      size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(p) for f in fs) if os.path.isdir(p) \
          else os.path.getsize(p)
      print(f"| {name}{'/' if os.path.isdir(p) else ''} | {size:,} |")
    g = rep_json["exports"]["glb"]
    n, t = g["vertices"], g["morph_targets"]
    dense = t * n * 2 * 12  # position + normal deltas, float32 VEC3, every vertex
    print(f"\nGLB: {n} vertices, {t} morph targets, {g['sparse_fraction']:.1%} of the vertices stored per target "
          f"(sparse); dense targets alone would be {dense / 2**20:.1f} MiB, the whole file is "
          f"{g['bytes'] / 2**20:.1f} MiB.")
    js = os.path.join(ROOT, "tests", "js")
    if shutil.which("node") and os.path.isdir(os.path.join(js, "node_modules", "gltf-validator")):
      v = subprocess.run(["node", os.path.join(js, "validate_gltf.mjs"), os.path.join(out, "mesh.glb")],
                         capture_output=True, text=True)
      res = json.loads(v.stdout)
      print(f"Khronos glTF validator: {res['errors']} errors, {res['warnings']} warnings, {res['infos']} infos.")
    if FLAGS.blender_python:
      b = subprocess.run([FLAGS.blender_python, os.path.join(ROOT, "benchmarks", "_blender_check.py"),
                          os.path.join(out, "mesh.glb")], capture_output=True, text=True)
      line = [x for x in b.stdout.splitlines() if x.startswith("{")]
      print("Blender import (bpy): " + (line[-1] if line else f"failed: {b.stderr[-800:]}"))
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
