"""Reconstructs textured 3D faces from photos (GANFit: landmark alignment, then the full objective).

  python tools/fit.py --image=examples/astronaut.jpg --out=out/astronaut
  python tools/fit.py --images=a.jpg,b.jpg,c.jpg --out=out/person        # one person, several photos
  python tools/fit.py --input_dir=photos/ --out=out/many                  # many people, each photo alone
  python tools/fit.py --image=x.jpg --out=o --config=configs/fit.py:paper # the paper's schedule

Writes per result: mesh.obj + mesh.mtl + texture.png, mesh_neutral.obj, mesh.glb, params.npz +
params.json, overlay.png, comparison.png (photo | render | texture | shape only), convergence.png and
report.json. --images writes one folder per photo plus identity/ (the shared neutral face).
Exit codes: 0 ok, 2 bad input (the message says why and what to do), 3 missing asset.
Nothing is left half-written in --out: each result folder is built aside and renamed into place.
"""

import glob
import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", os.path.join(os.path.dirname(__file__), "..", "configs", "fit.py"),
                                "Fitting preset: configs/fit.py:fast (default) or :paper; override with "
                                "--config.FIELD=VALUE.")
flags.DEFINE_string("image", None, "One photo to reconstruct.")
flags.DEFINE_list("images", None, "Several photos of ONE person (comma-separated): shared shape and texture.")
flags.DEFINE_string("input_dir", None, "A folder of photos (jpg/png/...), each fitted on its own, in batches.")
flags.DEFINE_string("out", None, "Output folder.")
flags.DEFINE_bool("overwrite", False, "Replace existing results in --out.")
flags.DEFINE_string("face", "largest", "Which face when a photo has several: 'largest' or an index "
                    "(largest first).")

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _stem(path, taken):
  s = os.path.splitext(os.path.basename(path))[0] or "photo"
  name, k = s, 1
  while name in taken:
    k += 1
    name = f"{s}_{k}"
  taken.add(name)
  return name


class _Progress:
  """A progress bar over the fitting steps (tqdm), with the main loss terms."""

  def __init__(self, what):
    from tqdm import tqdm
    self.what = what
    self.bar = None
    self.tqdm = tqdm

  def __call__(self, i, n, aux):  # i steps done of n, after each compiled chunk
    if self.bar is None:
      self.bar = self.tqdm(total=n, desc=self.what, unit="step", mininterval=1.0)
    self.bar.update(i - self.bar.n)
    self.bar.set_postfix_str(f"{aux['stage']} loss {aux['loss']:.3f} id {aux['identity']:.3f} "
                             f"pix {aux['pixel']:.3f} lm {aux['landmark_rmse_px']:.1f}px", refresh=True)
    if i >= n:
      self.bar.close()


def run():
  from ganfit_jax import face
  from ganfit_jax.reconstruct import Reconstructor
  select = int(FLAGS.face) if FLAGS.face.isdigit() else FLAGS.face
  out = FLAGS.out
  if FLAGS.image:
    sources = [FLAGS.image]
  elif FLAGS.images:
    sources = list(FLAGS.images)
  else:
    sources = sorted(p for p in glob.glob(os.path.join(FLAGS.input_dir, "*")) if p.lower().endswith(IMAGE_EXTS))
    if not sources:
      raise face.FaceInputError(f"no images ({', '.join(IMAGE_EXTS)}) in {FLAGS.input_dir}")
  rec = Reconstructor(FLAGS.config)
  prepared, ok_sources, skipped = [], [], {}
  for src in sources:
    try:
      p = rec.prepare(src, select)
    except face.FaceInputError as e:
      if FLAGS.input_dir:  # a folder: skip bad photos, say so, keep going
        print(f"skip {src}: {e}", file=sys.stderr)
        skipped[src] = str(e)
        continue
      raise
    if p.num_faces > 1:
      print(f"note: {p.num_faces} faces in {src}; fitting the largest (choose with --face=INDEX)")
    prepared.append(p)
    ok_sources.append(src)
  if not prepared:
    raise face.FaceInputError(f"no usable photo in {FLAGS.input_dir}; see the messages above")
  if FLAGS.image:
    (r,) = rec.fit(prepared, ok_sources, progress=_Progress("fit"))
    rec.write(r, out)
    with open(os.path.join(out, "report.json")) as f:
      cos = json.load(f)["identity_cosine_photo_vs_render"]
    print(f"wrote {out}: identity cosine {cos:.3f}, landmark RMSE {r.final['landmark_rmse_px']:.2f}px, "
          f"fit {r.seconds:.1f}s")
    return
  os.makedirs(out, exist_ok=True)
  taken = set()
  if FLAGS.images:
    results = rec.fit(prepared, ok_sources, shared_identity=True, progress=_Progress(f"{len(prepared)} photos"))
    for r in results:
      rec.write(r, os.path.join(out, _stem(r.source, taken)))
    rec.write(results[0], os.path.join(out, "identity"))  # shared shape/texture (+ the first photo's pose)
    summary = dict(identity=dict(shape_texture_shared=True, photos=ok_sources),
                   per_image={r.source: dict(landmark_rmse_px=round(r.final["landmark_rmse_px"], 3))
                              for r in results})
  else:
    summary = dict(per_image={}, skipped=skipped)
    b = FLAGS.config.batch_size
    for k in range(0, len(prepared), b):
      chunk, srcs = prepared[k:k + b], ok_sources[k:k + b]
      pad = b - len(chunk)  # a fixed batch: one compilation for every chunk
      results = rec.fit(chunk + [chunk[0]] * pad, srcs + [srcs[0]] * pad,
                        progress=_Progress(f"photos {k + 1}-{k + len(chunk)}/{len(prepared)}"))[:len(chunk)]
      for r in results:
        rec.write(r, os.path.join(out, _stem(r.source, taken)))
        summary["per_image"][r.source] = dict(landmark_rmse_px=round(r.final["landmark_rmse_px"], 3))
  tmp = os.path.join(out, "summary.json.partial")
  with open(tmp, "w") as f:
    json.dump(summary, f, indent=1)
  os.replace(tmp, os.path.join(out, "summary.json"))
  print(f"wrote {len(summary['per_image'])} results to {out}" +
        (f" ({len(summary.get('skipped', {}))} photos skipped)" if summary.get("skipped") else ""))


def main(argv):
  del argv
  from ganfit_jax import runtime
  runtime.configure()
  from ganfit_jax import assets, face
  given = [x for x in (FLAGS.image, FLAGS.images, FLAGS.input_dir) if x]
  if len(given) != 1 or not FLAGS.out:
    print("error: give exactly one of --image, --images, --input_dir, and --out", file=sys.stderr)
    return 2
  if os.path.exists(FLAGS.out) and os.listdir(FLAGS.out) and not FLAGS.overwrite:
    print(f"error: {FLAGS.out} already holds files; pass --overwrite or choose another --out", file=sys.stderr)
    return 2
  for p in ([FLAGS.image] if FLAGS.image else FLAGS.images or []):
    if not os.path.isfile(p):
      print(f"error: {p} does not exist or is not a file", file=sys.stderr)
      return 2
  if FLAGS.input_dir and not os.path.isdir(FLAGS.input_dir):
    print(f"error: --input_dir={FLAGS.input_dir} is not a folder", file=sys.stderr)
    return 2
  try:
    run()
  except face.FaceInputError as e:
    print(f"error: {e}", file=sys.stderr)
    return e.exit_code
  except assets.AssetError as e:
    print(f"error: {e}", file=sys.stderr)
    return 3
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
