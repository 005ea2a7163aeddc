"""Exports of a real fit: the animatable GLB (Khronos validator, morph targets, neutral = mesh_neutral.obj),
ARKit-52 weights, PLY, --export, the report page in headless Chromium, tools/view.py.

The node tools (tests/js, installed by setup.sh with npm ci) and Debian's Chromium are optional on a
developer machine (the tests skip without them) and required in CI (GANFIT_REQUIRE_JS=1, set by .ci/run).
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import ROOT
from ganfit_jax.outputs import arkit, meshes, page

JS = os.path.join(ROOT, "tests", "js")
REQUIRE_JS = os.environ.get("GANFIT_REQUIRE_JS") == "1"


def _need(what: str, ok: bool):
  if not ok:
    if REQUIRE_JS:
      pytest.fail(f"{what} is missing, and GANFIT_REQUIRE_JS=1 (CI) requires it: run bash setup.sh")
    pytest.skip(f"{what} is missing (bash setup.sh installs it)")


def _node_package(name: str):
  _need("node", shutil.which("node") is not None)
  _need(f"tests/js/node_modules/{name}", os.path.isdir(os.path.join(JS, "node_modules", name)))


@pytest.fixture(scope="module")
def fit_dir(tiny_fit):
  """The session's real fit (an LFW DevTest photo, the tiny preset, every export: conftest.tiny_fit)."""
  return tiny_fit[0]


def _accessor(gltf, blob: bytes, i: int) -> np.ndarray:
  """An accessor's values as float64 (dense or sparse), enough of glTF for these tests."""
  a = gltf.accessors[i]
  width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[a.type]
  dtype = {5126: np.float32, 5125: np.uint32, 5123: np.uint16}
  out = np.zeros((a.count, width), np.float64)
  if a.bufferView is not None:
    v = gltf.bufferViews[a.bufferView]
    out = np.frombuffer(blob, dtype[a.componentType], a.count * width, v.byteOffset + (a.byteOffset or 0))
    out = out.reshape(a.count, width).astype(np.float64)
  if a.sparse is not None:
    iv, vv = gltf.bufferViews[a.sparse.indices.bufferView], gltf.bufferViews[a.sparse.values.bufferView]
    idx = np.frombuffer(blob, dtype[a.sparse.indices.componentType], a.sparse.count, iv.byteOffset)
    out[idx] = np.frombuffer(blob, np.float32, a.sparse.count * width, vv.byteOffset).reshape(-1, width)
  return out


def _obj_vertices(path) -> np.ndarray:
  return np.array([l.split()[1:4] for l in open(path) if l.startswith("v ")], np.float64)


def test_glb_morph_targets_and_neutral(fit_dir, ict_model):
  import pygltflib
  gltf = pygltflib.GLTF2().load(str(fit_dir / "mesh.glb"))
  blob = gltf.binary_blob()
  mesh = gltf.meshes[0]
  prim = mesh.primitives[0]
  names = mesh.extras["targetNames"]
  assert len(prim.targets) == ict_model.num_expression == len(names) == len(mesh.weights) == 53
  assert names == arkit.target_names(ict_model.expression_names)
  assert "jawOpen" in names and "eyeBlinkLeft" in names and "browInnerUp_L" in names
  params = json.loads((fit_dir / "params.json").read_text())
  np.testing.assert_allclose(mesh.weights, list(params["expression"].values()), atol=1e-6)
  assert gltf.nodes[0].scale is None  # metres in the data itself
  base = _accessor(gltf, blob, prim.attributes.POSITION)
  # default weights zero -> the base mesh: the fitted identity, neutral expression (mesh_neutral.obj, mm)
  neutral = meshes.unweld(ict_model, _obj_vertices(fit_dir / "mesh_neutral.obj"))[0] * 1e-3
  assert base.shape == neutral.shape and np.abs(base - neutral).max() < 1e-4
  assert 0.1 < np.ptp(base[:, 1]) < 0.5  # a head in metres
  # the default weights -> the fitted mesh (mesh.obj)
  fitted = base + sum(w * _accessor(gltf, blob, t["POSITION"]) for w, t in zip(mesh.weights, prim.targets))
  want = meshes.unweld(ict_model, _obj_vertices(fit_dir / "mesh.obj"))[0] * 1e-3
  assert np.abs(fitted - want).max() < 1e-4
  jaw = _accessor(gltf, blob, prim.targets[names.index("jawOpen")]["POSITION"])
  assert np.abs(jaw).max() > 5e-3  # jawOpen moves the chin by centimetres
  assert prim.targets[0]["NORMAL"] is not None
  rep = json.loads((fit_dir / "report.json").read_text())
  assert rep["exports"]["glb"]["morph_targets"] == 53 and rep["exports"]["glb"]["bytes"] == os.path.getsize(
      fit_dir / "mesh.glb")


def test_glb_passes_the_khronos_validator(fit_dir, tmp_path):
  _node_package("gltf-validator")
  r = subprocess.run(["node", os.path.join(JS, "validate_gltf.mjs"), str(fit_dir / "mesh.glb")],
                     capture_output=True, text=True, timeout=300)
  rep = json.loads(r.stdout)
  assert r.returncode == 0 and rep["errors"] == 0, rep["messages"]
  assert rep["info"]["hasMorphTargets"] and rep["info"]["hasTextures"]
  # and the validator does catch a broken file
  bad = bytearray((fit_dir / "mesh.glb").read_bytes())
  bad[100:120] = b"\xff" * 20  # inside the JSON chunk
  (tmp_path / "bad.glb").write_bytes(bytes(bad))
  r = subprocess.run(["node", os.path.join(JS, "validate_gltf.mjs"), str(tmp_path / "bad.glb")],
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 1


def test_arkit52_and_ply(fit_dir, ict_model):
  a = json.loads((fit_dir / "arkit52.json").read_text())
  assert a["arkit_semantics"] is True and list(a["weights"]) == list(arkit.ARKIT52) and len(a["weights"]) == 52
  assert all(0.0 <= v <= 1.0 for v in a["weights"].values())
  expr = json.loads((fit_dir / "params.json").read_text())["expression"]
  assert a["weights"]["jawOpen"] == pytest.approx(expr["jawOpen"], abs=1e-6)
  assert a["weights"]["eyeBlinkLeft"] == pytest.approx(expr["eyeBlink_L"], abs=1e-6)
  assert a["weights"]["browInnerUp"] == pytest.approx((expr["browInnerUp_L"] + expr["browInnerUp_R"]) / 2, abs=1e-6)
  assert a["weights"]["tongueOut"] == 0.0 and a["no_counterpart"] == ["tongueOut"]
  import trimesh
  ply = trimesh.load(str(fit_dir / "mesh.ply"), process=False)
  rep = json.loads((fit_dir / "report.json").read_text())
  assert len(ply.vertices) == rep["exports"]["ply"]["vertices"] == len(meshes.unweld(ict_model, ict_model.mean)[0])
  np.testing.assert_allclose(ply.vertices, meshes.unweld(ict_model, _obj_vertices(fit_dir / "mesh.obj"))[0], atol=1e-3)
  raw = ply.metadata["_ply_raw"]["vertex"]["data"]
  colours = np.stack([raw[c] for c in ("red", "green", "blue")], 1).astype(float)
  assert colours.std() > 5  # sampled from the texture, not one flat colour
  np.testing.assert_allclose(np.asarray(ply.visual.uv), meshes.unweld(ict_model, ict_model.mean)[1], atol=1e-6)
  header = (fit_dir / "mesh.ply").read_bytes()[:600].decode("latin-1")
  assert "property float s" in header and "property float t" in header and "red" in header


def test_arkit_mapping_rules():
  names = ("browInnerUp_L", "browInnerUp_R", "jawOpen", "eyeBlink_L")
  m = arkit.mapping(names)
  assert m == {"browInnerUp": [0, 1], "jawOpen": [2], "eyeBlinkLeft": [3]}
  assert arkit.target_names(names) == ["browInnerUp_L", "browInnerUp_R", "jawOpen", "eyeBlinkLeft"]
  assert arkit.mapping(("jawOpen", "notAShape")) is None
  assert arkit.mapping(("jawOpen", "jawOpen")) is None  # two shapes claiming one ARKit shape
  pca = arkit.arkit52(("e0", "e1"), [0.5, -1.0], "gaussian", "bfm")
  assert pca["arkit_semantics"] is False and "weights" not in pca and "no ARKit semantics" in pca["note"]
  unknown = arkit.arkit52(("smile", "frown"), [0.5, 0.1], "blendshape", "mine")
  assert unknown["arkit_semantics"] is False
  unnamed = arkit.arkit52((), [0.5, 0.1], "blendshape", "cube")  # a model file without expression names
  assert unnamed["arkit_semantics"] is False and "2 expression shapes have no names" in unnamed["note"]
  with pytest.raises(ValueError, match="3 expression values for 2 expression names"):
    arkit.arkit52(("jawOpen", "mouthClose"), [0.1, 0.2, 0.3], "blendshape")


def test_report_page_without_viewer_still_shows_pictures(fit_dir, tmp_path):
  d = tmp_path / "copy"
  shutil.copytree(fit_dir, d, ignore=shutil.ignore_patterns("viewer", "index.html"))
  rep = json.loads((d / "report.json").read_text())
  page.write_page(str(d), rep, glb="mesh.glb", target_names=["jawOpen"], pictures=[("overlay.png", "overlay")],
                  viewer=False)
  text = (d / "index.html").read_text()
  assert "3D view unavailable" in text and "<img src='overlay.png'" in text and not (d / "viewer").exists()
  assert "identity cosine" in text and "http" not in text.replace("http (", "")  # no CDN, nothing remote
  full = (fit_dir / "index.html").read_text()
  assert "importmap" in full and "./viewer/three.module.min.js" in full and "cdn" not in full.lower()
  for name in ("photo.jpg", "overlay.png", "render.png", "texture.png", "convergence.png"):
    assert f"src='{name}'" in full, name


@contextlib.contextmanager
def _served(folder):
  """tools/view.py's server for ``folder`` in a thread; yields its base URL."""
  sys.path.insert(0, os.path.join(ROOT, "tools"))
  try:
    import view
  finally:
    sys.path.pop(0)
  server = view.serve(str(folder), 0)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}/"
  finally:
    server.shutdown()
    server.server_close()


def test_view_tool_serves_the_folder(fit_dir):
  import urllib.request
  with _served(fit_dir) as base:
    with urllib.request.urlopen(base) as resp:
      assert b"mesh.glb" in resp.read()
    with urllib.request.urlopen(base + "mesh.glb") as resp:
      assert resp.headers["Content-Type"] == "model/gltf-binary" and resp.read(4) == b"glTF"
  r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "view.py"), str(fit_dir / "nope")],
                     capture_output=True, text=True)
  assert r.returncode == 2 and "is not a folder" in r.stderr


def test_report_page_in_headless_chromium(fit_dir):
  """The page of a real fit: the 3D view loads, is not blank, and one expression slider changes it."""
  _node_package("playwright-core")
  chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
  _need("Debian's chromium", chromium is not None)
  shots = fit_dir / "browser_test"  # next to the fit's outputs
  shots.mkdir(exist_ok=True)
  with _served(fit_dir) as base:
    r = subprocess.run(["node", os.path.join(JS, "report_page.mjs"), base, str(shots), "jawOpen"],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, CHROMIUM=chromium))
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads(r.stdout.strip().splitlines()[-1])
  assert res["viewer"] == "ready", res
  assert res["sliders"] == 53 and res["main_sliders"] >= 10 and res["slider_found"]
  assert res["slider_after"] == 1.0 and res["slider_before"] != 1.0
  assert res["console"] == [], res["console"]
  import cv2
  before = cv2.imread(str(shots / "viewer_fitted.png")).astype(np.float64)
  after = cv2.imread(str(shots / "viewer_moved.png")).astype(np.float64)
  background = np.median(before.reshape(-1, 3), 0)
  face = np.abs(before - background).max(-1) > 20
  assert 0.1 < face.mean() < 0.9  # the head fills part of the view: not blank, not all one colour
  changed = np.abs(after - before).max(-1) > 20
  assert changed.mean() > 0.005  # jawOpen = 1 moves the chin
  rows = np.nonzero(changed.any(1))[0]
  assert rows.mean() > before.shape[0] * 0.4  # the change is in the lower half of the face, not everywhere
  dest = os.environ.get("GANFIT_TEST_ARTIFACTS")
  if dest:
    os.makedirs(dest, exist_ok=True)
    for name in ("page.png", "viewer_fitted.png", "viewer_moved.png"):
      shutil.copy(shots / name, os.path.join(dest, name))
