"""Fitting: schedules, the optimiser, compiled chunks, shared identity, compile counts, the main job."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import LFW_DIR, make_tiny_scene
from ganfit_jax import compiled, fitting, objective
from ganfit_jax import params as P

ROOT = os.path.join(os.path.dirname(__file__), "..")
ALL = P.GROUPS
LRS = tuple((g, 0.02) for g in ALL)
FULL = (("identity", 1.0), ("identity_hat", 1.0), ("content", 5.0), ("pixel", 1.0), ("align", 0.1),
        ("reg_shape", 0.05), ("reg_texture", 0.01))


# ----------------------------------------------------------------------------- weights, stages, optimiser

def test_weights_by_name_only():
  w = objective.LossWeights.create(identity=2.0, pixel=1.0)
  assert w.as_dict()["identity"] == 2.0 and w.as_dict()["content"] == 0.0 and w.uses_images()
  assert not objective.LossWeights.create(align=1.0).uses_images()
  with pytest.raises(ValueError, match="unknown loss term.*identiy"):
    objective.LossWeights.create(identiy=2.0)
  with pytest.raises(ValueError, match="finite"):
    objective.LossWeights.create(pixel=float("nan"))
  with pytest.raises(ValueError, match=">= 0"):
    objective.LossWeights.create(pixel=-1.0)
  with pytest.raises(TypeError):
    objective.LossWeights(1.0, 2.0)  # positional construction is refused


def test_priors_light_chroma_sparse_expression_and_jaw_weight():
  from ganfit_jax import lighting
  from ganfit_jax.reconstruct import landmark_weights
  assert float(objective.light_chroma(lighting.default_light())) == 0.0
  green = lighting.make_light(colour=(0.5, 0.7, 0.5), ambient=(0.5, 0.5, 0.5))
  assert float(objective.light_chroma(green)) > 0
  g = jax.grad(objective.light_chroma)(green)  # descent moves green towards the other channels
  assert float(g[4]) > 0 and float(g[3]) < 0 and float(g[5]) < 0
  w = landmark_weights(2, 0.2)
  assert w.shape == (2, 68) and np.all(w[:, :17] == 0.2) and np.all(w[:, 17:] == 1.0)
  with pytest.raises(ValueError, match="jaw_weight"):
    landmark_weights(1, -1.0)
  # the default config's stages are valid schedules carrying the retuned priors
  sys.path.insert(0, os.path.join(ROOT, "configs"))
  import fit as fit_config
  for preset in ("fast", "paper", "tiny"):
    sched = fitting.schedule_from_config(fit_config.get_config(preset))
    for st in sched.stages:
      w = dict(st.weights)
      assert w["reg_shape"] >= 1.0 and w["sparse_expression"] > 0, (preset, st.name, w)
      objective.LossWeights.create(**w)
    assert dict(sched.stages[-1].weights)["light_chroma"] > 0


def test_stage_and_schedule_validation():
  with pytest.raises(ValueError, match="unknown parameter group"):
    fitting.Stage("s", 3, (("align", 1.0),), ("shape", "nose"))
  with pytest.raises(ValueError, match="steps"):
    fitting.Stage("s", -1, (("align", 1.0),), ("shape",))
  with pytest.raises(ValueError, match="unknown loss term"):
    fitting.Stage("s", 3, (("algin", 1.0),), ("shape",))
  with pytest.raises(ValueError, match="missing"):
    fitting.Schedule(stages=(), learning_rates=(("shape", 0.1),))
  assert [fitting.chunk_length(n, 10) for n in (100, 60, 7, 1, 24)] == [10, 10, 7, 1, 8]


def test_optimizer_moves_active_groups_and_zeroes_nans():
  v = P.Variables(*[jnp.ones((3,))] * 6)
  tx = fitting.make_optimizer(LRS, ("shape", "texture"))
  g = v.replace(shape=jnp.array([1.0, jnp.nan, 1.0]), texture=jnp.ones(3), camera=jnp.ones(3))
  upd, _ = tx.update(g, tx.init(v), v)
  assert np.all(np.isfinite(np.asarray(upd.shape))) and float(upd.shape[1]) == 0.0  # the NaN entry: no step
  assert float(upd.shape[0]) < 0 and float(upd.texture[0]) < 0  # active groups move against the gradient
  assert np.all(np.asarray(upd.camera) == 0)  # inactive group: fixed


# ----------------------------------------------------------------------------- compiled steps (tiny scene)

@pytest.fixture(scope="module")
def tiny():
  sc = make_tiny_scene()
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.uniform(0.2, 0.8, (2, 64, 64, 3)), jnp.float32)
  lm = jnp.asarray(rng.uniform(20, 44, (2, 68, 2)), jnp.float32)
  return sc, objective.prepare_targets(sc, images, lm)


def _spec(length, shared=False):
  return fitting.ChunkSpec(length=length, learning_rates=LRS, groups=ALL, lr_scale=1.0, images=True,
                           shared_identity=shared)


def _start(sc, b, n=1):
  sched = fitting.Schedule(stages=(), learning_rates=LRS, num_inits=n)
  v = fitting.initial_variables(sc, b, sched, jax.random.key(3))
  keys = jax.random.key_data(jax.random.split(jax.random.key(4), b * n)).reshape((b, n, -1))
  return v, keys


def test_scan_chunk_equals_single_steps(tiny):
  sc, tg = tiny
  w = objective.LossWeights.create(**dict(FULL))
  v0, keys = _start(sc, 2)
  spec = _spec(3)
  s0 = fitting.init_opt_state(v0, spec=spec)
  va, sa, aux_a = fitting.chunk(v0, s0, sc, tg, w, keys, 5, spec, "scan")
  vb, sb, aux_b = fitting.chunk(v0, s0, sc, tg, w, keys, 5, spec, "dispatch")
  for a, b in zip(jax.tree_util.tree_leaves((va, sa, aux_a)), jax.tree_util.tree_leaves((vb, sb, aux_b))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
  assert aux_a["loss"].shape == (3, 2, 1)
  assert not np.allclose(np.asarray(va.texture), np.asarray(v0.texture))  # it moved
  # donated: the step reuses the variables' and optimiser state's buffers (same result), the caller's
  # arrays given to fit() as init stay usable
  v1 = jax.tree_util.tree_map(jnp.copy, v0)
  s1 = fitting.init_opt_state(v1, spec=spec)
  vc, _, _ = fitting.chunk(v1, s1, sc, tg, w, keys, 5, spec, "scan", donate=True)
  assert v1.texture.is_deleted() and not v0.texture.is_deleted()
  np.testing.assert_allclose(np.asarray(vc.texture), np.asarray(va.texture), rtol=1e-6, atol=1e-7)
  init = jax.tree_util.tree_map(lambda x: x[:, 0], v0)
  sched = fitting.Schedule(stages=(fitting.Stage("s", 3, FULL, ALL),), learning_rates=LRS)
  fitting.fit(sc, tg, sched, key=jax.random.key(0), init=init)
  assert not any(x.is_deleted() for x in jax.tree_util.tree_leaves(init))


def test_shared_identity_is_the_mean_of_per_photo_steps(tiny):
  sc, tg = tiny
  w = objective.LossWeights.create(**dict(FULL))
  v0, keys = _start(sc, 2)
  # the photos differ in pose, and start from different identities so that the per-photo steps differ
  # (Adam's first step is +-lr per coordinate)
  v0 = v0.replace(camera=v0.camera.at[1].add(0.05), shape=v0.shape.at[1].add(0.3), texture=v0.texture.at[1].add(0.2))
  shared, alone = _spec(1, shared=True), _spec(1, shared=False)
  s0 = fitting.init_opt_state(v0, spec=shared)
  vs, _, _ = fitting.chunk(v0, s0, sc, tg, w, keys, 0, shared, "dispatch")
  va, _, _ = fitting.chunk(v0, s0, sc, tg, w, keys, 0, alone, "dispatch")
  for field in ("shape", "texture"):
    s, a = np.asarray(getattr(vs, field)), np.asarray(getattr(va, field))
    np.testing.assert_array_equal(s[0], s[1])  # shared across the photos
    np.testing.assert_allclose(s[0], a.mean(0), rtol=1e-5, atol=1e-7)  # = the mean of per-photo steps
    assert not np.allclose(a[0], a[1])  # (the per-photo steps differ, so the check means something)
  np.testing.assert_allclose(np.asarray(vs.camera), np.asarray(va.camera), rtol=1e-5, atol=1e-7)  # per photo


def test_one_compilation_per_structure_across_fits_and_calls(tiny):
  sc, tg = tiny
  sched = fitting.Schedule(stages=(fitting.Stage("align", 4, (("align", 1.0),), ("shape", "camera")),
                                   fitting.Stage("full", 2, FULL, ALL)), learning_rates=LRS, chunk=2)
  compiled.clear_memory()
  fitting.fit(sc, tg, sched, key=jax.random.key(0))
  counts = {n: compiled.compilations(n) for n in ("fit_step", "fit_chunk", "prepare_targets")}
  # a second fit of other photos (same shapes) and another target preparation compile nothing new
  rng = np.random.default_rng(1)
  tg2 = objective.prepare_targets(sc, jnp.asarray(rng.uniform(0, 1, (2, 64, 64, 3)), jnp.float32),
                                  jnp.asarray(rng.uniform(20, 44, (2, 68, 2)), jnp.float32))
  res = fitting.fit(sc, tg2, sched, key=jax.random.key(1))
  assert {n: compiled.compilations(n) for n in counts} == {"fit_step": 1, "fit_chunk": 1, "prepare_targets": 1}
  assert counts == {"fit_step": 1, "fit_chunk": 1, "prepare_targets": 0}
  # the start (variables and keys), the optimiser states (one per stage structure) and the choice of the best
  # init are compiled programs too, built once
  assert {n: compiled.compilations(n) for n in ("fit_start", "init_opt_state", "fit_finish")} == {
      "fit_start": 1, "init_opt_state": 2, "fit_finish": 1}
  for f, _ in compiled._MEMORY.values():
    assert f._cache_size() == 1  # and each compiled program was built once
  assert res.history["loss"].shape == (6, 2) and res.faces.camera.shape == (2, 10)
  with pytest.raises(ValueError, match="photo_keys must be integers"):
    fitting.fit(sc, tg2, sched, key=jax.random.key(1), photo_keys=[-1, 2])


def test_main_job_compiles_its_programs_not_single_operations(tmp_path):
  """A fit and its outputs compile (or load from the caches) their named programs and almost nothing else:
  each stray eager jnp operation would be one more XLA compilation, in every process (~170 of them, 3-4 s,
  before they were removed). The outputs' programs, built ahead by prefetch_outputs, are not built again."""
  sys.path.insert(0, ROOT)
  import jax.monitoring
  from configs.fit import get_config
  from ganfit_jax.reconstruct import Reconstructor
  rec = Reconstructor(get_config("tiny"))
  p = rec.prepare(os.path.join(LFW_DIR, "images_deepfunneled", "Aaron_Peirsol", "Aaron_Peirsol_0001.jpg"))
  events = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda name, secs, **kw: events.append(name) if name == "/jax/core/compile/backend_compile_duration" else None)
  with pytest.raises(TypeError, match="PreparedFace"):
    rec.prefetch_outputs("photo.jpg")
  compiled.clear_memory()
  jax.clear_caches()
  rec.prefetch_outputs(p).join()
  assert {n: compiled.compilations(n) for n in ("photo_detail", "render_outputs")} == {
      "photo_detail": 1, "render_outputs": 1}
  (r,) = rec.fit([p], ["Aaron_Peirsol_0001"])
  report = rec.write(r, str(tmp_path / "out"))
  assert {n: compiled.compilations(n) for n in ("photo_detail", "render_outputs")} == {
      "photo_detail": 1, "render_outputs": 1}
  assert report["texture_detail"] and os.path.exists(tmp_path / "out" / "mesh.glb")
  programs = sum(compiled._COUNTS.values())
  # allowance: the PRNG key (two), the dispatch loop's stacking of aux (and two spare)
  # (12 events for 9 programs when written; the main job had 177 before its eager operations were removed)
  assert len(events) <= programs + 5, (len(events), dict(compiled._COUNTS))


def test_exported_programs_are_reused_from_disk(tiny, monkeypatch):
  """A new process (simulated: the in-memory entries forgotten) loads the program instead of tracing it."""
  if compiled._folder() is None:
    pytest.skip("compilation cache switched off (GANFIT_COMPILATION_CACHE=0)")
  sc, tg = tiny
  v0, keys = _start(sc, 2)
  spec = fitting.ChunkSpec(length=1, learning_rates=LRS, groups=("shape",), lr_scale=1.0, images=False,
                           shared_identity=False)
  w = objective.LossWeights.create(align=1.0)
  s0 = fitting.init_opt_state(v0, spec=spec)
  first = fitting.run_step(v0, s0, sc, tg, w, keys, 0, spec=spec)
  compiled.clear_memory()
  from jax import export
  monkeypatch.setattr(export, "export", lambda *a, **k: (_ for _ in ()).throw(AssertionError("traced again")))
  again = fitting.run_step(v0, s0, sc, tg, w, keys, 0, spec=spec)
  for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(again)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ----------------------------------------------------------------------------- the real scene

def test_landmark_stage_recovers_synthetic_landmarks(ict_model):
  from ganfit_jax import scene as scene_lib
  sc = scene_lib.make(ict_model)
  truth = P.init(ict_model, jnp.zeros(1)).replace(
      shape=jnp.zeros(100).at[:5].set(jnp.array([1.0, -0.5, 0.8, 0.3, -1.0])),
      camera=jnp.array([0.3, -0.2, 0.1, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0]), focal=jnp.array([0.2]))
  lm = objective.project_landmarks(sc, P.to_face(truth, ict_model.expression_kind))
  tg = objective.prepare_targets(sc, jnp.zeros((1, 224, 224, 3)), lm[None])
  stage = fitting.Stage("align", 300, (("align", 1.0), ("reg_shape", 0.05), ("reg_expression", 0.01)),
                        ("shape", "expression", "camera", "focal"))
  res = fitting.fit(sc, tg, fitting.Schedule(stages=(stage,), learning_rates=tuple((g, 0.05) for g in ALL),
                                             chunk=100), key=jax.random.key(0))
  assert res.history["landmark_rmse_px"][-1, 0] < 1.0 < res.history["landmark_rmse_px"][0, 0]
  assert res.history["loss"][-1, 0] < res.history["loss"][0, 0] / 50
  e = np.asarray(res.faces.expression)
  assert e.min() >= 0.0 and e.max() <= 1.0  # ICT activations stay in range


@pytest.fixture(scope="module")
def gan_scene(ict_model):
  from ganfit_jax import scene as scene_lib
  from ganfit_jax.nets import identity
  from ganfit_jax.texture import models
  return scene_lib.make(ict_model, models.load("gan"), identity.load("sface"))


def test_synthetic_recovery_with_every_term(gan_scene):
  """A face rendered by the model itself is fitted back: landmarks, pixels and camera improve."""
  sc = gan_scene
  m = sc.model
  truth = P.init(m, sc.texture.sample_latent(jax.random.PRNGKey(3))).replace(
      shape=jnp.zeros(100).at[:4].set(jnp.array([0.8, -0.6, 0.5, 0.4])),
      camera=jnp.array([0.25, -0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]), focal=jnp.array([0.1]),
      light=jnp.array([0.5, 0.3, 0.0, 0.1, 0.0, -0.1, 0.05, 0.0, 0.0]))
  tf = P.to_face(truth, m.expression_kind)
  grey = jnp.full((224, 224, 3), 0.3)
  image = np.asarray(jax.jit(lambda f: objective.render_face(sc, f, grey)[0].image)(tf))
  lm = np.asarray(objective.project_landmarks(sc, tf))
  tg = objective.prepare_targets(sc, image[None], lm[None])
  stages = (fitting.Stage("align", 60, (("align", 1.0), ("landmark", 0.001), ("reg_shape", 0.05),
                                         ("reg_expression", 0.01)), ("shape", "expression", "camera", "focal"), 3.0),
            fitting.Stage("full", 40, (("identity", 0.5), ("content", 5.0), ("pixel", 1.0), ("align", 0.1),
                                       ("reg_shape", 0.05), ("reg_expression", 0.01)), ALL))
  lrs = dict(shape=0.02, expression=0.05, texture=0.05, camera=0.01, focal=0.01, light=0.02)
  sched = fitting.Schedule(stages=stages, learning_rates=tuple(lrs.items()), num_inits=1, chunk=10)
  res = fitting.fit(sc, tg, sched, key=jax.random.key(1))
  h = res.history
  assert h["landmark_rmse_px"][-1, 0] < 2.0 < h["landmark_rmse_px"][0, 0]
  assert h["pixel"][-1, 0] < h["pixel"][60, 0]
  f = jax.tree_util.tree_map(lambda x: x[0], res.faces)
  render = jax.jit(lambda f: objective.render_face(sc, f, grey)[0].image)
  fitted = np.asarray(render(f))
  # where the fit started: fit() splits its key into the texture starts' key and the steps' key
  v0 = fitting.initial_variables(sc, 1, sched, jax.random.split(jax.random.key(1))[0])
  start = np.asarray(render(P.to_face(jax.tree_util.tree_map(lambda x: x[0, 0], v0), m.expression_kind)))
  face = np.abs(image - 0.3).max(-1) > 1e-6
  err, err0 = np.abs(fitted - image)[face].mean(), np.abs(start - image)[face].mean()
  assert err < 0.7 * err0, (err, err0)
  assert np.abs(np.asarray(f.camera - tf.camera))[:3].max() < 60.0  # camera position within 6 cm at ~1 m


# ----------------------------------------------------------------------------- the main job (CLI)

def _fit(args, tmp_path):
  return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fit.py")] + args, capture_output=True,
                        text=True, cwd=str(tmp_path))


TINY = ["--config=" + os.path.join(ROOT, "configs", "fit.py") + ":tiny"]


def test_cli_on_real_lfw_photo(tmp_path):
  photo = os.path.join(LFW_DIR, "images_deepfunneled", "Aaron_Eckhart", "Aaron_Eckhart_0001.jpg")
  out = tmp_path / "res"
  r = _fit([f"--image={photo}", f"--out={out}"] + TINY, tmp_path)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "another UV layout" not in r.stderr  # the shipped texture models are in ICT-FaceKit's layout
  for name in ("mesh.obj", "mesh.mtl", "texture.png", "mesh_neutral.obj", "mesh.glb", "params.npz",
               "params.json", "overlay.png", "render.png", "comparison.png", "convergence.png", "report.json"):
    assert (out / name).exists() and (out / name).stat().st_size > 0, name
  rep = json.loads((out / "report.json").read_text())
  assert len(rep["landmarks_photo_px"]) == 68 and len(rep["landmarks_3d_mm"]) == 68
  lm = np.array(rep["landmarks_photo_px"])
  assert lm[:, 0].min() > 0 and lm[:, 0].max() < 250  # mapped back onto the 250 px photo
  assert -1.0 <= rep["identity_cosine_photo_vs_render"] < 0.999
  assert set(rep["final_loss_terms"]) >= {"identity", "identity_hat", "content", "pixel", "landmark"}
  assert set(rep["assets"]) == {"ict", "texture_gan", "sface", "dlib_landmarks68", "yunet"}
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


def test_cli_several_photos_of_one_person(tmp_path):
  d = os.path.join(LFW_DIR, "images_deepfunneled", "Aaron_Peirsol")
  photos = [os.path.join(d, f"Aaron_Peirsol_000{i}.jpg") for i in (1, 2)]
  out = tmp_path / "person"
  r = _fit([f"--images={','.join(photos)}", f"--out={out}", "--export=obj,arkit"] + TINY, tmp_path)
  assert r.returncode == 0, r.stderr[-3000:]
  for d in ("Aaron_Peirsol_0001", "identity"):  # --export: only the chosen mesh files
    assert (out / d / "mesh.obj").exists() and (out / d / "arkit52.json").exists()
    assert not any((out / d / n).exists() for n in ("mesh.glb", "mesh.ply", "index.html", "viewer"))
    assert (out / d / "report.json").exists() and (out / d / "overlay.png").exists()
  a = np.load(out / "Aaron_Peirsol_0001" / "params.npz")
  b = np.load(out / "Aaron_Peirsol_0002" / "params.npz")
  np.testing.assert_array_equal(a["shape"], b["shape"])  # shared identity
  np.testing.assert_array_equal(a["texture_latent"], b["texture_latent"])
  assert not np.array_equal(a["camera"], b["camera"])  # per-photo pose
  assert (out / "identity" / "mesh_neutral.obj").exists() and (out / "summary.json").exists()


def test_cli_every_face_of_a_photo(tmp_path):
  import cv2
  a = cv2.imread(os.path.join(LFW_DIR, "images_deepfunneled", "AJ_Cook", "AJ_Cook_0001.jpg"))
  b = cv2.imread(os.path.join(LFW_DIR, "images_deepfunneled", "Aaron_Peirsol", "Aaron_Peirsol_0001.jpg"))
  cv2.imwrite(str(tmp_path / "two.png"), np.concatenate([a, np.pad(cv2.resize(b, (200, 200)), ((0, 50), (0, 0), (0, 0)))], 1))
  out = tmp_path / "faces"
  r = _fit([f"--image={tmp_path / 'two.png'}", f"--out={out}", "--face=all"] + TINY, tmp_path)
  assert r.returncode == 0, r.stderr[-3000:]
  left, right = (np.array(json.loads((out / f"face_{k}" / "report.json").read_text())["landmarks_photo_px"])
                 for k in (0, 1))
  assert left[:, 0].mean() < 250 < right[:, 0].mean()  # largest (left) first, each its own fit
  r = _fit([f"--image={tmp_path / 'two.png'}", f"--out={tmp_path / 'x'}", "--face=7"] + TINY, tmp_path)
  assert r.returncode == 2 and "has 2 face(s)" in r.stderr and not (tmp_path / "x").exists()


def test_cli_help_and_bad_flags(tmp_path):
  r = _fit(["--help"], tmp_path)
  assert r.returncode == 0 and "--input_list" in r.stdout
  out = tmp_path / "res"
  photo = os.path.join(ROOT, "examples", "astronaut.jpg")
  for args, message in ((["--config.nosuch=1"], "--config: 'nosuch'"), (["--nosuchflag"], "Unknown command line flag"),
                        ([f"--config={ROOT}/configs/fit.py:turbo"], "unknown preset 'turbo'"),
                        (["--config.stages.full.steps=abc"], "invalid literal"),
                        (["--face=biggest"], "use 'largest', 'center', 'all'"),
                        (TINY + ["--config.stages.full.steps=-5"], "steps must be an integer >= 0"),
                        (TINY + ["--config.stages.full.weights.identity=nan"], "identity=nan must be a finite"),
                        (TINY + ["--config.canvas_size=-3"], "canvas_size must be >= 32")):
    r = _fit([f"--image={photo}", f"--out={out}"] + args, tmp_path)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr[-2000:])
  assert not out.exists()


def test_cli_bad_input_exits_nonzero_and_writes_nothing(tmp_path):
  bad = tmp_path / "notes.jpg"
  bad.write_text("hello")
  out = tmp_path / "res"
  r = _fit([f"--image={bad}", f"--out={out}"] + TINY, tmp_path)
  assert r.returncode == 2 and "not an image format" in r.stderr, r.stderr[-2000:]
  assert not out.exists()
  blank = tmp_path / "blank.png"
  import cv2
  cv2.imwrite(str(blank), np.full((120, 120, 3), 127, np.uint8))
  r = _fit([f"--image={blank}", f"--out={out}"] + TINY, tmp_path)
  assert r.returncode == 2 and "no face found" in r.stderr
  assert not out.exists()
  assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".partial")] == []





def test_cli_every_bad_input_class(tmp_path):
  """Each class of user mistake: a message naming it, exit 2 (bad input or flag) or 3 (missing or
  corrupt asset), no traceback, nothing written."""
  import cv2
  good = os.path.join(LFW_DIR, "images_deepfunneled", "Aaron_Eckhart", "Aaron_Eckhart_0001.jpg")
  raw = open(good, "rb").read()
  (tmp_path / "empty.jpg").write_bytes(b"")
  (tmp_path / "truncated.jpg").write_bytes(raw[:300])
  (tmp_path / "corrupt.jpg").write_bytes(raw[:600] + bytes(range(256)) * 8)
  (tmp_path / "text.png").write_text("not a picture")
  cv2.imwrite(str(tmp_path / "tiny.png"), np.full((6, 6, 3), 100, np.uint8))
  # a PNG whose header claims 100000 x 100000 pixels (a decompression bomb)
  import struct
  import zlib
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
      ([f"--image={tmp_path / 'tiny.png'}"], 2, "tiny.png"),
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
  ]
  failures = []
  for args, code, message in cases:
    if not any(a.startswith("--out=") for a in args):
      args = args + [f"--out={out}"]
    r = _fit(TINY + args, tmp_path)  # --config before its --config.FIELD overrides
    if r.returncode != code or message not in r.stderr or "Traceback" in r.stderr:
      failures.append((args[0:2], r.returncode, r.stderr[-600:]))
    if out.exists():
      failures.append((args[0:2], "wrote", sorted(os.listdir(out))))
  assert not failures, failures
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial")]


def test_cli_fits_a_converted_model_file(tmp_path):
  """--config.model=PATH.npz: any model file the converters write fits end to end (here a tiny synthetic
  cube with its own UVs), with a warning that the shipped texture models are in another UV layout."""
  from conftest import make_tiny_model
  from ganfit_jax import morphable
  morphable.save_npz(str(tmp_path / "cube.npz"), make_tiny_model())
  photo = os.path.join(LFW_DIR, "images_deepfunneled", "Aaron_Eckhart", "Aaron_Eckhart_0001.jpg")
  out = tmp_path / "res"
  r = _fit(TINY + [f"--image={photo}", f"--out={out}", f"--config.model={tmp_path / 'cube.npz'}"], tmp_path)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "another UV layout" in r.stderr and "cube.npz" in r.stderr
  verts = [line for line in (out / "mesh.obj").read_text().splitlines() if line.startswith("v ")]
  assert len(verts) == 8  # the cube's mesh, not ICT-FaceKit's
  rep = json.loads((out / "report.json").read_text())
  assert np.all(np.isfinite(np.array(rep["landmarks_photo_px"]))) and "ict" not in rep["assets"]


def test_cli_corrupt_cached_asset_exits_3(tmp_path):
  """A default asset in the cache that no longer matches its checksum: exit 3 with the fix, nothing written."""
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
  photo = os.path.join(LFW_DIR, "images_deepfunneled", "Aaron_Eckhart", "Aaron_Eckhart_0001.jpg")
  out = tmp_path / "res"
  r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fit.py"), f"--image={photo}", f"--out={out}"] + TINY,
                     capture_output=True, text=True, cwd=str(tmp_path), env=dict(os.environ, GANFIT_ASSETS=str(cache)))
  assert r.returncode == 3 and "sha256" in r.stderr and "fetch_assets.py --assets=sface --force" in r.stderr, \
      r.stderr[-2000:]
  assert "Traceback" not in r.stderr and not out.exists()
