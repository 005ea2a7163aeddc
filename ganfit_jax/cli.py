"""The main job's command line: ``python tools/fit.py`` and the console script ``ganfit-fit`` run :func:`main`.

  python tools/fit.py --image=examples/astronaut.jpg --out=out/astronaut
  python tools/fit.py --images=a.jpg,b.jpg,c.jpg --out=out/person        # one person, several photos
  python tools/fit.py --image=x.jpg --out=o --config=configs/fit.py:paper # the paper's schedule
  python tools/fit.py --image=x.jpg --landmarks=x.pts --out=o             # your landmarks: no detection
  python tools/fit.py --image=group.jpg --face_box=120,80,200,200 --out=o # the face nearest this box
  python tools/fit.py --video=clip.mp4 --out=out/clip                     # a video of one person

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
--images (and each person of --input_list) also writes identity/ (the shared neutral face). Every input
but a single --image also writes manifest.jsonl (one line per photo; manifest.P.jsonl per process),
summary.csv and index.html (every photo, linked); rerunning a dataset command skips finished photos.
Exit codes: 0 ok, 2 bad input (the message says why and what to do), 3 missing asset.
Nothing is left half-written in --out: each result folder is built aside and renamed into place.

Every path in (one photo, one person's photos, a folder, a list) becomes :class:`ganfit_jax.jobs.inputs.Item`
s run by :func:`ganfit_jax.jobs.run.run`. In a program: build a :class:`Request` and a config and call
:func:`execute` (what the tests do), or parse a command line with :func:`parse`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import shutil
import sys
from typing import List, Optional, Tuple

from absl import flags

HINT = "see python tools/fit.py --help (and configs/fit.py for the --config fields)"
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "fit.py")


class UsageError(ValueError):
  """A command line the job cannot run (a bad flag, a bad --config value, a wrong combination); exit 2."""

  exit_code = 2


class ConfigError(UsageError):
  """A config value the library refuses (negative steps, a NaN weight, ...); exit 2."""


@dataclasses.dataclass
class Request:
  """The flags of one run of the main job (see :func:`define_flags` for each one's meaning)."""
  out: Optional[str] = None
  image: Optional[str] = None
  images: Optional[List[str]] = None
  input_dir: Optional[str] = None
  input_list: Optional[str] = None
  video: Optional[str] = None
  frames: Optional[str] = None
  max_frames: Optional[int] = None
  keyframes: int = 5
  mode: Optional[str] = None
  export: Optional[List[str]] = None
  overwrite: bool = False
  face: str = "largest"
  landmarks: Optional[str] = None
  face_box: Optional[str] = None
  retry_failed: bool = False
  dry_run: bool = False
  workers: int = 2
  num_devices: Optional[int] = None
  coordinator_address: Optional[str] = None
  num_processes: int = 1
  process_id: int = 0

  @property
  def dataset(self) -> bool:
    return bool(self.input_dir or self.input_list)


def define_flags(fv: flags.FlagValues = flags.FLAGS, argv: Optional[List[str]] = None) -> None:
  """Defines the main job's flags (and ``--config``) on ``fv``. ``argv``: the command line they will parse
  (ml_collections defines the ``--config.FIELD`` override flags it finds there; default ``sys.argv``)."""
  from ml_collections import config_flags
  config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Fitting preset: configs/fit.py:fast (default), :paper "
                                  "or :tiny; override any field with --config.FIELD=VALUE.", flag_values=fv,
                                  sys_argv=None if argv is None else list(argv))
  d = dict(flag_values=fv)
  flags.DEFINE_string("image", None, "One photo to reconstruct.", **d)
  flags.DEFINE_list("images", None, "Several photos of ONE person (comma-separated): shared shape and texture.", **d)
  flags.DEFINE_string("input_dir", None, "A folder of photos (searched recursively), each fitted on its own.", **d)
  flags.DEFINE_string("input_list", None, "A CSV (header: path[,person,landmarks,face_box]) or JSON-lines list of "
                      "photos; photos with the same person share shape and texture; relative paths are relative "
                      "to the list's folder.", **d)
  flags.DEFINE_string("video", None, "A video of ONE person (any container/codec OpenCV's FFmpeg reads): one shared "
                      "identity from --keyframes frames, then pose and expression per frame (frames.npz, frames.csv, "
                      "arkit52.csv, identity/).", **d)
  flags.DEFINE_string("frames", None, "--video: START:STOP:STEP of the frames to read (each optional; e.g. 0:300:2).",
                      **d)
  flags.DEFINE_integer("max_frames", None, "--video: read at most this many frames.", **d)
  flags.DEFINE_integer("keyframes", 5, "--video: frames (spread over the clip, sharp and frontal) fitted together "
                       "for the identity.", **d)
  flags.DEFINE_string("out", None, "Output folder.", **d)
  flags.DEFINE_string("mode", None, "fit: GANFit (optimise from the mean face); regress: Fast-GANFit (the "
                      "regressor's prediction, no optimisation); regress_fit: GANFit++ (the prediction starts a fit "
                      "of a third of the steps); auto: regress_fit where the regressor was trained for the config's "
                      "model, texture model, identity network and canvas, fit otherwise (default: --config.mode).", **d)
  flags.DEFINE_list("export", None, "Mesh and page files to write, comma-separated, from obj, glb, ply, arkit, html "
                    "(default: all, --config.export); report.json, params.* and the pictures are always written.", **d)
  flags.DEFINE_bool("overwrite", False, "--image/--images: replace results in --out. Datasets: refit every photo "
                    "(ignore the manifest).", **d)
  flags.DEFINE_string("face", "largest", "Which face when a photo has several: 'largest', 'center' (nearest the "
                      "photo's centre), an index (0 = largest) or, with --image, 'all' (every face into "
                      "OUT/face_K/).", **d)
  flags.DEFINE_string("landmarks", None, "--image only: a 68-point landmark file (.pts 1-based, .json, .npy; "
                      "photo pixels) used instead of detection.", **d)
  flags.DEFINE_string("face_box", None, "--image only: x,y,w,h; fit the detected face nearest this box.", **d)
  flags.DEFINE_bool("retry_failed", False, "Datasets: also refit photos that failed for a bad input.", **d)
  flags.DEFINE_bool("dry_run", False, "Datasets: print what would be done (new, finished, failed) and exit.", **d)
  flags.DEFINE_integer("workers", 2, "Datasets: host threads loading and detecting photos.", **d)
  flags.DEFINE_integer("num_devices", None, "Datasets: shard each batch over this many local devices "
                       "(default: all).", **d)
  flags.DEFINE_string("coordinator_address", None, "Multi-process datasets: HOST:PORT of process 0 "
                      "(jax.distributed); give the same to every process.", **d)
  flags.DEFINE_integer("num_processes", 1, "Multi-process datasets: how many processes share the job.", **d)
  flags.DEFINE_integer("process_id", 0, "Multi-process datasets: this process's index, 0..num_processes-1.", **d)


def message(e: Exception) -> str:
  """One line: a parser's message without the traceback text ml_collections puts inside it."""
  lines = [x.strip() for x in str(e).splitlines() if x.strip()]
  m = f"{lines[0]} {lines[-1]}" if len(lines) > 1 else (lines[0] if lines else type(e).__name__)
  return m[1:-1] if len(m) > 1 and m[0] == m[-1] and m[0] in "'\"" else m


def parse(argv: List[str], fv: Optional[flags.FlagValues] = None) -> Tuple[Request, object]:
  """(Request, config) of a command line (``argv[0]`` is the program); a bad flag or ``--config`` value raises
  :class:`UsageError` with one line naming it. ``fv``: flags already defined by :func:`define_flags` for this
  ``argv`` (default: a fresh set)."""
  if fv is None:
    fv = flags.FlagValues()
    try:
      define_flags(fv, argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:  # a --config.FIELD override
      raise UsageError(f"--config: {message(e)}; {HINT}") from e
  try:
    fv(argv)
    cfg = fv["config"].value
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    raise UsageError(f"{message(e)}; {HINT}") from e
  fields = {f.name for f in dataclasses.fields(Request)}
  return Request(**{k: fv[k].value for k in fields}), cfg


def check(req: Request, cfg) -> Optional[str]:
  """A message for the first thing wrong with a request, or None; applies ``--mode`` / ``--export`` to
  ``cfg``."""
  given = [x for x in (req.image, req.images, req.input_dir, req.input_list, req.video) if x]
  if len(given) != 1 or not req.out:
    return "give exactly one of --image, --images, --input_dir, --input_list, --video, and --out"
  if not req.video and (req.frames or req.max_frames is not None or req.keyframes != 5):
    return "--frames, --max_frames and --keyframes apply to --video"
  if req.video:
    if not os.path.isfile(req.video):
      return f"--video={req.video} does not exist or is not a file"
    if req.max_frames is not None and req.max_frames < 1:
      return f"--max_frames={req.max_frames} must be >= 1"
    if req.keyframes < 1:
      return f"--keyframes={req.keyframes} must be >= 1"
    v = cfg.video
    for name, low in (("batch", 1), ("track_steps", 1), ("smooth_frames", 0), ("photometric_steps", 0),
                      ("sparse_expression", 0)):
      x = float(v[name])
      if not (math.isfinite(x) and x >= low) or (low == 1 and x != int(x)):
        return (f"--config.video.{name}={v[name]} must be " + ("an integer >= 1" if low == 1 else "finite and >= 0")
                + " (configs/fit.py documents every field)")
    from ganfit_jax.video import decode
    try:
      decode.parse_range(req.frames)
    except decode.VideoInputError as e:
      return str(e)
  if os.path.exists(req.out) and not os.path.isdir(req.out):
    return f"--out={req.out} is a file; give a folder"
  if not req.dataset and os.path.exists(req.out) and os.listdir(req.out) and not req.overwrite:
    return f"{req.out} already holds files; pass --overwrite or choose another --out"
  for p in ([req.image] if req.image else req.images or []):
    if not os.path.isfile(p):
      return f"{p} does not exist or is not a file"
  if (req.landmarks or req.face_box) and not req.image:
    return "--landmarks and --face_box apply to --image; for datasets give them as columns of --input_list"
  if req.input_dir and not os.path.isdir(req.input_dir):
    return f"--input_dir={req.input_dir} is not a folder"
  if req.input_list and not os.path.isfile(req.input_list):
    return f"--input_list={req.input_list} does not exist or is not a file"
  if not req.dataset and (req.num_processes != 1 or req.dry_run or req.retry_failed):
    return "--num_processes, --dry_run and --retry_failed apply to --input_dir / --input_list"
  if req.num_processes < 1 or not 0 <= req.process_id < req.num_processes:
    return f"--process_id={req.process_id} must be in 0..{req.num_processes - 1} (--num_processes)"
  if req.num_processes > 1 and not req.coordinator_address and not req.dry_run:
    return "--num_processes > 1 needs --coordinator_address=HOST:PORT (process 0's host), the same for all"
  from ganfit_jax.face.detect import SELECTIONS
  if not (req.face.isdigit() or req.face in SELECTIONS):
    return f"--face={req.face!r}: use 'largest', 'center', 'all' or a face index (0 = largest)"
  if req.face == "all" and not req.image:
    return "--face=all applies to --image; for datasets list one row per face with a face_box column"
  if req.face == "all" and (req.landmarks or req.face_box):
    return "--face=all fits every detected face; it does not combine with --landmarks or --face_box"
  if req.workers < 1:
    return f"--workers={req.workers} must be >= 1"
  from ganfit_jax.regressor import MODES
  if req.mode is not None:
    if req.mode not in MODES:
      return f"--mode={req.mode}: choose one of {', '.join(MODES)}"
    cfg.mode = req.mode
  if req.export is not None:
    from ganfit_jax.outputs.writer import parse_exports
    try:
      cfg.export = ",".join(parse_exports(req.export))
    except ValueError as e:
      return f"--export: {e}"
  if int(cfg.batch_size) < 1:
    return f"--config.batch_size={cfg.batch_size} must be >= 1"
  return None


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


def reconstructor(cfg, err=None):
  """The Reconstructor of a config; a value it refuses is a :class:`ConfigError` (the user's flag, not a crash),
  a missing or corrupt file an :class:`ganfit_jax.assets.AssetError`. Warnings (texture layout, ``auto``'s
  fallback) go to ``err``."""
  from ganfit_jax import assets
  from ganfit_jax.reconstruct import Reconstructor
  try:
    rec = Reconstructor(cfg)
  except assets.AssetError:
    raise  # a missing or corrupt model file: exit 3
  except (ValueError, TypeError, AttributeError) as e:
    raise ConfigError(f"--config: {message(e)} (configs/fit.py documents every field)") from e
  for note in (rec.layout_note(), rec.mode_note):
    if note:
      print(f"warning: {note}", file=err or sys.stderr)
  return rec


def _select(req: Request):
  return int(req.face) if req.face.isdigit() else req.face


def run_photos(req: Request, cfg, rec=None, out=None, err=None) -> None:
  """--image / --images (strict: a bad photo is an error and nothing is written)."""
  from ganfit_jax.jobs import inputs, run
  out, err = out or sys.stdout, err or sys.stderr
  rec = rec or reconstructor(cfg, err)
  if req.image and req.face == "all":  # every face of the photo, each its own result
    items = inputs.from_faces(req.image, len(rec.prepare_faces(req.image)))
  else:
    items = inputs.from_photos([req.image] if req.image else list(req.images), shared_identity=not req.image,
                               landmarks=req.landmarks, face_box=req.face_box)
  single = len(items) == 1 and items[0].out == ""
  # a batch no larger than the photos given (a dataset's batch size would pad one photo to several)
  batch = max(1, min(int(cfg.batch_size), len(items)))
  c = run.run(rec, items, req.out, batch_size=batch, select=_select(req), refit=True, strict=True,
              book=not single, progress=False, fit_progress=_Progress)
  recs = c["records"]
  if single:
    r = recs[0]
    if (r.get("faces_detected") or 1) > 1 and req.face_box is None:
      print(f"note: {r['faces_detected']} faces in {req.image}; fitted the {req.face} (choose with --face=INDEX or "
            "--face_box)", file=out)
    print(f"wrote {req.out}: identity cosine {r['identity_cosine']:.3f}, landmark RMSE {r['landmark_rmse_px']:.2f}px, "
          f"fit {r['fit_seconds']:.1f}s", file=out)
  elif req.face == "all":
    print(f"wrote {len(recs)} faces of {req.image} to {req.out}/face_0 .. face_{len(recs) - 1} (largest first)",
          file=out)
  else:
    print(f"wrote {len(recs)} results and identity/ to {req.out} (summary.csv)", file=out)


def run_video(req: Request, cfg, out=None, err=None) -> None:
  """--video (:mod:`ganfit_jax.video`): the whole output folder is built aside and renamed into place."""
  from ganfit_jax.files import atomic_dir
  from ganfit_jax.outputs import images
  from ganfit_jax.video import clip as clip_lib, decode, files, overlay
  out, err = out or sys.stdout, err or sys.stderr
  rec = reconstructor(cfg, err)
  from tqdm import tqdm
  bars = {}

  def progress(phase, n):
    if phase not in bars:
      for b in bars.values():
        b.close()
      desc = {"track": "tracking", "identity": "identity from keyframes", "frames": "fitting frames",
              "overlay": "overlay video"}[phase]
      bars[phase] = tqdm(desc=desc, unit="keyframe" if phase == "identity" else "frame", mininterval=1.0, file=err)
    bars[phase].update(n - bars[phase].n)

  # the work in progress lives beside --out until the clip's folder is complete: a rerun after a kill
  # continues from it (clip_lib.State); a bad input removes it
  state_dir = os.path.join(os.path.dirname(os.path.abspath(req.out)), f".{os.path.basename(os.path.abspath(req.out))}"
                           ".video-state")
  v = cfg.video
  settings = dict(frames=req.frames, max_frames=req.max_frames, keyframes=req.keyframes, batch=int(v.batch),
                  steps=int(v.track_steps),
                  config=hashlib.sha256(cfg.to_json_best_effort(sort_keys=True).encode()).hexdigest())
  state = clip_lib.State(state_dir, clip_lib.state_key(req.video, **settings))
  identity_dir = os.path.join(state_dir, "identity")
  try:
    c = clip_lib.fit_clip(rec, req.video, frames=req.frames, max_frames=req.max_frames, keyframes=req.keyframes,
                          batch=int(v.batch), steps=int(v.track_steps), smooth_frames=float(v.smooth_frames),
                          photometric_steps=int(v.photometric_steps), progress=progress, state=state,
                          on_identity=lambda results: rec.write(results[0], identity_dir))
  except decode.VideoInputError:
    shutil.rmtree(state_dir, ignore_errors=True)
    raise
  for b in bars.values():
    b.close()
  if c.resumed:
    print(f"resumed: {c.resumed} of {int(c.found.sum())} frames were fitted by an earlier, interrupted run",
          file=err)
  with atomic_dir(req.out) as tmp:
    shutil.copytree(identity_dir, os.path.join(tmp, "identity"))
    tables = files.write(tmp, c, rec.scene.model)
    with open(os.path.join(tmp, "identity", "texture.png"), "rb") as fh:
      texture_png = fh.read()
    files.write_animation(os.path.join(tmp, "animation.glb"), c, rec.scene.model, texture_png, tables)
    page = "html" in rec.writer.exports
    videos = [os.path.join(tmp, "overlay.mp4")] + ([os.path.join(tmp, "overlay.webm")] if page else [])
    overlay.write(videos, rec, c, images.decode_png(texture_png), req.video, frames=req.frames,
                  max_frames=req.max_frames, batch=int(v.batch), progress=progress)
    for b in bars.values():
      b.close()
    if page:
      files.write_page(tmp, c, req.video, tables)
  shutil.rmtree(state_dir, ignore_errors=True)
  print(f"wrote {req.out}: {int(c.found.sum())} of {len(c.found)} frames with a face, identity from "
        f"{len(c.keyframes)} keyframes (frames.npz, frames.csv, arkit52.csv, animation.glb, overlay.mp4, "
        f"{'overlay.webm, index.html, ' if page else ''}identity/)", file=out)


def run_dataset(req: Request, cfg, out=None, err=None) -> None:
  """--input_dir / --input_list (ganfit_jax.jobs)."""
  from ganfit_jax.jobs import inputs, run
  out, err = out or sys.stdout, err or sys.stderr
  n, pid = req.num_processes, req.process_id
  items = inputs.from_dir(req.input_dir) if req.input_dir else inputs.from_list(req.input_list)
  if not items:
    raise inputs.JobInputError(f"no images ({', '.join(inputs.IMAGE_EXTS)}) under {req.input_dir}")
  mine = inputs.share(items, pid, n)
  if req.dry_run:
    c = run.dry_run(mine, req.out, req.retry_failed, req.overwrite)
    who = f"process {pid} of {n}: " if n > 1 else ""
    print(f"{who}{len(mine)} photos: {c['new']} new, {c['finished']} finished, {c['failed']} failed "
          f"({c['retried']} would be retried{'' if req.retry_failed else '; --retry_failed retries bad inputs'})",
          file=out)
    return
  if n > 1:
    run.initialize_distributed(req.coordinator_address, n, pid)
  import jax
  local = len(jax.local_devices())
  if req.num_devices is not None and not 1 <= req.num_devices <= local:
    raise inputs.JobInputError(f"--num_devices={req.num_devices}: this process has {local} device(s)")
  rec = reconstructor(cfg, err)
  c = run.run(rec, mine, req.out, batch_size=int(cfg.batch_size), mesh=run.local_mesh(req.num_devices),
              process_id=pid, num_processes=n, retry_failed=req.retry_failed, refit=req.overwrite,
              workers=req.workers, select=_select(req))
  if n > 1:
    run.barrier("ganfit_jax_dataset_done")
    if pid == 0:  # every process has finished: the merged summary
      from ganfit_jax.jobs import manifest
      manifest.write_summary(req.out, manifest.read(req.out))
  print(f"{req.out}: {c['done']} fitted, {c['failed']} failed, {c['skipped']} already finished or skipped "
        f"(manifest, summary.csv)", file=out)


def execute(req: Request, cfg, out=None, err=None) -> int:
  """Runs a request; returns the exit code (messages for the user's mistakes go to ``err``, never a
  traceback): 0 ok, 2 bad input or flag, 3 missing or corrupt asset."""
  from ganfit_jax import assets, face
  from ganfit_jax.jobs import inputs
  err = err or sys.stderr
  problem = check(req, cfg)
  if problem:
    print(f"error: {problem}", file=err)
    return 2
  try:
    if req.dataset:
      run_dataset(req, cfg, out, err)
    elif req.video:
      run_video(req, cfg, out, err)
    else:
      run_photos(req, cfg, out=out, err=err)
  except (face.FaceInputError, inputs.JobInputError, UsageError) as e:
    print(f"error: {e}", file=err)
    return e.exit_code
  except assets.AssetError as e:
    print(f"error: {e}", file=err)
    return 3
  return 0


def main(argv: Optional[List[str]] = None) -> int:
  """The command line (``argv`` default ``sys.argv``): --help exits 0, a bad flag or --config field exits 2
  with one line; otherwise :func:`execute`."""
  argv = list(sys.argv if argv is None else argv)
  fv = flags.FLAGS  # absl's own flags (--verbosity, ...) live here
  try:
    if "out" not in fv:
      define_flags(fv, argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    print(f"error: --config: {message(e)}; {HINT}", file=sys.stderr)
    return 2
  if any(a in ("-h", "-?", "--help", "--helpshort", "--helpfull") for a in argv[1:]):
    print(__doc__)
    print(fv.module_help(__name__))
    return 0
  try:
    req, cfg = parse(argv, fv)
  except UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  from ganfit_jax import runtime
  runtime.configure()
  return execute(req, cfg)


def console() -> None:
  """The ``ganfit-fit`` console script."""
  sys.exit(main())


__all__ = ["Request", "UsageError", "ConfigError", "define_flags", "parse", "check", "execute", "main",
           "reconstructor", "run_photos", "run_dataset"]
