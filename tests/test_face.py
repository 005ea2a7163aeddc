"""Face front-end: every input kind, each bad input's own error, real LFW faces, alignment vs cv2."""

import glob
import os

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from PIL import Image

from ganfit_jax import face

from conftest import LFW_DIR

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "astronaut.jpg")


@pytest.fixture(scope="module")
def astronaut_rgb():
  return np.asarray(Image.open(EXAMPLE).convert("RGB"))


def test_input_kinds_load_as_rgb_float(tmp_path, astronaut_rgb):
  base = Image.fromarray(astronaut_rgb)
  paths = {}
  paths["grey"] = tmp_path / "g.png"
  base.convert("L").save(paths["grey"])
  paths["alpha"] = tmp_path / "a.png"
  base.convert("RGBA").save(paths["alpha"])
  paths["cmyk"] = tmp_path / "c.jpg"
  base.convert("CMYK").save(paths["cmyk"])
  paths["palette"] = tmp_path / "p.png"
  base.convert("P").save(paths["palette"])
  paths["sixteen"] = tmp_path / "s.png"
  Image.fromarray((np.asarray(base.convert("L"), np.uint16) * 257)).save(paths["sixteen"])
  for kind, p in paths.items():
    img = face.load_image(str(p))
    assert img.shape == (512, 512, 3) and img.dtype == np.float32, kind
    assert 0.0 <= img.min() and img.max() <= 1.0, kind
    assert abs(img.mean() - astronaut_rgb.mean() / 255) < 0.08, kind


def test_exif_orientation_is_applied(tmp_path, astronaut_rgb):
  im = Image.fromarray(astronaut_rgb[:, :400])  # 512 tall, 400 wide
  exif = Image.Exif()
  exif[0x0112] = 6  # rotate 90 degrees clockwise to display upright
  p = tmp_path / "rot.jpg"
  im.save(p, exif=exif.tobytes())
  assert face.load_image(str(p)).shape == (400, 512, 3)


def test_transparent_pixels_become_white(tmp_path):
  rgba = np.zeros((8, 8, 4), np.uint8)
  p = tmp_path / "t.png"
  Image.fromarray(rgba).save(p)
  np.testing.assert_allclose(face.load_image(str(p)), 1.0)


def test_bad_inputs_each_have_their_own_error(tmp_path):
  with pytest.raises(face.ImageReadError, match="not found"):
    face.load_image(str(tmp_path / "missing.jpg"))
  empty = tmp_path / "empty.jpg"
  empty.write_bytes(b"")
  with pytest.raises(face.ImageReadError, match="empty"):
    face.load_image(str(empty))
  text = tmp_path / "notes.jpg"
  text.write_text("not an image at all")
  with pytest.raises(face.UnsupportedFormatError, match="not an image format"):
    face.load_image(str(text))
  good = tmp_path / "good.jpg"
  cv2.imwrite(str(good), np.full((64, 64, 3), 128, np.uint8))
  truncated = tmp_path / "trunc.jpg"
  truncated.write_bytes(good.read_bytes()[:200])
  with pytest.raises(face.ImageReadError, match="corrupt or truncated"):
    face.load_image(str(truncated))
  with pytest.raises(face.ImageTooLargeError, match="limit"):
    face.load_image(str(good), max_pixels=1000)
  with pytest.raises(face.ImageReadError, match="directory"):
    face.load_image(str(tmp_path))


def test_no_face_and_small_face_errors(tmp_path, astronaut_rgb):
  blank = np.full((200, 200, 3), 0.5, np.float32)
  with pytest.raises(face.NoFaceError, match="no face found"):
    face.select_face(face.detect_faces(blank), source="blank")
  faces = face.detect_faces(astronaut_rgb.astype(np.float32) / 255)
  with pytest.raises(face.FaceTooSmallError, match="minimum is 5000 px"):
    face.select_face(faces, min_size=5000)
  with pytest.raises(face.FaceIndexError, match="face index 99"):
    face.select_face(faces, 99)


def test_astronaut_landmarks_plausible(astronaut_rgb):
  faces = face.detect_faces(astronaut_rgb.astype(np.float32) / 255)
  f = face.select_face(faces)
  lm = f.landmarks
  assert lm.shape == (68, 2)
  assert lm[36:42, 0].mean() < lm[42:48, 0].mean()  # image-left eye first
  assert lm[19, 1] < lm[30, 1] < lm[62, 1] < lm[8, 1]
  iod = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
  assert 30 < iod < 70  # eye centres of the 512 px portrait: 43 px apart (measured)
  # prepared from these landmarks: the canvas and the 4x detail crop; bad landmarks are a FaceInputError
  img = astronaut_rgb.astype(np.float32) / 255
  p = face.from_landmarks(img, lm, 224)
  assert p.canvas.shape == (224, 224, 3) and p.detail.shape == (896, 896, 3) and p.detail.dtype == np.uint8
  np.testing.assert_allclose(face.apply_affine(p.to_canvas, lm), p.landmarks, atol=1e-3)
  with pytest.raises(face.FaceInputError, match="68 finite"):
    face.from_landmarks(img, lm[:5], 224)
  with pytest.raises(face.FaceInputError, match="68 finite"):
    face.from_landmarks(img, np.full((68, 2), np.nan), 224)


def test_real_lfw_faces_one_each():
  paths = sorted(glob.glob(os.path.join(LFW_DIR, "images_deepfunneled", "*", "*_0001.jpg")))[:12]
  assert len(paths) == 12
  for p in paths:
    prepared = face.prepare(p, 224)
    assert prepared.num_faces >= 1
    assert prepared.canvas.shape == (224, 224, 3)
    # eyes land near the canvas template
    np.testing.assert_allclose(face.five_points(prepared.landmarks)[:2], face.canvas_template(224)[:2], atol=12)
    # the transform maps photo landmarks onto canvas landmarks
    np.testing.assert_allclose(face.apply_affine(prepared.to_canvas, prepared.photo_landmarks), prepared.landmarks,
                               atol=1e-3)


def test_user_landmarks_and_face_box(tmp_path):
  """--landmarks skips detection (a .pts file, 1-based); --face_box picks the face nearest the box, and
  predicts landmarks inside the box when the detector finds nothing there."""
  a = cv2.imread(os.path.join(LFW_DIR, "images_deepfunneled", "AJ_Cook", "AJ_Cook_0001.jpg"))
  b = cv2.imread(os.path.join(LFW_DIR, "images_deepfunneled", "Aaron_Peirsol", "Aaron_Peirsol_0001.jpg"))
  pair = np.concatenate([a, np.pad(cv2.resize(b, (200, 200)), ((0, 50), (0, 0), (0, 0)))], 1)  # 450 x 250
  path = str(tmp_path / "two.png")
  cv2.imwrite(path, pair)
  faces = face.detect_faces(face.load_image(path))
  assert len(faces) == 2
  right = [f for f in faces if f.box[0] > 250][0]
  x0, y0, x1, y1 = right.box
  p = face.prepare(path, 224, face_box=f"{x0 + 5},{y0 - 5},{x1 - x0},{y1 - y0}")
  np.testing.assert_allclose(p.photo_landmarks, right.landmarks)
  assert face.prepare(path, 224).photo_landmarks[:, 0].mean() < 250  # default: the largest (left) face
  both = face.prepare_faces(path, 224)  # --face=all
  assert len(both) == 2 and both[0].photo_landmarks[:, 0].mean() < 250 < both[1].photo_landmarks[:, 0].mean()
  centre = lambda f: np.hypot((f.box[0] + f.box[2]) / 2 - 225, (f.box[1] + f.box[3]) / 2 - 125)  # noqa: E731
  nearest = min(faces, key=centre)
  np.testing.assert_allclose(face.prepare(path, 224, select="center").photo_landmarks, nearest.landmarks)
  np.testing.assert_allclose(face.prepare(path, 224, select=1).photo_landmarks, faces[1].landmarks)
  with pytest.raises(face.FaceIndexError, match="has 2 face"):
    face.prepare(path, 224, select=2)
  with pytest.raises(face.FaceIndexError, match="use 'largest'"):
    face.prepare(path, 224, select="biggest")
  # a .pts file of those landmarks: no detection, the same canvas
  pts = tmp_path / "right.pts"
  pts.write_text("version: 1\nn_points: 68\n{\n" + "\n".join(f"{x + 0.5} {y + 0.5}" for x, y in right.landmarks)
                 + "\n}\n")
  q = face.prepare(path, 224, landmarks=str(pts))
  np.testing.assert_allclose(q.photo_landmarks, right.landmarks, atol=1e-4)
  np.testing.assert_allclose(q.canvas, p.canvas, atol=1e-5)
  # no detection given (e.g. another detector's box): landmarks predicted inside the box
  cv2.imwrite(str(tmp_path / "shifted.png"), np.concatenate([np.full_like(a, 128), a], 1))
  f0 = face.detect_faces(face.load_image(str(tmp_path / "shifted.png")), detector="dlib")[0]  # dlib's box
  box = f"{f0.box[0]},{f0.box[1]},{f0.box[2] - f0.box[0]},{f0.box[3] - f0.box[1]}"
  inside = face.face_near_box(face.load_image(str(tmp_path / "shifted.png")), [], box)
  assert inside.score == 0.0 and np.abs(inside.landmarks - f0.landmarks).max() < 1e-3  # the predictor alone
  for bad in ("1,2,3", "a,b,c,d", "0,0,-5,10", "nan,0,10,10"):
    with pytest.raises(face.FaceBoxError, match="x,y,w,h"):
      face.prepare(path, 224, face_box=bad)
  with pytest.raises(face.FaceBoxError, match="outside"):
    face.prepare(path, 224, face_box="5000,10,50,50")
  (tmp_path / "bad.pts").write_text("{ 1 2 3 4 }")
  with pytest.raises(face.LandmarkFileError, match="68 points"):
    face.prepare(path, 224, landmarks=str(tmp_path / "bad.pts"))
  far = np.asarray(right.landmarks) + 5000
  with pytest.raises(face.LandmarkFileError, match="outside"):
    face.prepare(path, 224, landmarks=far)


def test_similarity_transform_recovers_known_transform():
  rng = np.random.default_rng(0)
  src = rng.uniform(0, 100, size=(10, 2))
  ang, s, t = 0.3, 1.7, np.array([5.0, -3.0])
  r = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
  dst = s * src @ r.T + t
  m = face.similarity_transform(src, dst)
  np.testing.assert_allclose(m, np.concatenate([s * r, t[:, None]], 1), atol=1e-4)
  np.testing.assert_allclose(face.apply_affine(face.invert_affine(m), dst), src, atol=1e-3)


def _smooth_image(h=96, w=80):
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  return np.stack([0.5 + 0.4 * np.sin(x / 9.0), 0.5 + 0.4 * np.cos(y / 11.0), (x + y) / (h + w)], -1).astype(np.float32)


def test_warp_matches_cv2():
  img = _smooth_image()
  lm = np.array([[30, 40], [55, 41], [42, 55], [33, 70], [52, 69]], np.float32)
  m = face.similarity_transform(lm, face.ARCFACE_112)
  ours = np.asarray(face.warp_affine(jnp.asarray(img), jnp.asarray(m), 112, 112))
  ref = cv2.warpAffine(img, m.astype(np.float64), (112, 112), flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
  inner = ref.sum(-1) > 0  # compare where cv2 sampled inside the photo (border pixels differ by definition)
  inner = cv2.erode(inner.astype(np.uint8), np.ones((3, 3))).astype(bool)
  assert inner.mean() > 0.3
  assert np.abs(ours - ref)[inner].max() < 1e-3


def test_warp_gradients():
  img = jnp.asarray(_smooth_image(24, 24))
  m = jnp.array([[1.1, 0.2, -1.3], [-0.15, 0.95, 2.2]], jnp.float32)
  w = jnp.asarray(np.random.default_rng(0).uniform(size=(16, 16, 3)), jnp.float32)
  f = jax.jit(lambda im, mm: jnp.sum(face.warp_affine(im, mm, 16, 16) * w))
  check_grads(lambda im: f(im, m), (img,), order=1, modes=["rev"], eps=1e-2, atol=1e-2, rtol=1e-2)
  check_grads(lambda mm: f(img, mm), (m,), order=1, modes=["rev"], eps=1e-3, atol=5e-2, rtol=5e-2)
  g = jax.grad(f, argnums=(0, 1))(img, m)
  assert float(jnp.abs(g[0]).sum()) > 0 and float(jnp.abs(g[1]).sum()) > 0


def test_yunet_finds_tilted_faces_dlib_misses():
  """The default detector finds a face turned by 50 and 90 degrees, where dlib's frontal detector finds
  none, and its 68 points agree with dlib's on the upright photo turned the same way."""
  assert face.DEFAULT_DETECTOR == "combined" and set(face.DETECTORS) == {"combined", "yunet", "dlib"}
  photo = face.load_image(os.path.join(LFW_DIR, "images_deepfunneled", "Aaron_Eckhart", "Aaron_Eckhart_0001.jpg"))
  ref = face.detect_faces(photo, detector="dlib")[0].landmarks
  np.testing.assert_array_equal(face.detect_faces(photo)[0].landmarks, ref)  # combined: dlib's where it works
  alone = face.detect_faces(photo, detector="yunet")[0]
  iod = np.linalg.norm(ref[36] - ref[45])
  assert np.linalg.norm(alone.landmarks - ref, axis=1).mean() / iod < 0.06
  for degrees in (50, -90):
    img, m = face.turn(photo, degrees, border="reflect")
    truth = face.apply_affine(m, ref)
    assert not [f for f in face.detect_faces(img, detector="dlib") if f.size >= face.MIN_FACE_PIXELS]
    faces = face.detect_faces(img)  # combined: YuNet's face and points (dlib found none)
    assert faces, degrees
    err = np.linalg.norm(faces[0].landmarks - truth, axis=1).mean() / iod
    assert err < 0.08, (degrees, err)
  with pytest.raises(ValueError, match="detector 'mtcnn'"):
    face.detect_faces(photo, detector="mtcnn")


def test_dense_points_follow_the_face(astronaut_rgb):
  """MediaPipe's 478 points (face.facemesh) sit on the face dlib's 68 found: its eye corners and nose tip
  near dlib's, following the photo when it turns; prepared faces carry them on the canvas; no face in the
  region: no points."""
  from ganfit_jax.face import facemesh
  img = astronaut_rgb.astype(np.float32) / 255
  lm = face.select_face(face.detect_faces(img)).landmarks
  d = facemesh.detect(img, lm)
  assert d.points.shape == (478, 2) and d.z.shape == (478,) and d.score > 0.9
  eyes = np.linalg.norm(lm[36] - lm[45])
  assert np.linalg.norm(d.points[33] - lm[36]) < 0.1 * eyes and np.linalg.norm(d.points[263] - lm[45]) < 0.1 * eyes
  assert np.linalg.norm(d.points[4] - lm[30]) < 0.15 * eyes  # nose tip
  turned, m = face.turn(img, 30.0, border="reflect")
  dt = facemesh.detect(turned, face.apply_affine(m, lm))
  moved = np.linalg.norm(dt.points[:468] - face.apply_affine(m, d.points[:468]), axis=1)
  assert np.median(moved) < 0.04 * eyes, np.median(moved) / eyes
  p = face.from_landmarks(img, lm, 224)
  np.testing.assert_allclose(face.apply_affine(p.to_canvas, p.photo_dense), p.dense, atol=1e-3)
  grey = np.full_like(img, 0.5)
  assert face.from_landmarks(grey, lm, 224).dense is None
  assert face.from_landmarks(img, lm, 224, dense=False).dense is None
  with pytest.raises(ValueError, match="degenerate"):
    facemesh.region(np.zeros((5, 2)), np.zeros(2), np.ones(2))


def test_blendshape_scores_read_the_points(astronaut_rgb):
  """MediaPipe's blendshape network (face.blendshapes) on the astronaut's dense points: 51 ARKit names in [0, 1],
  her smile read as a smile; the same points shifted and scaled give the same scores; the points below the
  lips moved down (an opened jaw) raise jawOpen; wrong input is refused."""
  from ganfit_jax.face import blendshapes, facemesh
  img = astronaut_rgb.astype(np.float32) / 255
  lm = face.select_face(face.detect_faces(img)).landmarks
  pts = facemesh.detect(img, lm).points
  s = blendshapes.scores(pts)
  assert len(s) == 51 and "tongueOut" not in s and all(0.0 <= v <= 1.0 for v in s.values())
  assert s["mouthSmileLeft"] > 0.5 and s["mouthSmileRight"] > 0.5 and s["jawOpen"] < 0.2, s
  moved = blendshapes.scores(pts * 1.7 + np.array([40.0, -13.0]))
  assert max(abs(s[k] - moved[k]) for k in s) < 1e-3
  opened = pts.copy()
  below = opened[:, 1] > pts[[13, 14]].mean(0)[1]  # MediaPipe's inner-lip midpoints
  opened[below, 1] += 0.35 * np.linalg.norm(lm[36] - lm[45])
  assert blendshapes.scores(opened)["jawOpen"] > s["jawOpen"] + 0.4
  with pytest.raises(ValueError, match="478"):
    blendshapes.scores(pts[:468])


def test_native_libraries_notices_are_dropped_unless_verbose():
  """The detector (OpenCV's DNN) and the dense landmarks (the TFLite runtime) print notices from native code
  on their first use: a normal run drops them; absl's --v=1 shows them. Each case is its own process (the
  notices come once per process)."""
  import subprocess
  import sys
  from conftest import ROOT, lfw_photo
  code = ("import sys; from absl import logging; logging.set_verbosity(int(sys.argv[2])); "
          "from ganfit_jax import face; p = face.prepare(sys.argv[1], dense=True); "
          "print(p.dense is not None)")
  notices = ("setPreferableTarget", "XNNPACK delegate")
  for verbosity, shown in ((0, False), (1, True)):
    r = subprocess.run([sys.executable, "-c", code, lfw_photo("Aaron_Peirsol"), str(verbosity)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr[-2000:]
    assert all((n in r.stderr) == shown for n in notices), (verbosity, r.stderr[-2000:])


def test_native_notices_filter_keeps_other_lines(capfd):
  from ganfit_jax import runtime
  with runtime.native_notices_dropped(["noise"]):
    os.write(2, b"some noise here\nan actual warning\n")
  err = capfd.readouterr().err
  assert "an actual warning" in err and "noise" not in err


def test_blendshape_model_weights_follow_the_network_names():
  """face.blendshapes.model_weights: a fitted ICT expression's ARKit weights in the order of scores' names
  (one shape on shows under its ARKit name); a model without ARKit semantics gives None."""
  import dataclasses
  from ganfit_jax import morphable
  from ganfit_jax.face import blendshapes
  model = morphable.load("ict")
  e = np.zeros(model.num_expression, np.float32)
  e[list(model.expression_names).index("mouthSmile_L")] = 0.8
  w = blendshapes.model_weights(model, e)
  assert w.shape == (51,) and w[blendshapes.NAMES.index("mouthSmileLeft") - 1] == pytest.approx(0.8)
  assert np.count_nonzero(w) == 1
  assert blendshapes.model_weights(dataclasses.replace(model, expression_names=()), e) is None
