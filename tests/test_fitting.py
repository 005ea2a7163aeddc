import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from ganfit_jax import fitting, objective

from conftest import LFW_DIR

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_stage1_recovers_synthetic_landmarks(ict_model):
  truth = fitting.init_params(ict_model).replace(
      shape=jnp.zeros(100).at[:5].set(jnp.array([1.0, -0.5, 0.8, 0.3, -1.0])),
      camera_delta=jnp.array([0.3, -0.2, 0.1, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.2]))
  target = fitting.project_landmarks(ict_model, truth, 224)
  params, history = fitting.fit_stage1(ict_model, target, fitting.Stage1Config(steps=300))
  assert history[-1]["landmark_rmse_px"] < 1.0
  assert history[-1]["loss"] < history[0]["loss"] / 50
  ev = np.asarray(fitting.expression_values(ict_model, params.expression))
  assert ev.min() >= 0.0 and ev.max() <= 1.0  # ICT activations stay in range


def test_stage1_rejects_nan_landmarks(ict_model):
  import pytest
  with pytest.raises(ValueError, match="NaN"):
    fitting.fit_stage1(ict_model, np.full((68, 2), np.nan))


def _fit(args, tmp_path):
  return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fit.py")] + args, capture_output=True,
                        text=True, cwd=str(tmp_path))


FAST = ["--config.stage1_steps=40", "--config.stage2_steps=8"]


def test_cli_on_real_lfw_photo(tmp_path):
  photo = os.path.join(LFW_DIR, "images_deepfunneled", "Aaron_Eckhart", "Aaron_Eckhart_0001.jpg")
  out = tmp_path / "res"
  r = _fit([f"--image={photo}", f"--out={out}"] + FAST, tmp_path)
  assert r.returncode == 0, r.stderr[-3000:]
  for name in ("mesh.obj", "mesh.mtl", "texture.png", "mesh_neutral.obj", "mesh.glb", "params.npz",
               "params.json", "overlay.png", "comparison.png", "convergence.png", "report.json"):
    assert (out / name).exists() and (out / name).stat().st_size > 0, name
  rep = json.loads((out / "report.json").read_text())
  assert len(rep["landmarks_photo_px"]) == 68 and len(rep["landmarks_3d_mm"]) == 68
  lm = np.array(rep["landmarks_photo_px"])
  assert lm[:, 0].min() > 0 and lm[:, 0].max() < 250  # mapped back onto the 250 px photo
  assert -1.0 <= rep["identity_cosine_photo_vs_render"] <= 1.0
  assert set(rep["final_loss_terms"]) >= {"identity", "identity_hat", "content", "pixel", "landmark"}
  params = json.loads((out / "params.json").read_text())
  assert "jawOpen" in params["expression"] and len(params["camera"]["position"]) == 3
  assert "map_Kd texture.png" in (out / "mesh.mtl").read_text()
  obj_text = (out / "mesh.obj").read_text()
  assert obj_text.startswith("# ganfit_jax") and "mtllib mesh.mtl" in obj_text
  import cv2
  assert cv2.imread(str(out / "comparison.png")).shape == (224, 4 * 224, 3)
  import pygltflib
  glb = pygltflib.GLTF2().load(str(out / "mesh.glb"))
  assert glb.meshes[0].primitives[0].attributes.TEXCOORD_0 is not None and len(glb.images) == 1


def test_cli_several_photos_of_one_person_and_a_folder(tmp_path):
  d = os.path.join(LFW_DIR, "images_deepfunneled", "Aaron_Peirsol")
  photos = [os.path.join(d, f"Aaron_Peirsol_000{i}.jpg") for i in (1, 2)]
  out = tmp_path / "person"
  r = _fit([f"--images={','.join(photos)}", f"--out={out}"] + FAST, tmp_path)
  assert r.returncode == 0, r.stderr[-3000:]
  a = np.load(out / "Aaron_Peirsol_0001" / "params.npz")
  b = np.load(out / "Aaron_Peirsol_0002" / "params.npz")
  np.testing.assert_array_equal(a["shape"], b["shape"])  # shared identity
  np.testing.assert_array_equal(a["texture_latent"], b["texture_latent"])
  assert not np.array_equal(a["camera"], b["camera"])  # per-photo pose
  assert (out / "identity" / "mesh_neutral.obj").exists() and (out / "summary.json").exists()
  # a folder with one good photo and one broken file: the broken one is skipped and reported
  folder = tmp_path / "folder"
  folder.mkdir()
  import shutil
  shutil.copy(photos[0], folder / "good.jpg")
  (folder / "broken.jpg").write_bytes(b"not a jpeg")
  out2 = tmp_path / "many"
  r = _fit([f"--input_dir={folder}", f"--out={out2}", "--config.batch_size=1"] + FAST, tmp_path)
  assert r.returncode == 0, r.stderr[-3000:]
  summary = json.loads((out2 / "summary.json").read_text())
  assert len(summary["per_image"]) == 1 and len(summary["skipped"]) == 1
  assert "broken.jpg" in r.stderr and (out2 / "good" / "mesh.glb").exists()


def test_cli_bad_input_exits_nonzero_and_writes_nothing(tmp_path):
  bad = tmp_path / "notes.jpg"
  bad.write_text("hello")
  out = tmp_path / "res"
  r = _fit([f"--image={bad}", f"--out={out}"], tmp_path)
  assert r.returncode == 2 and "not an image format" in r.stderr, r.stderr[-2000:]
  assert not out.exists()
  blank = tmp_path / "blank.png"
  import cv2
  cv2.imwrite(str(blank), np.full((120, 120, 3), 127, np.uint8))
  r = _fit([f"--image={blank}", f"--out={out}"], tmp_path)
  assert r.returncode == 2 and "no face found" in r.stderr
  assert not out.exists()
  assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".fit-")] == []


def test_stage1_step_compiles_once_across_photos(ict_model):
  cfg = fitting.Stage1Config(steps=3)
  rng = np.random.default_rng(0)
  base = np.asarray(fitting.project_landmarks(ict_model, fitting.init_params(ict_model), 224))
  fitting.fit_stage1(ict_model, base + rng.normal(size=(68, 2)), cfg)
  before = fitting.stage1_step._cache_size()
  fitting.fit_stage1(ict_model, base + rng.normal(size=(68, 2)), cfg)
  assert fitting.stage1_step._cache_size() == before


# --------------------------------------------------------------------------- #
# The full objective and the two-stage fit.

@pytest.fixture(scope="module")
def gan_setup(ict_model):
  from ganfit_jax import objective as obj
  from ganfit_jax.nets import identity
  from ganfit_jax.texture import models
  tm = models.load("gan")
  net = identity.load("sface")
  o = obj.make_objective(ict_model, tm, net)
  return o, obj.frozen_arrays(ict_model, tm, net), tm


def _synthetic_truth(ict_model, o, frozen, tm):
  import jax
  from ganfit_jax import objective as obj
  truth = o.init_params(ict_model, tm.latent_dim, tm.sample_latent(jax.random.PRNGKey(3)))
  truth = truth.replace(shape=truth.shape.at[:4].set(jnp.array([0.8, -0.6, 0.5, 0.4])),
                        camera_delta=jnp.array([0.25, -0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1]),
                        light_delta=jnp.array([0.5, 0.3, 0.0, 0.1, 0.0, -0.1, 0.05, 0.0, 0.0]))
  grey = jnp.full((224, 224, 3), 0.3)
  out, _ = jax.jit(o.render_params)(frozen, truth, grey)
  lm3 = fitting.morphable.landmark_points(ict_model, truth.shape, obj.expression_values(
      ict_model.expression_kind, truth.expression))
  lm, _ = fitting.camera_lib.project(obj.camera_of(truth), lm3, 224, 224)
  return truth, np.asarray(out.image), np.asarray(lm)


def test_synthetic_recovery_and_one_compilation(ict_model, gan_setup):
  import jax
  o, frozen, tm = gan_setup
  truth, image, lm = _synthetic_truth(ict_model, o, frozen, tm)
  targets = fitting.prepare_targets(o, frozen, image[None], lm[None], jax.random.PRNGKey(0))
  # a tiny schedule that leans on the pixel term (the identity terms alone do not pin pixels down)
  cfg = fitting.FitConfig(stage1_steps=60, stage2_steps=40, num_inits=2, lr_texture=0.05,
                          weights=(("identity", 0.5), ("identity_hat", 0.0), ("content", 5.0)))
  step, _ = fitting.make_fit_step(o, cfg)
  res = fitting.fit(o, frozen, targets, cfg, jax.random.PRNGKey(1), tm.latent_dim, step_fn=step)
  assert step._cache_size() == 1  # stage 1 -> stage 2 is a change of traced weights, not a recompile
  h = res.history
  assert h["landmark_rmse_px"][-1] < 2.0 < h["landmark_rmse_px"][0]
  s2 = h["loss"][cfg.stage1_steps:]
  assert s2[-5:].mean() < s2[:3].mean()  # stage 2 decreases its objective
  assert h["pixel"][-1] < h["pixel"][cfg.stage1_steps]
  p = jax.tree_util.tree_map(lambda x: x[0], res.params)
  out, _ = jax.jit(o.render_params)(frozen, p, jnp.full((224, 224, 3), 0.3))
  face = np.abs(image - 0.3).max(-1) > 1e-6  # where the true render shows the face
  err = np.abs(np.asarray(out.image) - image)[face].mean()
  start = o.init_params(ict_model, tm.latent_dim)
  out0, _ = jax.jit(o.render_params)(frozen, start, jnp.full((224, 224, 3), 0.3))
  err0 = np.abs(np.asarray(out0.image) - image)[face].mean()
  print("face-region error: start", err0, "fitted", err, "pixel term", h["pixel"][cfg.stage1_steps], h["pixel"][-1])
  assert err < 0.7 * err0, (err, err0)
  cam_err = np.abs(np.asarray(objective.camera_of(p) - objective.camera_of(truth)))
  assert cam_err[:3].max() < 60.0  # camera position within 6 cm of the truth at ~1 m
  assert res.init_losses.shape == (1, 2) and res.best_init[0] == np.argmin(res.init_losses[0])


def test_multi_image_fit_shares_identity(ict_model, gan_setup):
  import jax
  o, frozen, tm = gan_setup
  truth, image, lm = _synthetic_truth(ict_model, o, frozen, tm)
  images = np.stack([image, image[:, ::-1]])
  lms = np.stack([lm, lm])  # the landmarks need not match the flip for this check
  targets = fitting.prepare_targets(o, frozen, images, lms, jax.random.PRNGKey(0))
  cfg = fitting.FitConfig(stage1_steps=4, stage2_steps=3, num_inits=1)
  res = fitting.fit(o, frozen, targets, cfg, jax.random.PRNGKey(1), tm.latent_dim, shared_identity=True)
  np.testing.assert_array_equal(np.asarray(res.params.shape[0]), np.asarray(res.params.shape[1]))
  np.testing.assert_array_equal(np.asarray(res.params.texture[0]), np.asarray(res.params.texture[1]))
  assert not np.array_equal(np.asarray(res.params.light_delta[0]), np.asarray(res.params.light_delta[1]))
