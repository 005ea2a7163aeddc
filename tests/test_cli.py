"""The main job's command line (ganfit_jax.cli, tools/fit.py): outputs of a fit, one person's photos, every face
of a photo, modes, every class of bad input and bad flag.

Run in process (conftest.run_cli: the parser, the checks, the loaders and the job itself, sharing compiled
programs); a few child processes are the witnesses that the real command behaves the same (--help, a bad flag,
a corrupt cached asset; the dataset tests of test_jobs.py run the real command too).
"""

import json
import os

import numpy as np
import pytest

from conftest import ROOT, TINY, lfw_photo, run_cli, run_tool
from ganfit_jax import cli


# ----------------------------------------------------------------------------- one photo

def test_one_photo_writes_every_file(tiny_fit):
  out, r = tiny_fit
  assert "another UV layout" not in r.err  # the shipped texture models are in ICT-FaceKit's layout
  assert r.out.startswith(f"wrote {out}: identity cosine") and "landmark RMSE" in r.out
  for name in ("mesh.obj", "mesh.mtl", "texture.png", "mesh_neutral.obj", "mesh.glb", "params.npz",
               "params.json", "overlay.png", "render.png", "comparison.png", "convergence.png", "report.json"):
    assert (out / name).exists() and (out / name).stat().st_size > 0, name
  assert not (out / "manifest.jsonl").exists()  # one photo: the folder is the result, nothing else
  rep = json.loads((out / "report.json").read_text())
  assert len(rep["landmarks_photo_px"]) == 68 and len(rep["landmarks_3d_mm"]) == 68
  lm = np.array(rep["landmarks_photo_px"])
  assert lm[:, 0].min() > 0 and lm[:, 0].max() < 250  # mapped back onto the 250 px photo
  assert -1.0 <= rep["identity_cosine_photo_vs_render"] < 0.999
  assert set(rep["final_loss_terms"]) >= {"identity", "identity_hat", "content", "pixel", "landmark"}
  assert set(rep["assets"]) == {"ict", "texture_gan", "sface", "dlib_landmarks68", "yunet", "facemesh"}
  # report.json's keys, in their documented order (users read them)
  assert list(rep) == ["source", "preset", "mode", "shared_identity_with", "final_loss_terms",
                       "identity_cosine_photo_vs_render", "identity_cosine_note", "identity_net", "texture_model",
                       "model", "texture_detail", "texture_size", "landmarks_photo_px", "landmarks_3d_mm",
                       "faces_detected", "photo_size", "timings_s", "steps", "inits", "assets", "exports", "versions"]
  from ganfit_jax.outputs import report
  assert report.read(str(out / "report.json")).landmark_rmse_px == rep["final_loss_terms"]["landmark_rmse_px"]
  params = json.loads((out / "params.json").read_text())
  assert "jawOpen" in params["expression"] and len(params["camera"]["position"]) == 3
  assert "map_Kd texture.png" in (out / "mesh.mtl").read_text()
  obj_text = (out / "mesh.obj").read_text()
  assert obj_text.startswith("# ganfit_jax") and "mtllib mesh.mtl" in obj_text
  import cv2
  assert cv2.imread(str(out / "comparison.png")).shape == (224, 5 * 224, 3)
  render = cv2.imread(str(out / "render.png"))[..., ::-1]
  assert render.shape == (250, 250, 3)  # the photo's size
  corner, centre = render[:20, :20].reshape(-1, 3), render[100:150, 100:150].reshape(-1, 3)
  assert np.abs(corner.astype(int) - 128).max() <= 1  # grey where there is no face
  assert np.abs(centre.astype(int) - 128).mean() > 10  # the face at its place in the photo
  import pygltflib
  glb = pygltflib.GLTF2().load(str(out / "mesh.glb"))
  assert glb.meshes[0].primitives[0].attributes.TEXCOORD_0 is not None and len(glb.images) == 1


def test_one_photo_is_fitted_alone(tmp_path, monkeypatch):
  """--image fits a batch of one photo (a dataset's batch size pads a batch with copies: not for one photo)."""
  from ganfit_jax.reconstruct import Reconstructor
  batches = []
  fit = Reconstructor._fit_batch  # the batch as compiled (after Reconstructor.fit's padding)
  monkeypatch.setattr(Reconstructor, "_fit_batch", lambda self, prepared, *a, **k: batches.append(len(prepared)) or
                      fit(self, prepared, *a, **k))
  r = run_cli([f"--image={lfw_photo('AJ_Cook')}", f"--out={tmp_path / 'o'}", "--config.batch_size=4",
               "--config.stages.full.steps=0", "--export=arkit"])
  assert r.code == 0, r.err[-2000:]
  assert batches == [1]


def test_convergence_plot_draws_every_weighted_term(tiny_fit):
  """The plot's panels are the objective's terms (one list, objective.TERMS), so a new term is never left out."""
  from ganfit_jax import objective
  from ganfit_jax.outputs import writer
  assert set(objective.TERMS) <= set(writer.PLOTTED)
  out, _ = tiny_fit
  weights = json.loads((out / "report.json").read_text())["final_loss_terms"]
  assert {"sparse_expression", "light_chroma"} <= set(weights)  # weighted in the fast and tiny presets


# ----------------------------------------------------------------------------- one person, several photos

def test_several_photos_of_one_person_and_a_photo_named_identity(tmp_path):
  """--images: one shared shape and texture, a folder per photo, identity/ for the shared face; a photo called
  identity.jpg keeps its own result (identity_photo/) instead of being overwritten by the shared face."""
  import shutil
  shutil.copy(lfw_photo("Aaron_Peirsol", 2), tmp_path / "identity.jpg")
  photos = [lfw_photo("Aaron_Peirsol", 1), str(tmp_path / "identity.jpg")]
  out = tmp_path / "person"
  r = run_cli([f"--images={','.join(photos)}", f"--out={out}", "--export=obj,arkit"])
  assert r.code == 0, r.err[-3000:]
  for d in ("Aaron_Peirsol_0001", "identity_photo", "identity"):  # --export: only the chosen mesh files
    assert (out / d / "mesh.obj").exists() and (out / d / "arkit52.json").exists(), d
    assert not any((out / d / n).exists() for n in ("mesh.glb", "mesh.ply", "index.html", "viewer"))
    assert (out / d / "report.json").exists() and (out / d / "overlay.png").exists()
  a = np.load(out / "Aaron_Peirsol_0001" / "params.npz")
  b = np.load(out / "identity_photo" / "params.npz")
  np.testing.assert_array_equal(a["shape"], b["shape"])  # shared identity
  np.testing.assert_array_equal(a["texture_latent"], b["texture_latent"])
  assert not np.array_equal(a["camera"], b["camera"])  # per-photo pose
  rep = json.loads((out / "identity_photo" / "report.json").read_text())
  assert rep["source"] == str(tmp_path / "identity.jpg")  # the photo's own result, not the shared face's
  ident = json.loads((out / "identity" / "report.json").read_text())
  assert sorted(ident["shared_identity_with"]) == sorted(photos)
  # the same summary as a dataset job: manifest.jsonl, summary.csv (one row per photo), index.html
  rows = (out / "summary.csv").read_text().splitlines()
  assert rows[0].startswith("key,status") and len(rows) == 3 and all(",done," in x for x in rows[1:])
  assert (out / "manifest.jsonl").exists() and (out / "index.html").exists() and not (out / "summary.json").exists()


def test_every_face_of_a_photo(tmp_path):
  import cv2
  a = cv2.imread(lfw_photo("AJ_Cook"))
  b = cv2.imread(lfw_photo("Aaron_Peirsol"))
  small = np.pad(cv2.resize(b, (200, 200)), ((0, 50), (0, 0), (0, 0)))
  cv2.imwrite(str(tmp_path / "two.png"), np.concatenate([a, small], 1))
  out = tmp_path / "faces"
  r = run_cli([f"--image={tmp_path / 'two.png'}", f"--out={out}", "--face=all", "--export=arkit"])
  assert r.code == 0, r.err[-3000:]
  left, right = (np.array(json.loads((out / f"face_{k}" / "report.json").read_text())["landmarks_photo_px"])
                 for k in (0, 1))
  assert left[:, 0].mean() < 250 < right[:, 0].mean()  # largest (left) first, each its own fit
  assert "wrote 2 faces" in r.out and (out / "summary.csv").exists()
  r = run_cli([f"--image={tmp_path / 'two.png'}", f"--out={tmp_path / 'x'}", "--face=7"])
  assert r.code == 2 and "has 2 face(s)" in r.err and not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- modes

def test_modes(tmp_path):
  """Fast-GANFit (regress) for one person's photos and GANFit++ (regress_fit) for one photo."""
  photos = [lfw_photo("Aaron_Peirsol", i) for i in (1, 2)]
  out = tmp_path / "reg"
  r = run_cli([f"--images={','.join(photos)}", f"--out={out}", "--mode=regress", "--export=arkit"])
  assert r.code == 0, r.err[-3000:]
  a, b = (np.load(out / f"Aaron_Peirsol_000{i}" / "params.npz") for i in (1, 2))
  np.testing.assert_array_equal(a["shape"], b["shape"])  # the per-photo predictions' identity, averaged
  assert not np.array_equal(a["camera"], b["camera"])
  rep = json.loads((out / "Aaron_Peirsol_0001" / "report.json").read_text())
  assert rep["mode"] == "regress" and rep["steps"] == {"regress": 0} and "regressor" in rep["assets"]
  terms = rep["final_loss_terms"]
  assert np.isfinite(terms["landmark_rmse_px"]) and np.isfinite(terms["landmark"])
  assert "identity" not in terms and "loss" not in terms and "regress_loss_terms" in rep["final_loss_terms_note"]
  out = tmp_path / "plus"
  r = run_cli([f"--image={photos[0]}", f"--out={out}", "--mode=regress_fit", "--export=arkit"])
  assert r.code == 0, r.err[-3000:]
  rep = json.loads((out / "report.json").read_text())
  assert rep["mode"] == "regress_fit" and rep["steps"] == {"align": 7, "full": 1}  # a third of tiny's 20 + 4
  assert "identity" in rep["final_loss_terms"] and "final_loss_terms_note" not in rep
  r = run_cli([f"--image={photos[0]}", f"--out={tmp_path / 'x'}", "--mode=magic"])
  assert r.code == 2 and "--mode=magic: choose one of auto, fit, regress, regress_fit" in r.err
  assert not (tmp_path / "x").exists()
  r = run_cli([f"--image={photos[0]}", f"--out={tmp_path / 'y'}", "--mode=regress", "--config.regressor=/nope.npz"])
  assert r.code == 3 and "regressor weights /nope.npz not found" in r.err


def test_converted_model_file(tmp_path):
  """--config.model=PATH.npz: any model file the converters write fits and writes end to end (here a tiny
  synthetic cube with its own UVs), with a warning that the shipped texture models are in another UV layout.
  The landmark stage only: the image terms on the cube run in the fitting tests (conftest.make_tiny_scene)."""
  from conftest import make_tiny_model
  from ganfit_jax import morphable
  morphable.save_npz(str(tmp_path / "cube.npz"), make_tiny_model())
  out = tmp_path / "res"
  r = run_cli([f"--image={lfw_photo('Aaron_Eckhart')}", f"--out={out}", f"--config.model={tmp_path / 'cube.npz'}",
               "--export=obj,glb,arkit", "--config.stages.full.steps=0"])
  assert r.code == 0, r.err[-3000:]
  assert "another UV layout" in r.err and "cube.npz" in r.err
  verts = [line for line in (out / "mesh.obj").read_text().splitlines() if line.startswith("v ")]
  assert len(verts) == 8  # the cube's mesh, not ICT-FaceKit's
  rep = json.loads((out / "report.json").read_text())
  assert np.all(np.isfinite(np.array(rep["landmarks_photo_px"]))) and "ict" not in rep["assets"]


# ----------------------------------------------------------------------------- user mistakes

BAD_FLAGS = [(["--config.nosuch=1"], "--config: 'nosuch'"), (["--nosuchflag"], "Unknown command line flag"),
             ([f"--config={ROOT}/configs/fit.py:turbo"], "unknown preset 'turbo'"),
             (["--config.stages.full.steps=abc"], "invalid literal"),
             (["--face=biggest"], "use 'largest', 'center', 'all'"),
             (TINY + ["--config.stages.full.steps=-5"], "steps must be an integer >= 0"),
             (TINY + ["--config.stages.full.weights.identity=nan"], "identity=nan must be a finite"),
             (TINY + ["--config.canvas_size=-3"], "canvas_size must be >= 32"),
             (TINY + ["--export=obj,stl"], "unknown export(s) stl")]


@pytest.mark.parametrize("args,message", BAD_FLAGS, ids=[m for _, m in BAD_FLAGS])
def test_bad_flags_exit_2_with_one_line(tmp_path, args, message):
  out = tmp_path / "res"
  r = run_cli([f"--image={os.path.join(ROOT, 'examples', 'astronaut.jpg')}", f"--out={out}"] + args, tiny=False)
  assert r.code == 2 and message in r.err and "Traceback" not in r.err, r.err[-2000:]
  assert not out.exists()


def test_the_real_command_line(tmp_path):
  """Witnesses in child processes: --help exits 0 and lists the flags; a bad --config field exits 2 with one
  line and no traceback, writing nothing."""
  r = run_tool(["--help"])
  assert r.returncode == 0 and "--input_list" in r.stdout and "--config" in r.stdout
  out = tmp_path / "res"
  r = run_tool([f"--image={os.path.join(ROOT, 'examples', 'astronaut.jpg')}", f"--out={out}", "--config.nosuch=1"])
  assert r.returncode == 2 and "--config: 'nosuch'" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
  assert not out.exists()


def test_every_bad_input_class(tmp_path):
  """Each class of user mistake: a message naming it, exit 2 (bad input or flag) or 3 (missing or
  corrupt asset), no traceback, nothing written."""
  import cv2
  import struct
  import zlib
  good = lfw_photo("Aaron_Eckhart")
  raw = open(good, "rb").read()
  (tmp_path / "empty.jpg").write_bytes(b"")
  (tmp_path / "truncated.jpg").write_bytes(raw[:300])
  (tmp_path / "corrupt.jpg").write_bytes(raw[:600] + bytes(range(256)) * 8)
  (tmp_path / "text.png").write_text("not a picture")
  (tmp_path / "notes.jpg").write_text("hello")
  cv2.imwrite(str(tmp_path / "tiny.png"), np.full((6, 6, 3), 100, np.uint8))
  cv2.imwrite(str(tmp_path / "blank.png"), np.full((120, 120, 3), 127, np.uint8))
  # a PNG whose header claims 100000 x 100000 pixels (a decompression bomb)
  ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
  chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
  (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                      + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
  (tmp_path / "a_dir.jpg").mkdir()
  (tmp_path / "a_file").write_text("x")
  (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
  (tmp_path / "lm.pts").write_text("version: 1\n{ 1 2 }\n")
  out = tmp_path / "res"
  cases = [
      ([f"--image={tmp_path / 'missing.jpg'}"], 2, "does not exist"),
      ([f"--image={tmp_path / 'empty.jpg'}"], 2, "empty"),
      ([f"--image={tmp_path / 'truncated.jpg'}"], 2, "truncated.jpg"),
      ([f"--image={tmp_path / 'corrupt.jpg'}"], 2, "corrupt.jpg"),
      ([f"--image={tmp_path / 'text.png'}"], 2, "not an image format"),
      ([f"--image={tmp_path / 'notes.jpg'}"], 2, "not an image format"),
      ([f"--image={tmp_path / 'tiny.png'}"], 2, "tiny.png"),
      ([f"--image={tmp_path / 'blank.png'}"], 2, "no face found"),
      ([f"--image={tmp_path / 'bomb.png'}"], 2, "pixels"),
      ([f"--image={tmp_path / 'a_dir.jpg'}"], 2, "not a file"),
      ([f"--image={good}", f"--landmarks={tmp_path / 'lm.pts'}"], 2, "68 points"),
      ([f"--image={good}", f"--landmarks={tmp_path}"], 2, "landmark file not found"),
      ([f"--image={good}", "--face=3"], 2, "has 1 face(s)"),
      ([f"--image={good}", "--face_box=1,2,3"], 2, "x,y,w,h"),
      ([f"--images={good},{tmp_path / 'text.png'}"], 2, "text.png"),
      ([f"--image={good}", f"--out={tmp_path / 'a_file'}"], 2, "is a file"),
      ([f"--image={good}", f"--config.texture_model={tmp_path / 'none.npz'}"], 3, "none.npz"),
      ([f"--image={good}", f"--config.texture_model={tmp_path / 'garbage.npz'}"], 3, "garbage.npz"),
      ([f"--image={good}", f"--config.identity_net={tmp_path / 'none.npz'}"], 3, "none.npz"),
      ([f"--image={good}", f"--config.identity_net={tmp_path / 'garbage.npz'}"], 3, "garbage.npz"),
      ([f"--image={good}", f"--config.model={tmp_path / 'garbage.npz'}"], 3, "garbage.npz"),
      ([f"--image={good}", "--config.model=nosuchmodel"], 3, "nosuchmodel"),
      ([f"--image={good}", "--config.detector=mtcnn"], 2, "detector 'mtcnn'"),
      ([f"--image={good}", "--config.stages.align.weights.landmark=inf"], 2, "must be a finite"),
      ([f"--image={good}", "--config.chunk=0"], 2, "chunk"),
      ([f"--image={good}", "--config.regress_expression_floor=nan"], 2, "--config.regress_expression_floor"),
  ]
  failures = []
  for args, code, message in cases:
    if not any(a.startswith("--out=") for a in args):
      args = args + [f"--out={out}"]
    r = run_cli(args)
    if r.code != code or message not in r.err or "Traceback" in r.err:
      failures.append((args[0:2], r.code, r.err[-600:]))
    if out.exists():
      failures.append((args[0:2], "wrote", sorted(os.listdir(out))))
  assert not failures, failures
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial")]


def test_corrupt_cached_asset_exits_3(tmp_path):
  """A default asset in the cache that no longer matches its checksum: exit 3 with the fix, nothing written (a
  child process: the asset cache's location is read from the environment)."""
  from ganfit_jax import assets
  cache = tmp_path / "cache"
  cache.mkdir()
  for name in os.listdir(assets.cache_dir()):
    src = os.path.join(assets.cache_dir(), name)
    if os.path.isfile(src):
      os.symlink(src, cache / name)
  sface = assets.get("sface").filename
  (cache / sface).unlink()
  (cache / sface).write_bytes(open(os.path.join(assets.cache_dir(), sface), "rb").read()[:1000])  # cut short
  out = tmp_path / "res"
  r = run_tool([f"--image={lfw_photo('Aaron_Eckhart')}", f"--out={out}"] + TINY,
               env=dict(os.environ, GANFIT_ASSETS=str(cache)), cwd=str(tmp_path))
  assert r.returncode == 3 and "sha256" in r.stderr and "fetch_assets.py --assets=sface --force" in r.stderr, \
      r.stderr[-2000:]
  assert "Traceback" not in r.stderr and not out.exists()


def test_request_checks_in_the_library():
  """What the flags mean is checked in one place (cli.check), for programs that build a Request themselves."""
  from ganfit_jax.configs.fit import get_config
  cfg = get_config("tiny")
  assert "give exactly one of" in cli.check(cli.Request(out="o"), cfg)
  assert "apply to --image" in cli.check(cli.Request(out="o", input_dir=ROOT, landmarks="x.pts"), cfg)
  assert cli.check(cli.Request(out="/nonexistent/o", image=lfw_photo("AJ_Cook"), mode="regress"), cfg) is None
  assert cfg.mode == "regress"
  clip = os.path.join(ROOT, "README.md")  # any file: the video's own checks come later
  for field, value, why in (("sparse_expression", -1.0, "finite and >= 0"), ("batch", 0, "an integer >= 1"),
                            ("smooth_frames", float("nan"), "finite and >= 0")):
    bad = get_config("tiny")
    bad.video[field] = value
    msg = cli.check(cli.Request(out="/nonexistent/o", video=clip), bad)
    assert msg is not None and f"--config.video.{field}=" in msg and why in msg, msg


# ----------------------------------------------------------------------------- a video

def test_video_gives_one_identity_and_per_frame_results(tmp_path, ict_model):
  """--video: identity/ from the keyframes, frames.npz / frames.csv / arkit52.csv with every frame, the frames
  without a face marked (no parameters made up), animation.glb (Khronos validator), the overlay videos and the
  page (headless Chromium: the animated face moves); bad videos and flags exit 2 and write nothing."""
  import csv
  import shutil
  import subprocess

  import cv2
  from test_video import make_clip
  clip = make_clip(tmp_path / "clip.mp4", turn=3.0)
  out = tmp_path / "video"
  r = run_cli([f"--video={clip}", f"--out={out}", "--keyframes=2", "--export=obj,arkit,html"])
  assert r.code == 0, r.err[-3000:]
  assert "6 of 8 frames with a face" in r.out, r.out
  assert (out / "identity" / "mesh.obj").exists() and (out / "identity" / "report.json").exists()
  z = np.load(out / "frames.npz")
  found = z["found"]
  assert found.tolist() == [True, True, True, False, False, True, True, True]
  assert z["landmarks_px"].shape == (8, 68, 2) and z["arkit52"].shape == (8, 52) and z["rotation"].shape == (8, 3, 3)
  assert np.isnan(z["expression"][~found]).all() and np.isfinite(z["expression"][found]).all()
  np.testing.assert_allclose(z["time_s"], np.arange(8) / 10.0)
  rot = z["rotation"][found]
  np.testing.assert_allclose(np.einsum("fij,fkj->fik", rot, rot), np.tile(np.eye(3), (6, 1, 1)), atol=1e-4)
  # the head turns 3 degrees a frame counter-clockwise in the picture: roll follows it (counter-clockwise is
  # positive, files.py's convention), yaw and pitch stay; the rotation seen from the viewer's side (x right,
  # y up) turns the model's eye line as the tracked eye corners turn in the video
  turn = np.degrees(z["yaw_pitch_roll"][7] - z["yaw_pitch_roll"][0])
  assert abs(turn[2] - 21.0) < 4.0 and np.abs(turn[:2]).max() < 6.0, turn
  from ganfit_jax import morphable
  lm = np.asarray(morphable.landmarks(ict_model, ict_model.mean))
  for f in np.flatnonzero(found):
    eye = (lm[45] - lm[36]) @ z["rotation"][f].T
    seen = z["detected_px"][f, 45] - z["detected_px"][f, 36]
    assert abs(np.degrees(np.arctan2(eye[1], eye[0]) - np.arctan2(-seen[1], seen[0]))) < 4.0, f
  # the fitted points follow the face: within a few pixels of the tracker's on this 250 px clip
  err = np.linalg.norm(z["landmarks_px"][found] - z["detected_px"][found], axis=-1).mean()
  assert err < 6.0, err
  rows = list(csv.reader(open(out / "frames.csv")))
  assert len(rows) == 9 and rows[4][2] == "0" and rows[4][3] == ""
  live = list(csv.reader(open(out / "arkit52.csv")))
  assert live[0][:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"] and len(live[0]) == 2 + 61
  assert len(live) == 1 + 6 and live[1][1] == "61"
  # animation.glb: the identity's mesh, one keyframe a tracked frame, the gap flagged; it passes the validator
  import pygltflib
  g = pygltflib.GLTF2().load(str(out / "animation.glb"))
  anim = g.animations[0]
  assert sorted(c.target.path for c in anim.channels) == ["rotation", "weights"]
  assert g.accessors[anim.samplers[0].input].count == 6
  assert g.accessors[anim.samplers[0].output].count == 6 * len(g.meshes[0].primitives[0].targets)
  assert anim.extras["gaps"] == [dict(from_s=0.2, to_s=0.5, frames=2)]
  from test_exports import JS, _need, _node_package, _served
  _node_package("gltf-validator")
  v = subprocess.run(["node", os.path.join(JS, "validate_gltf.mjs"), str(out / "animation.glb")],
                     capture_output=True, text=True, timeout=300)
  rep = json.loads(v.stdout)
  assert v.returncode == 0 and rep["errors"] == 0 and rep["info"]["animationCount"] == 1, rep["messages"]
  # overlay.mp4 / .webm: every frame read, the video's size
  for name in ("overlay.mp4", "overlay.webm"):
    cap = cv2.VideoCapture(str(out / name))
    n = 0
    while cap.read()[0]:
      n += 1
    assert n == 8 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 250, (name, n)
  # the page in headless Chromium: the video decodes, and the face turns between two times of the animation
  _node_package("playwright-core")
  chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
  _need("Debian's chromium", chromium is not None)
  with _served(out) as base:
    b = subprocess.run(["node", os.path.join(JS, "video_page.mjs"), base, str(tmp_path), "0", "0.7"],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, CHROMIUM=chromium))
  assert b.returncode == 0, b.stderr[-3000:]
  res = json.loads(b.stdout.strip().splitlines()[-1])
  assert res["viewer"] == "ready" and res["console"] == [], res
  assert res["set_a"] == pytest.approx(0.0, abs=0.05) and res["set_b"] == pytest.approx(0.7, abs=0.05), res
  assert res["video"]["readyState"] >= 2 and res["video"]["width"] == 250 and res["video"]["error"] is None, res
  a, b = (cv2.imread(str(tmp_path / f"viewer_{k}.png")).astype(np.float64) for k in "ab")
  face = np.abs(a - np.median(a.reshape(-1, 3), 0)).max(-1) > 20
  changed = np.abs(a - b).max(-1) > 20
  assert 0.1 < face.mean() < 0.9 and changed.mean() > 0.02, (face.mean(), changed.mean())
  # bad inputs: a clear error, exit 2, nothing written
  (tmp_path / "text.mp4").write_text("hello")
  grey = make_clip(tmp_path / "grey.mp4", frames=3, no_face=(0, 1, 2))
  for args, why in (([f"--video={tmp_path / 'text.mp4'}"], "not a video"),
                    ([f"--video={grey}"], "no face in any of the 3 frames"),
                    ([f"--video={clip}", "--frames=5:2"], "STOP must be larger"),
                    ([f"--image={lfw_photo('Aaron_Peirsol', 1)}", "--frames=0:4"], "apply to --video")):
    bad = tmp_path / "bad"
    r = run_cli(args + [f"--out={bad}"])
    assert r.code == 2 and why in r.err and "Traceback" not in r.err, (args, r.err[-2000:])
    assert not bad.exists()


@pytest.mark.slow  # a child process to kill
def test_video_resumes_after_sigkill_with_the_same_frames(tmp_path):
  """A clip's work in progress survives SIGKILL: the rerun takes the finished batches from the state folder
  beside --out and gives the frames of an uninterrupted run."""
  import signal
  import subprocess
  import sys
  import time
  from test_video import make_clip
  clip = make_clip(tmp_path / "clip.mp4", frames=40, no_face=())
  args = [f"--video={clip}", "--keyframes=2", "--export=obj"]
  ref = tmp_path / "ref"
  r = run_cli(args + [f"--out={ref}"])
  assert r.code == 0, r.err[-3000:]
  assert not (tmp_path / ".ref.video-state").exists()  # removed once the folder is complete
  out = tmp_path / "out"
  state = tmp_path / ".out.video-state"
  p = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "fit.py")] + TINY + args + [f"--out={out}"],
                       cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  try:
    deadline = time.time() + 600
    while not (state / "frames_00001.npz").exists() and p.poll() is None and time.time() < deadline:
      time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
  finally:
    p.wait()
  assert p.returncode == -signal.SIGKILL and not out.exists(), "the run finished before it could be killed"
  chunks = sorted(x.name for x in state.glob("frames_*.npz"))
  assert chunks and (state / "identity" / "report.json").exists() and (state / "track.npz").exists()
  r = run_cli(args + [f"--out={out}"])
  assert r.code == 0, r.err[-3000:]
  assert f"resumed: {4 * len(chunks)} of 40 frames" in r.err, r.err[-2000:]
  assert not state.exists() and (out / "identity" / "mesh.obj").exists()
  a, b = np.load(ref / "frames.npz"), np.load(out / "frames.npz")
  for k in ("found", "expression", "camera", "landmarks_px", "rotation"):
    np.testing.assert_allclose(b[k], a[k], atol=1e-5, err_msg=k)
  # other settings (here the keyframes) make the old state stale: it is cleared, not mixed in
  st = clip_state(state, clip, keyframes=2)
  assert st.chunks() == [] and (state / "key.json").exists()


def clip_state(folder, clip, **settings):
  from ganfit_jax.video import clip as clip_lib
  (folder / "frames_00000.npz").parent.mkdir(parents=True, exist_ok=True)
  clip_lib.State(str(folder), clip_lib.state_key(str(clip), **settings)).save("frames_00000.npz", rows=np.arange(2))
  return clip_lib.State(str(folder), clip_lib.state_key(str(clip), **dict(settings, keyframes=3)))


def test_video_scaled_for_fitting_reports_video_pixels(tmp_path, monkeypatch):
  """A video larger than decode.MAX_SIDE is fitted on scaled frames; its points and crops come back in the
  video's own pixels (here: the same frames fitted at full size and at half size agree to a few pixels)."""
  from test_video import make_clip
  from ganfit_jax.video import decode
  clip = make_clip(tmp_path / "clip.mp4", frames=4, no_face=())
  args = [f"--video={clip}", "--keyframes=1", "--export=obj"]
  assert run_cli(args + [f"--out={tmp_path / 'full'}"]).code == 0
  monkeypatch.setattr(decode, "MAX_SIDE", 125)
  r = run_cli(args + [f"--out={tmp_path / 'half'}"])
  assert r.code == 0, r.err[-2000:]
  a, b = np.load(tmp_path / "full" / "frames.npz"), np.load(tmp_path / "half" / "frames.npz")
  assert np.abs(b["detected_px"] - a["detected_px"]).mean() < 3.0
  assert np.abs(b["landmarks_px"] - a["landmarks_px"]).mean() < 4.0
  assert np.abs(b["yaw_pitch_roll"] - a["yaw_pitch_roll"]).max() < np.radians(5)


def test_video_photometric_mode_moves_the_light_per_frame(tmp_path):
  """--config.video.photometric_steps: a second stage per batch with the image terms, the light moving: each
  frame gets its own light, where the geometry-only mode keeps the identity's."""
  from test_video import make_clip
  clip = make_clip(tmp_path / "clip.mp4", frames=3, no_face=())
  base = [f"--video={clip}", "--keyframes=1", "--export=obj"]
  lights = {}
  for steps in (0, 3):
    r = run_cli(base + [f"--out={tmp_path / str(steps)}", f"--config.video.photometric_steps={steps}"])
    assert r.code == 0, r.err[-2000:]
    lights[steps] = np.load(tmp_path / str(steps) / "frames.npz")["light"]
  assert np.ptp(lights[0], axis=0).max() < 1e-4  # held at the identity's
  assert np.ptp(lights[3], axis=0).max() > 1e-3  # fitted per frame
