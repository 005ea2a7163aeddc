"""The runnable examples in examples/, each run as a user would (a child process, short settings)."""

import os
import subprocess
import sys

from conftest import ROOT


def _run(script, *args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "examples", script)] + list(args), cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


def test_custom_loss_term_example_makes_the_shape_symmetric(tmp_path):
  r = _run("custom_loss_term.py", "--steps=20")
  assert r.returncode == 0, r.stderr[-3000:]
  rows = {line[:22].strip(): [float(x) for x in line[22:].split()] for line in r.stdout.splitlines()[1:]}
  plain, sym = rows["as it is"], rows["+ symmetry x 2"]
  assert sym[0] < 0.5 * plain[0], rows  # the term did its job
  assert sym[1] < plain[1] + 1.0, rows  # and the landmarks are still followed
  assert "tpu" not in r.stderr and "XNNPACK" not in r.stderr, r.stderr[-2000:]  # a quiet run
  (tmp_path / "x.jpg").write_text("not an image")
  r = _run("custom_loss_term.py", f"--image={tmp_path / 'x.jpg'}")
  assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_score_mesh_against_scan_example(tmp_path):
  r = _run("score_mesh_against_scan.py")
  assert r.returncode == 0, r.stderr[-3000:]
  rows = {line[:24].strip(): [float(x) for x in line[24:].split()] for line in r.stdout.splitlines()[1:]}
  assert rows["the person"][0] < 0.4 < rows["the mean face"][0]  # the noise (0.3 mm) vs another face
  assert "tpu" not in r.stderr, r.stderr[-2000:]
  # files: the example's own made-up person written out and scored from disk gives the same figure
  import numpy as np
  sys.path.insert(0, os.path.join(ROOT, "examples"))
  try:
    import score_mesh_against_scan as ex
  finally:
    sys.path.pop(0)
  scan, scan_lm, preds = ex.made_up_pair()
  mesh, lm = preds["the person"]
  import trimesh
  trimesh.Trimesh(mesh.vertices, mesh.triangles, process=False).export(tmp_path / "pred.obj")
  trimesh.PointCloud(scan.vertices).export(tmp_path / "scan.ply")
  np.savetxt(tmp_path / "pred.txt", lm)
  np.savetxt(tmp_path / "scan.txt", scan_lm)
  r = _run("score_mesh_against_scan.py", f"--pred={tmp_path / 'pred.obj'}", f"--pred_landmarks={tmp_path / 'pred.txt'}",
           f"--scan={tmp_path / 'scan.ply'}", f"--scan_landmarks={tmp_path / 'scan.txt'}")
  assert r.returncode == 0, r.stderr[-3000:]
  got = [float(x) for x in r.stdout.splitlines()[1][24:].split()]
  assert abs(got[0] - rows["the person"][0]) < 0.01, (got, rows)
  r = _run("score_mesh_against_scan.py", f"--pred={tmp_path / 'pred.obj'}")
  assert r.returncode == 2 and "give all four" in r.stderr and "Traceback" not in r.stderr


def test_render_layer_example_recovers_pose_and_expression():
  r = _run("render_layer.py")
  assert r.returncode == 0, r.stderr[-3000:]
  rows = {line.split()[0]: [float(x) for x in line.split()[1:]] for line in r.stdout.splitlines()[1:]}
  assert rows["before"][0] > 10 and rows["before"][2] > 0.2, rows  # it starts elsewhere
  assert rows["after"][0] < 1.0 and rows["after"][1] < 1.0 and rows["after"][2] < 0.05, rows


def test_batch_fit_example_on_two_simulated_devices():
  """Three photos over two (simulated) CPU devices: the batch is padded to four, split, and three results
  come back, one line each."""
  from ganfit_jax.data import lfw
  root = lfw.root()
  photos = [lfw.image_path(root, p, 1) for p in ("AJ_Cook", "Aaron_Peirsol", "Abdoulaye_Wade")]
  env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"))
  r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "batch_fit.py"), "--photos=" + ",".join(photos)],
                     cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
  assert r.returncode == 0, r.stderr[-3000:]
  lines = r.stdout.splitlines()
  assert lines[0].startswith("3 photos in one batch on 2 device(s)"), lines
  rows = [line.split() for line in lines[2:]]
  assert [x[0] for x in rows] == ["AJ_Cook_0001.jpg", "Aaron_Peirsol_0001.jpg", "Abdoulaye_Wade_0001.jpg"]
  assert all(float(x[-1]) < 15.0 for x in rows), rows  # every face followed its landmarks


def test_train_regressor_example_trains_saves_and_reloads(tmp_path):
  out = tmp_path / "reg.npz"
  r = _run("train_regressor_on_photos.py", "--steps=30", f"--out={out}")
  assert r.returncode == 0, r.stderr[-3000:]
  rows = {line.split()[0]: float(line.split()[-1]) for line in r.stdout.splitlines()[2:]}
  assert rows["trained"] < 0.2 * rows["untrained"], rows  # it learnt
  assert abs(rows["reloaded"] - rows["trained"]) < 0.02 * rows["trained"], rows  # float16 weights, same result
  assert out.exists() and out.stat().st_size < 1_000_000
  assert "checkpoint_manager" not in r.stderr and "tpu" not in r.stderr, r.stderr[-2000:]
  r = _run("train_regressor_on_photos.py", f"--photos={tmp_path / 'none'}")
  assert r.returncode == 2 and "not a folder" in r.stderr
