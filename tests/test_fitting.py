import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np

from ganfit_jax import fitting

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


def test_cli_on_real_lfw_photo(tmp_path):
  photo = os.path.join(LFW_DIR, "images_deepfunneled", "Aaron_Eckhart", "Aaron_Eckhart_0001.jpg")
  out = tmp_path / "res"
  r = _fit([f"--image={photo}", f"--out={out}", "--steps=60"], tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  for name in ("mesh.obj", "mesh_neutral.obj", "overlay.png", "params.npz", "report.json"):
    assert (out / name).exists(), name
  rep = json.loads((out / "report.json").read_text())
  assert len(rep["landmarks_photo_px"]) == 68 and len(rep["landmarks_3d_mm"]) == 68
  assert "jawOpen" in rep["expression"]
  lm = np.array(rep["landmarks_photo_px"])
  assert lm[:, 0].min() > 0 and lm[:, 0].max() < 250  # mapped back onto the 250 px photo


def test_cli_bad_input_exits_nonzero_and_writes_nothing(tmp_path):
  bad = tmp_path / "notes.jpg"
  bad.write_text("hello")
  out = tmp_path / "res"
  r = _fit([f"--image={bad}", f"--out={out}"], tmp_path)
  assert r.returncode == 2 and "not an image format" in r.stderr
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
