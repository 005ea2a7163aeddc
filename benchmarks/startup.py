"""Start-up of the main job: `Reconstructor(config)` in a fresh process, with and without the texel maps
stored on disk (ganfit_jax.texture.layout.texel_map), runs interleaved.

  python benchmarks/startup.py --runs=3

Each run is its own process (no in-memory cache); 'without' deletes the stored texel maps first (they are
written again by that run, so the next 'with' run reads them).
"""

import glob
import os
import subprocess
import sys

from absl import app, flags

flags.DEFINE_integer("runs", 3, "Runs of each variant (interleaved).")
flags.DEFINE_string("preset", "fast", "Config preset.")
FLAGS = flags.FLAGS

_CHILD = ("import time; from ganfit_jax import runtime; runtime.configure(); "
          "from ganfit_jax.configs.fit import get_config; from ganfit_jax.reconstruct import Reconstructor; "
          "t = time.perf_counter(); Reconstructor(get_config({preset!r})); print(time.perf_counter() - t)")


def main(argv):
  del argv
  from ganfit_jax import compiled, runtime
  runtime.configure()
  folder = compiled.disk_folder()
  rows = {"without stored texel maps": [], "with stored texel maps": []}
  for _ in range(FLAGS.runs):
    for name, times in rows.items():
      if name.startswith("without"):
        for p in glob.glob(os.path.join(folder, "texel_map-*.npz")):
          os.remove(p)
      r = subprocess.run([sys.executable, "-c", _CHILD.format(preset=FLAGS.preset)], capture_output=True, text=True)
      if r.returncode:
        print(r.stderr[-2000:], file=sys.stderr)
        return 1
      times.append(float(r.stdout.split()[-1]))
  print(f"\n## Reconstructor start-up, preset {FLAGS.preset}, a fresh process per run (seconds)\n")
  print("| variant | " + " | ".join(f"run {i + 1}" for i in range(FLAGS.runs)) + " |")
  print("|---|" + "---|" * FLAGS.runs)
  for name, times in rows.items():
    print(f"| {name} | " + " | ".join(f"{t:.2f}" for t in times) + " |")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
