import os

import pytest

from ganfit_jax import assets


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
  monkeypatch.delenv(assets.ENV_ICT_DIR, raising=False)
  with pytest.raises(assets.AssetError, match="ICT-FaceKit"):
    assets.fetch(["ict"], log=lambda s: None)
  assert os.listdir(tmp_path) == []


def test_wrong_ict_dir(tmp_path, monkeypatch):
  monkeypatch.setenv(assets.ENV_CACHE, str(tmp_path / "cache"))
  with pytest.raises(assets.AssetError, match="not an ICT-FaceKit checkout"):
    assets.fetch(["ict"], ict_dir=str(tmp_path), log=lambda s: None)


def test_package_assets_verified():
  p = assets.path("dlib_landmarks68")
  assert p.endswith("shape_predictor_68_face_landmarks.dat")


def test_unknown_asset():
  with pytest.raises(assets.AssetError, match="unknown asset"):
    assets.path("inception")
