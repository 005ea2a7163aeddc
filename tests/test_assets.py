import importlib.util
import os

import pytest

from ganfit_jax import assets
from ganfit_jax.convert import build


def test_default_model_present_and_verified():
  p = assets.path("ict")
  assert os.path.exists(p) and os.path.exists(p + ".sha256")


def test_missing_asset_names_the_fix(tmp_path, monkeypatch):
  monkeypatch.setenv(assets.ENV_CACHE, str(tmp_path))
  with pytest.raises(assets.AssetError, match="tools/fetch_assets.py --assets=ict"):
    assets.path("ict")


def test_corrupt_asset_detected(tmp_path, monkeypatch):
  monkeypatch.setenv(assets.ENV_CACHE, str(tmp_path))
  p = tmp_path / assets.ASSETS["ict"].filename
  p.write_bytes(b"hello")
  (tmp_path / (p.name + ".sha256")).write_text("0" * 64 + "  x\n")
  with pytest.raises(assets.AssetError, match="corrupt"):
    assets.path("ict")


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
  monkeypatch.setenv(assets.ENV_CACHE, str(tmp_path))
  monkeypatch.delenv(build.ENV_ICT_DIR, raising=False)
  with pytest.raises(assets.AssetError, match="ICT-FaceKit"):
    build.fetch(["ict"], log=lambda s: None)
  assert os.listdir(tmp_path) == []


def test_wrong_ict_dir(tmp_path, monkeypatch):
  monkeypatch.setenv(assets.ENV_CACHE, str(tmp_path / "cache"))
  with pytest.raises(assets.AssetError, match="not an ICT-FaceKit checkout"):
    build.fetch(["ict"], ict_dir=str(tmp_path), log=lambda s: None)


def test_package_assets_verified():
  p = assets.path("dlib_landmarks68")
  assert p.endswith("shape_predictor_68_face_landmarks.dat")


def test_unknown_asset():
  with pytest.raises(assets.AssetError, match="unknown asset"):
    assets.path("inception")


def test_registry_imports_no_network_or_builder_code():
  """The asset registry sits at the bottom of the import graph: importing it loads nothing else of
  the project and no network or model code."""
  import subprocess
  import sys
  code = ("import sys, ganfit_jax.assets; "
          "print(sorted(m for m in sys.modules if m.startswith(('ganfit_jax', 'flax', 'jax', 'onnx', 'torch'))))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
  assert out.strip() == "['ganfit_jax', 'ganfit_jax.assets']", out


def test_importing_the_package_changes_no_process_state():
  import subprocess
  import sys
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  code = "import os, ganfit_jax, ganfit_jax.fitting, ganfit_jax.reconstruct; print(os.environ.get('XLA_FLAGS'))"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
  assert out.strip() == "None"


def _project_imports(path: str) -> set:
  """The project modules a source file imports (module level and inside functions), by reading its code."""
  import ast
  mods = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ganfit_jax"):
      for alias in node.names:  # `from ganfit_jax import face` imports the module ganfit_jax.face
        sub = f"{node.module}.{alias.name}"
        try:
          is_module = importlib.util.find_spec(sub) is not None
        except ModuleNotFoundError:  # a name inside a module, not a submodule
          is_module = False
        mods.add(sub if is_module else node.module)
    elif isinstance(node, ast.Import):
      mods |= {a.name for a in node.names if a.name.startswith("ganfit_jax")}
  return mods


def test_reconstructor_composes_a_few_stages():
  """Reconstructor composes the stages (scene, mode policy, objective, fitting, outputs) without owning them:
  its module imports at most 12 project modules."""
  from ganfit_jax import reconstruct
  mods = _project_imports(reconstruct.__file__)
  assert len(mods) <= 12, sorted(mods)
