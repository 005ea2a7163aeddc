"""Reconstructs textured 3D faces from photos (GANFit: landmark alignment, then the full objective).

  python tools/fit.py --image=examples/astronaut.jpg --out=out/astronaut
  python tools/fit.py --images=a.jpg,b.jpg,c.jpg --out=out/person        # one person, several photos
  python tools/fit.py --image=x.jpg --out=o --config=configs/fit.py:paper # the paper's schedule
  python tools/fit.py --image=x.jpg --landmarks=x.pts --out=o             # your landmarks: no detection
  python tools/fit.py --image=group.jpg --face_box=120,80,200,200 --out=o # the face nearest this box

A dataset (streamed, resumable, sharded over the local devices; README "Fitting a dataset"):
  python tools/fit.py --input_dir=photos/ --out=out/many                  # recursive; each photo alone
  python tools/fit.py --input_list=list.csv --out=out/many                # path[,person,landmarks,face_box]
  python tools/fit.py --input_dir=photos/ --out=out/many --dry_run        # counts: new, finished, failed
  ... --coordinator_address=host0:12355 --num_processes=N --process_id=I  # one of N processes (hosts)

Writes per result (--export chooses the mesh and page files; all by default): mesh.obj + mesh.mtl +
texture.png and mesh_neutral.obj; mesh.glb (metres, textured, the model's expression shapes as morph targets
with the fitted expression as default weights: shape keys in Blender, morph targets in three.js); mesh.ply
(vertex colours + UVs); arkit52.json (ARKit's 52 blendshape weights); index.html (the report page: pictures,
numbers and a 3D view with expression sliders; serve it with python tools/view.py OUT). Always: params.npz +
params.json, photo.jpg, overlay.png, render.png, comparison.png, convergence.png and report.json.
--images (and each person of --input_list) also writes identity/ (the shared neutral face). Datasets also
write manifest.jsonl (one line per photo; manifest.P.jsonl per process), summary.csv and index.html (every
photo, linked); rerunning the same command skips finished photos.
Exit codes: 0 ok, 2 bad input (the message says why and what to do), 3 missing asset.
Nothing is left half-written in --out: each result folder is built aside and renamed into place.
"""

import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
HINT = "see python tools/fit.py --help (and configs/fit.py for the --config fields)"


def _message(e: Exception) -> str:
  """One line: a parser's message without the traceback text ml_collections puts inside it."""
  lines = [x.strip() for x in str(e).splitlines() if x.strip()]
  m = f"{lines[0]} {lines[-1]}" if len(lines) > 1 else (lines[0] if lines else type(e).__name__)
  return m[1:-1] if len(m) > 1 and m[0] == m[-1] and m[0] in "'\"" else m


try:  # ml_collections applies --config overrides here, at definition time
  config_flags.DEFINE_config_file("config", os.path.join(os.path.dirname(__file__), "..", "configs", "fit.py"),
                                  "Fitting preset: configs/fit.py:fast (default) or :paper; override with "
                                  "--config.FIELD=VALUE.")
except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
  print(f"error: --config: {_message(e)}; {HINT}", file=sys.stderr)
  sys.exit(2)
flags.DEFINE_string("image", None, "One photo to reconstruct.")
flags.DEFINE_list("images", None, "Several photos of ONE person (comma-separated): shared shape and texture.")
flags.DEFINE_string("input_dir", None, "A folder of photos (searched recursively), each fitted on its own.")
flags.DEFINE_string("input_list", None, "A CSV (header: path[,person,landmarks,face_box]) or JSON-lines list of "
                    "photos; photos with the same person share shape and texture; relative paths are relative "
                    "to the list's folder.")
flags.DEFINE_string("out", None, "Output folder.")
flags.DEFINE_enum("mode", None, ["auto", "fit", "regress", "regress_fit"], "fit: GANFit (optimise from the mean "
                  "face); regress: Fast-GANFit (the regressor's prediction, no optimisation); regress_fit: GANFit++ "
                  "(the prediction starts a fit of a third of the steps); auto: regress_fit where the regressor was "
                  "trained for the config's model, texture model, identity network and canvas, fit otherwise "
                  "(default: --config.mode).")
flags.DEFINE_list("export", None, "Mesh and page files to write, comma-separated, from obj, glb, ply, arkit, html "
                  "(default: all, --config.export); report.json, params.* and the pictures are always written.")
flags.DEFINE_bool("overwrite", False, "--image/--images: replace results in --out. Datasets: refit every photo "
                  "(ignore the manifest).")
flags.DEFINE_string("face", "largest", "Which face when a photo has several: 'largest', 'center' (nearest the "
                    "photo's centre), an index (0 = largest) or, with --image, 'all' (every face into "
                    "OUT/face_K/).")
flags.DEFINE_string("landmarks", None, "--image only: a 68-point landmark file (.pts 1-based, .json, .npy; "
                    "photo pixels) used instead of detection.")
flags.DEFINE_string("face_box", None, "--image only: x,y,w,h; fit the detected face nearest this box.")
flags.DEFINE_bool("retry_failed", False, "Datasets: also refit photos that failed for a bad input.")
flags.DEFINE_bool("dry_run", False, "Datasets: print what would be done (new, finished, failed) and exit.")
flags.DEFINE_integer("workers", 2, "Datasets: host threads loading and detecting photos.")
flags.DEFINE_integer("num_devices", None, "Datasets: shard each batch over this many local devices "
                     "(default: all).")
flags.DEFINE_string("coordinator_address", None, "Multi-process datasets: HOST:PORT of process 0 "
                    "(jax.distributed); give the same to every process.")
flags.DEFINE_integer("num_processes", 1, "Multi-process datasets: how many processes share the job.")
flags.DEFINE_integer("process_id", 0, "Multi-process datasets: this process's index, 0..num_processes-1.")


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
    shown = [f"{label} {aux[k]:.3f}" for k, label in (("loss", "loss"), ("identity", "id"), ("pixel", "pix"))
             if k in aux]  # the regressor's prediction may be evaluated without the image terms
    self.bar.set_postfix_str(" ".join([aux["stage"]] + shown + [f"lm {aux['landmark_rmse_px']:.1f}px"]),
                             refresh=True)
    if i >= n:
      self.bar.close()


def _select():
  return int(FLAGS.face) if FLAGS.face.isdigit() else FLAGS.face


class ConfigError(ValueError):
  """A config value the library refuses (negative steps, a NaN weight, ...); exit 2."""

  exit_code = 2


def _reconstructor(cls):
  """The Reconstructor of --config; a value it refuses is the user's flag, not a crash."""
  from ganfit_jax import assets
  try:
    rec = cls(FLAGS.config)
    for note in (rec.layout_note(), rec.mode_note):
      if note:
        print(f"warning: {note}", file=sys.stderr)
    return rec
  except assets.AssetError:
    raise  # a missing or corrupt model file: exit 3
  except (ValueError, TypeError) as e:
    raise ConfigError(f"--config: {_message(e)} (configs/fit.py documents every field)") from e


def run_photos():
  """--image / --images."""
  from ganfit_jax.reconstruct import Reconstructor
  out = FLAGS.out
  sources = [FLAGS.image] if FLAGS.image else list(FLAGS.images)
  rec = _reconstructor(Reconstructor)
  prepared = []
  for src in ([] if FLAGS.face == "all" else sources):
    p = rec.prepare(src, _select(), landmarks=FLAGS.landmarks, face_box=FLAGS.face_box)
    if p.num_faces > 1 and FLAGS.face_box is None:
      print(f"note: {p.num_faces} faces in {src}; fitting the largest (choose with --face=INDEX or --face_box)")
    prepared.append(p)
  if FLAGS.image and FLAGS.face == "all":  # every face of the photo, fitted together (independent)
    faces = rec.prepare_faces(FLAGS.image)
    rec.prefetch_outputs(faces[0])  # the outputs' programs get ready while the fit runs
    results = rec.fit(faces, [FLAGS.image] * len(faces), progress=_Progress(f"{len(faces)} faces"))
    os.makedirs(out, exist_ok=True)
    for k, r in enumerate(results):
      rec.write(r, os.path.join(out, f"face_{k}"))
    print(f"wrote {len(results)} faces of {FLAGS.image} to {out}/face_0 .. face_{len(results) - 1} (largest first)")
    return
  rec.prefetch_outputs(prepared[0])  # the outputs' programs get ready while the fit runs
  if FLAGS.image:
    (r,) = rec.fit(prepared, sources, progress=_Progress("fit"))
    report = rec.write(r, out)
    print(f"wrote {out}: identity cosine {report['identity_cosine_photo_vs_render']:.3f}, landmark RMSE "
          f"{r.final['landmark_rmse_px']:.2f}px, fit {r.seconds:.1f}s")
    return
  os.makedirs(out, exist_ok=True)
  taken = set()
  results = rec.fit(prepared, sources, shared_identity=True, progress=_Progress(f"{len(prepared)} photos"))
  for r in results:
    rec.write(r, os.path.join(out, _stem(r.source, taken)))
  rec.write(results[0], os.path.join(out, "identity"))  # shared shape/texture (+ the first photo's pose)
  summary = dict(identity=dict(shape_texture_shared=True, photos=sources),
                 per_image={r.source: dict(landmark_rmse_px=round(r.final["landmark_rmse_px"], 3))
                            for r in results})
  tmp = os.path.join(out, "summary.json.partial")
  with open(tmp, "w") as f:
    json.dump(summary, f, indent=1)
  os.replace(tmp, os.path.join(out, "summary.json"))
  print(f"wrote {len(results)} results and identity/ to {out}")


def run_dataset():
  """--input_dir / --input_list (ganfit_jax.jobs)."""
  from ganfit_jax.jobs import inputs, run
  n, pid = FLAGS.num_processes, FLAGS.process_id
  items = inputs.from_dir(FLAGS.input_dir) if FLAGS.input_dir else inputs.from_list(FLAGS.input_list)
  if not items:
    raise inputs.JobInputError(f"no images ({', '.join(inputs.IMAGE_EXTS)}) under {FLAGS.input_dir}")
  mine = inputs.share(items, pid, n)
  if FLAGS.dry_run:
    c = run.dry_run(mine, FLAGS.out, FLAGS.retry_failed, FLAGS.overwrite)
    who = f"process {pid} of {n}: " if n > 1 else ""
    print(f"{who}{len(mine)} photos: {c['new']} new, {c['finished']} finished, {c['failed']} failed "
          f"({c['retried']} would be retried{'' if FLAGS.retry_failed else '; --retry_failed retries bad inputs'})")
    return
  if n > 1:
    run.initialize_distributed(FLAGS.coordinator_address, n, pid)
  import jax
  local = len(jax.local_devices())
  if FLAGS.num_devices is not None and not 1 <= FLAGS.num_devices <= local:
    raise inputs.JobInputError(f"--num_devices={FLAGS.num_devices}: this process has {local} device(s)")
  from ganfit_jax.reconstruct import Reconstructor
  rec = _reconstructor(Reconstructor)
  mesh = run.local_mesh(FLAGS.num_devices)
  c = run.run(rec, mine, FLAGS.out, batch_size=int(FLAGS.config.batch_size), mesh=mesh, process_id=pid,
              num_processes=n, retry_failed=FLAGS.retry_failed, refit=FLAGS.overwrite, workers=FLAGS.workers,
              select=_select())
  if n > 1:
    run.barrier("ganfit_jax_dataset_done")
    if pid == 0:  # every process has finished: the merged summary
      from ganfit_jax.jobs import manifest
      manifest.write_summary(FLAGS.out, manifest.read(FLAGS.out))
  print(f"{FLAGS.out}: {c['done']} fitted, {c['failed']} failed, {c['skipped']} already finished or skipped "
        f"(manifest, summary.csv)")


def check_flags():
  """A message for the first thing wrong with the flags, or None."""
  given = [x for x in (FLAGS.image, FLAGS.images, FLAGS.input_dir, FLAGS.input_list) if x]
  if len(given) != 1 or not FLAGS.out:
    return "give exactly one of --image, --images, --input_dir, --input_list, and --out"
  dataset = bool(FLAGS.input_dir or FLAGS.input_list)
  if os.path.exists(FLAGS.out) and not os.path.isdir(FLAGS.out):
    return f"--out={FLAGS.out} is a file; give a folder"
  if not dataset and os.path.exists(FLAGS.out) and os.listdir(FLAGS.out) and not FLAGS.overwrite:
    return f"{FLAGS.out} already holds files; pass --overwrite or choose another --out"
  for p in ([FLAGS.image] if FLAGS.image else FLAGS.images or []):
    if not os.path.isfile(p):
      return f"{p} does not exist or is not a file"
  if (FLAGS.landmarks or FLAGS.face_box) and not FLAGS.image:
    return "--landmarks and --face_box apply to --image; for datasets give them as columns of --input_list"
  if FLAGS.input_dir and not os.path.isdir(FLAGS.input_dir):
    return f"--input_dir={FLAGS.input_dir} is not a folder"
  if FLAGS.input_list and not os.path.isfile(FLAGS.input_list):
    return f"--input_list={FLAGS.input_list} does not exist or is not a file"
  if not dataset and (FLAGS.num_processes != 1 or FLAGS.dry_run or FLAGS.retry_failed):
    return "--num_processes, --dry_run and --retry_failed apply to --input_dir / --input_list"
  if FLAGS.num_processes < 1 or not 0 <= FLAGS.process_id < FLAGS.num_processes:
    return f"--process_id={FLAGS.process_id} must be in 0..{FLAGS.num_processes - 1} (--num_processes)"
  if FLAGS.num_processes > 1 and not FLAGS.coordinator_address and not FLAGS.dry_run:
    return "--num_processes > 1 needs --coordinator_address=HOST:PORT (process 0's host), the same for all"
  from ganfit_jax import face
  if not (FLAGS.face.isdigit() or FLAGS.face in face.SELECTIONS):
    return f"--face={FLAGS.face!r}: use 'largest', 'center', 'all' or a face index (0 = largest)"
  if FLAGS.face == "all" and not FLAGS.image:
    return "--face=all applies to --image; for datasets list one row per face with a face_box column"
  if FLAGS.face == "all" and (FLAGS.landmarks or FLAGS.face_box):
    return "--face=all fits every detected face; it does not combine with --landmarks or --face_box"
  if FLAGS.workers < 1:
    return f"--workers={FLAGS.workers} must be >= 1"
  if FLAGS.mode is not None:
    FLAGS.config.mode = FLAGS.mode
  if FLAGS.export is not None:
    from ganfit_jax.reconstruct import parse_exports
    try:
      FLAGS.config.export = ",".join(parse_exports(FLAGS.export))
    except ValueError as e:
      return f"--export: {e}"
  if int(FLAGS.config.batch_size) < 1:
    return f"--config.batch_size={FLAGS.config.batch_size} must be >= 1"
  return None


def main(argv):
  del argv
  from ganfit_jax import runtime
  runtime.configure()
  from ganfit_jax import assets, face
  from ganfit_jax.jobs import inputs
  problem = check_flags()
  if problem:
    print(f"error: {problem}", file=sys.stderr)
    return 2
  try:
    if FLAGS.input_dir or FLAGS.input_list:
      run_dataset()
    else:
      run_photos()
  except (face.FaceInputError, inputs.JobInputError, ConfigError) as e:
    print(f"error: {e}", file=sys.stderr)
    return e.exit_code
  except assets.AssetError as e:
    print(f"error: {e}", file=sys.stderr)
    return 3
  return 0


def parse_flags(argv):
  """absl's parser with a user's view: --help exits 0, a bad flag or --config field exits 2 with one line."""
  if any(a in ("-h", "-?", "--help", "--helpshort", "--helpfull") for a in argv[1:]):
    print(__doc__)
    print(FLAGS.main_module_help())
    sys.exit(0)
  try:
    return FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    print(f"error: {_message(e)}; {HINT}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
