"""UV unwrapping: texel map, mirror maps, visibility, recovery of a known texture, the dataset tool."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import LFW_DIR
from ganfit_jax import camera, lighting, morphable
from ganfit_jax.render import pipeline
from ganfit_jax.texture import layout
from ganfit_jax.texture import unwrap as uw

ROOT = os.path.join(os.path.dirname(__file__), "..")

# iBUG-68 left/right pairs (0-based).
IBUG_PAIRS = ([(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)] + [(31, 35), (32, 34)]
              + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
              + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)])


@pytest.fixture(scope="module")
def tmap(ict_model):
  return layout.texel_map(ict_model, 64)


def test_texel_mirror_is_an_involution_and_the_ict_flip(tmap):
  m = tmap.mirror.ravel()
  has = m >= 0
  assert has.sum() >= 0.95 * tmap.mask.sum()
  assert np.all(m[m[has]] == np.flatnonzero(has))  # mirroring twice is the identity
  t = tmap.size
  flip = np.arange(t * t).reshape(t, t)[:, ::-1].ravel()
  assert np.mean(m[has] == flip[has]) > 0.99  # ICT's UV layout is mirror-symmetric about u = 0.5


def test_texel_points_on_the_host_equal_the_traced_ones(ict_model, tmap):
  """Layouts are built on the host with NumPy (no device program per call); traced code gets jax arrays."""
  host = layout.texel_points(np.asarray(ict_model.mean), tmap, ict_model.triangles)
  dev = layout.texel_points(jnp.asarray(ict_model.mean), tmap, ict_model.triangles)
  assert isinstance(host, np.ndarray) and not isinstance(dev, np.ndarray)
  np.testing.assert_allclose(host, np.asarray(dev), atol=1e-3)
  assert np.all(host[~tmap.mask] == 0) and np.abs(host[tmap.mask]).max() > 10  # mm, zeros off the chart


def test_vertex_mirror_maps_landmark_pairs(ict_model):
  vm = layout.vertex_mirror(ict_model)
  assert np.all(vm[vm[vm >= 0]] == np.flatnonzero(vm >= 0))
  mean = np.asarray(ict_model.mean)
  lm = np.asarray(ict_model.landmarks)
  for a, b in IBUG_PAIRS:
    assert vm[lm[a]] >= 0
    # the mirror of landmark a is (within 3 mm) landmark b
    assert np.linalg.norm(mean[vm[lm[a]]] - mean[lm[b]]) < 3.0, (a, b)


_render = jax.jit(pipeline.render, static_argnames=("height", "width"))  # compiled: eager runs op by op


def test_unwrap_recovers_a_known_texture(ict_model, tmap):
  t = tmap.size
  ii, jj = np.meshgrid(np.arange(t), np.arange(t), indexing="ij")
  tex = np.stack([ii / t, jj / t, 0.5 + 0.5 * np.sin(ii / 3.0) * np.cos(jj / 4.0)], -1).astype(np.float32)
  cam = camera.orbit_camera(yaw=20.0)
  verts = morphable.vertices(ict_model, jnp.zeros(ict_model.num_identity))
  flat = lighting.make_light(colour=(0, 0, 0), ambient=(1, 1, 1))  # unlit: the image shows the albedo
  img = _render(verts, ict_model.triangles, ict_model.uv, ict_model.uv_triangles, jnp.asarray(tex), cam,
                flat, height=224, width=224).image
  u = jax.jit(lambda im, v, c: uw.unwrap(im, v, ict_model.triangles, c, tmap, canvas_size=224))(img, verts, cam)
  vis = np.asarray(u.visible)
  assert vis.sum() > 0.4 * tmap.mask.sum()
  err = np.abs(np.asarray(u.texture) - tex)[vis]
  assert err.mean() < 0.01 and np.percentile(err, 95) < 0.03, (err.mean(), np.percentile(err, 95))
  # turned 20 degrees: more texels seen on one half of the (symmetric) layout than the other
  left, right = vis[:, :t // 2].sum(), vis[:, t // 2:].sum()
  assert abs(int(left) - int(right)) > 0.05 * vis.sum()
  conf = np.asarray(u.confidence)
  assert np.all(conf[~vis] == 0) and np.all((conf[vis] > 0.25) & (conf[vis] <= 1))


def _occluder_scene():
  """A 200 mm back quad (UV tile [0,1]^2) and a 20 mm quad 30 mm in front of it (UV tile [1,2])."""
  def quad(h, z):
    return np.array([[-h, -h, z], [h, -h, z], [h, h, z], [-h, h, z]], np.float32)
  v = np.concatenate([quad(100, 0), quad(10, 30)])
  tris = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
  uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [1.2, 0.2], [1.8, 0.2], [1.8, 0.8], [1.2, 0.8]], np.float32)
  return morphable.from_arrays(mean=v, id_basis=np.zeros((1, 8, 3)), exp_basis=np.zeros((1, 8, 3)),
                               triangles=tris, landmarks=np.zeros(68, int), uv=uv, uv_triangles=tris,
                               name="occluder")


def test_visibility_mask_on_an_occluded_quad():
  model = _occluder_scene()
  tm = layout.texel_map(model, 32)
  assert tm.mask.all()  # the back quad fills the chart
  cam = camera.make_camera(position=(0, 0, 1000), look_at=(0, 0, 0), focal=3.0)
  img = jnp.ones((128, 128, 3)) * 0.5
  unwrap = jax.jit(lambda c, t: uw.unwrap(img, model.mean, model.triangles, c, tm, canvas_size=128, normal_threshold=t))
  u = unwrap(cam, 0.1)
  pts = np.asarray(layout.texel_points(model.mean, tm, model.triangles))
  vis = np.asarray(u.visible)
  inner = np.max(np.abs(pts[..., :2]), -1) < 9.0  # behind the occluder (its shadow reaches 10.3 mm)
  outer = (np.max(np.abs(pts[..., :2]), -1) > 12.0) & (np.max(np.abs(pts[..., :2]), -1) < 60.0)
  assert inner.sum() > 0 and not vis[inner].any()
  assert vis[outer].all()
  # seen from behind, nothing faces the camera
  back = camera.make_camera(position=(0, 0, -1000), look_at=(0, 0, 0), focal=3.0)
  ub = unwrap(back, 0.25)
  assert not np.asarray(ub.visible).any()


def test_complete_fills_from_the_mirror_then_inpaints(tmap):
  t = tmap.size
  rng = np.random.default_rng(0)
  tex = rng.random((t, t, 3)).astype(np.float32)
  vis = tmap.mask.copy()
  vis[:, : t // 2] = False  # left half unseen
  vis[:4] = False  # top rows unseen on both sides
  out, status, conf = uw.complete(tex * vis[..., None], vis, vis.astype(np.float32), tmap)
  mir = tmap.mirror
  sel = (status == uw.MIRRORED)
  assert sel.sum() > 0.3 * tmap.mask.sum()
  src = mir[sel]
  np.testing.assert_allclose(out[sel], tex.reshape(-1, 3)[src], atol=1e-6)
  np.testing.assert_allclose(conf[sel], 0.5)
  assert np.all(status[~tmap.mask] == uw.OUTSIDE)
  assert np.all(status[vis] == uw.OBSERVED)
  filled = status == uw.FILLED
  assert filled.any() and np.all(np.isfinite(out)) and np.all(out[filled].max(-1) > 0)


def test_deshade_removes_a_synthetic_light(ict_model, tmap):
  verts = morphable.vertices(ict_model, jnp.zeros(ict_model.num_identity))
  n = layout.texel_normals(verts, ict_model.triangles, tmap)
  albedo = jnp.full((tmap.size, tmap.size, 3), 0.6) * jnp.array([[[1.0, 0.8, 0.7]]])
  l = jnp.array([0.6, 0.3, 0.74]) / jnp.linalg.norm(jnp.array([0.6, 0.3, 0.74]))
  shade = 0.4 + 0.8 * jnp.maximum(jnp.sum(n * l[None, None, :], -1), 0.0)
  vis = jnp.asarray(tmap.mask) & (n[..., 2] > 0.3)
  lit = jnp.where(vis[..., None], albedo * shade[..., None], 0.0)
  out, _ = uw.deshade(lit, vis, n)
  v = np.asarray(vis)
  spread_before = np.asarray(lit)[v].std(0).mean()
  spread_after = np.asarray(out)[v].std(0).mean()
  assert spread_after < 0.25 * spread_before, (spread_before, spread_after)


def test_tiny_dataset_build_splits_and_resumes(tmp_path):
  out = tmp_path / "uv"
  cmd = [sys.executable, os.path.join(ROOT, "tools", "build_uv_dataset.py"), f"--out={out}",
         f"--config={os.path.join(ROOT, 'configs', 'uv_dataset_tiny.py')}",
         f"--faces_cache={tmp_path / 'faces.jsonl'}", f"--lfw_dir={LFW_DIR}"]
  r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-3000:]
  summary = json.load(open(out / "summary.json"))
  manifest = [json.loads(l) for l in open(out / "manifest.jsonl")]
  assert len(manifest) == 12 and summary["splits"]["train"]["photos"] == 6
  train_people = {m["person"] for m in manifest if m["split"] == "train"}
  held_people = {m["person"] for m in manifest if m["split"] == "heldout"}
  assert not train_people & held_people
  dev_train = {l.split()[0] for l in open(os.path.join(LFW_DIR, "peopleDevTrain.txt")).read().splitlines()[1:]}
  assert train_people <= dev_train and not held_people & dev_train
  from ganfit_jax.data import uv_dataset
  data = uv_dataset.load_split(str(out), "train")
  kept = [m for m in manifest if m["split"] == "train" and m["kept"]]
  assert len(data["files"]) == len(kept) > 0
  assert data["texture"].shape[1:] == (64, 64, 3) and data["texture"].dtype == np.uint8
  assert set(np.unique(data["status"])) <= {0, 1, 2, 3} and (data["status"] == 3).mean() > 0.3
  batch = next(uv_dataset.stream(str(out), "train", batch_size=2))
  assert batch["texture"].shape == (2, 64, 64, 3) and batch["texture"].max() <= 1.0
  mtimes = {p: os.path.getmtime(out / p) for p in os.listdir(out) if p.endswith(".npz")}
  r2 = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  assert r2.returncode == 0 and "(4 already done)" in r2.stdout
  assert mtimes == {p: os.path.getmtime(out / p) for p in mtimes}


def _raw_shards(folder, sizes, t=32, seed=0):
  """Synthetic shards in the format tools/build_uv_dataset.py writes (smooth textures, a round chart)."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:t, 0:t] / t
  chart = (xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.2
  os.makedirs(folder, exist_ok=True)
  all_tex = []
  for k, n in enumerate(sizes):
    wave = 0.2 * np.sin(6 * xx)[None, ..., None] * rng.uniform(-1, 1, (n, 1, 1, 1))
    base = rng.uniform(0.2, 0.8, (n, 1, 1, 3)) + wave
    tex = (np.clip(base, 0, 1) * 255).astype(np.uint8) * chart[None, ..., None]
    status = np.where(chart, 3, 0).astype(np.uint8)[None].repeat(n, 0)
    np.savez(os.path.join(folder, f"train-{k:05d}.npz"), texture=tex, status=status,
             confidence=np.full((n, t, t), 200, np.uint8), files=np.array([f"p{k}_{i}.jpg" for i in range(n)]),
             records=np.array("[]"))
    all_tex.append(tex)
  return np.concatenate(all_tex), chart


def test_packed_copy_round_trip_and_readers(tmp_path):
  from ganfit_jax.data import uv_dataset
  tex, chart = _raw_shards(str(tmp_path / "raw"), [5, 3])
  info = uv_dataset.pack(str(tmp_path / "raw"), str(tmp_path / "lossless"), quality=101, log=lambda s: None)
  assert info["maps"] == 8 and info["mean_abs_error"] == 0.0
  assert np.array_equal(uv_dataset.textures(str(tmp_path / "lossless"), "train"), tex)
  assert np.array_equal(uv_dataset.chart(str(tmp_path / "lossless")), chart)
  assert np.array_equal(uv_dataset.chart(str(tmp_path / "raw")), chart)
  data = uv_dataset.load_split(str(tmp_path / "lossless"), "train")
  assert set(data) == {"texture", "files"} and list(data["files"][:2]) == ["p0_0.jpg", "p0_1.jpg"]
  lossy = uv_dataset.pack(str(tmp_path / "raw"), str(tmp_path / "q60"), quality=60, log=lambda s: None)
  back = uv_dataset.textures(str(tmp_path / "q60"), "train").astype(np.float32)
  err = np.abs(back - tex).mean()
  assert 0 < lossy["mean_abs_error"] < 8 and abs(err - lossy["mean_abs_error"]) < 1e-3
  batch = next(uv_dataset.stream(str(tmp_path / "lossless"), "train", batch_size=2))
  assert set(batch) == {"texture"} and batch["texture"].dtype == np.float32 and batch["texture"].shape == (2, 32, 32, 3)
  raw_batch = next(uv_dataset.stream(str(tmp_path / "raw"), "train", batch_size=2))
  assert set(raw_batch) == {"texture", "status", "confidence"}
  with pytest.raises(ValueError, match="packed shard"):
    uv_dataset._read_shard(uv_dataset.shards(str(tmp_path / "lossless"), "train")[0], with_status=True)
  with pytest.raises(ValueError, match="already packed"):
    uv_dataset.pack(str(tmp_path / "lossless"), str(tmp_path / "again"), log=lambda s: None)
  with pytest.raises(ValueError, match="quality"):
    uv_dataset.pack(str(tmp_path / "raw"), str(tmp_path / "bad"), quality=0)


def test_memory_stream_covers_every_map_once_per_epoch():
  from ganfit_jax.data import uv_dataset
  maps = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
  it = uv_dataset.memory_stream(maps, batch_size=5, seed=3)
  first = np.concatenate([next(it)["texture"][:, 0, 0, 0] for _ in range(2)])
  assert sorted(first.tolist()) == list(range(10))
  assert next(it)["texture"].dtype == np.uint8
  with pytest.raises(ValueError, match="cannot fill"):
    next(uv_dataset.memory_stream(maps, batch_size=11))


def test_pack_tool_and_train_gan_read_packed_data(tmp_path):
  _raw_shards(str(tmp_path / "raw"), [12], t=16)
  r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "pack_uv_dataset.py"), f"--data={tmp_path / 'raw'}",
                      f"--out={tmp_path / 'packed'}", "--quality=101"], capture_output=True, text=True, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-2000:]
  assert json.load(open(tmp_path / "packed" / "packed.json"))["maps"] == 12
  r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "pack_uv_dataset.py"), f"--data={tmp_path / 'raw'}",
                      f"--out={tmp_path / 'raw'}"], capture_output=True, text=True, cwd=ROOT)
  assert r.returncode == 2 and "must differ" in r.stderr
  cmd = [sys.executable, os.path.join(ROOT, "tools", "train_gan.py"), f"--data={tmp_path / 'packed'}",
         f"--workdir={tmp_path / 'gan'}", f"--config={os.path.join(ROOT, 'configs', 'train_gan_tiny.py')}",
         "--config.total_images=48"]
  r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-3000:]
  recs = [json.loads(l) for l in open(tmp_path / "gan" / "losses.jsonl")]
  assert recs and recs[-1]["images"] == 48 and all(np.isfinite(r["d_loss"]) for r in recs)


def test_photo_detail_recovers_albedo_and_fixes_base_colour(ict_model):
  """A photo rendered from a known albedo under a known light: photo detail returns that albedo where the
  photo sees the face, gives the unseen skin the photo's skin chroma (not the base's green cast), and puts
  the cheek colour on the neck."""
  from ganfit_jax.texture import detail
  t, canvas = 128, 112
  tmap = layout.texel_map(ict_model, t)
  ii, jj = np.meshgrid(np.arange(t), np.arange(t), indexing="ij")
  skin = np.array([0.75, 0.55, 0.45], np.float32)
  albedo = (skin[None, None, :] * (0.85 + 0.15 * np.sin(ii / 5.0) * np.cos(jj / 7.0))[..., None]).astype(np.float32)
  cam = camera.orbit_camera(yaw=0.0)
  verts = morphable.vertices(ict_model, jnp.zeros(ict_model.num_identity))
  light = lighting.make_light(colour=(0.5, 0.5, 0.5), ambient=(0.6, 0.6, 0.6))
  photo = _render(verts, ict_model.triangles, ict_model.uv, ict_model.uv_triangles, jnp.asarray(albedo),
                          cam, light, height=2 * canvas, width=2 * canvas).image
  base = jnp.full((t, t, 3), 0.5) * jnp.array([[[0.8, 1.1, 0.8]]])  # a grey-green base texture
  lay = detail.detail_layout(ict_model, t)
  face_w = detail.face_weight(ict_model, tmap)
  cheeks = detail.cheek_mask(ict_model, tmap)
  c2p = jnp.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
  out, conf = detail.photo_detail_jit(photo, verts, ict_model.triangles, cam, light, base, c2p, lay,
                                      jnp.asarray(face_w), jnp.asarray(cheeks), canvas_size=canvas)
  out, conf = np.asarray(out), np.asarray(conf)
  assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1
  skin_t = tmap.mask & (tmap.material == 0)
  seen = skin_t & (conf > 0.99) & (face_w > 0.99)
  assert seen.sum() > 0.15 * skin_t.sum()
  err = np.abs(out - albedo)[seen].mean()
  base_err = np.abs(np.asarray(base) - albedo)[seen].mean()
  assert err < 0.05 and err < 0.3 * base_err, (err, base_err)  # the photo's albedo, not the base
  # skin the photo never saw (conf 0) on the face: the base's luminance with the photo's skin chroma
  unseen = skin_t & (conf == 0) & (face_w > 0.99)
  assert unseen.sum() > 100
  chroma = out[unseen] / out[unseen].mean(-1, keepdims=True)
  np.testing.assert_allclose(np.median(chroma, 0), skin / skin.mean(), atol=0.05)
  # the eye caps keep the base's texels
  eye = tmap.mask & (tmap.material != 0)
  assert eye.sum() > 50
  np.testing.assert_allclose(out[eye], np.asarray(base)[eye], atol=1e-6)
  # the neck (face weight 0): one colour, the cheeks'
  neck = tmap.mask & (face_w == 0)
  assert neck.sum() > 100
  np.testing.assert_allclose(out[neck].std(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(out[neck][0] / out[neck][0].mean(), skin / skin.mean(), atol=0.05)


def test_photo_detail_of_several_photos_fills_each_side_from_the_photo_that_sees_it(ict_model):
  """Two photos of one face turned left and right, its two halves of different colours: fused detail gives
  each half its own colour where one photo alone fills the far half from the mirror (the near half's)."""
  from ganfit_jax.texture import detail
  t, canvas = 128, 112
  tmap = layout.texel_map(ict_model, t)
  x = layout.texel_points(np.asarray(ict_model.mean), tmap, ict_model.triangles)[..., 0]
  left, right = np.array([0.8, 0.5, 0.4], np.float32), np.array([0.5, 0.55, 0.75], np.float32)
  albedo = np.where((x > 0)[..., None], left, right).astype(np.float32)
  verts = morphable.vertices(ict_model, jnp.zeros(ict_model.num_identity))
  light = lighting.make_light(colour=(0.5, 0.5, 0.5), ambient=(0.6, 0.6, 0.6))
  cams = [camera.orbit_camera(yaw=np.deg2rad(a)) for a in (40.0, -40.0)]
  photos = [_render(verts, ict_model.triangles, ict_model.uv, ict_model.uv_triangles, jnp.asarray(albedo), c, light,
                    height=2 * canvas, width=2 * canvas).image for c in cams]
  base = jnp.full((t, t, 3), 0.6)
  lay = detail.detail_layout(ict_model, t)
  face_w, cheeks = jnp.asarray(detail.face_weight(ict_model, tmap)), jnp.asarray(detail.cheek_mask(ict_model, tmap))
  c2p = jnp.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
  one, conf1 = detail.photo_detail_jit(photos[0], verts, ict_model.triangles, cams[0], light, base, c2p, lay, face_w,
                                       cheeks, canvas_size=canvas)
  both, conf2 = detail.photo_detail_jit(jnp.stack(photos), jnp.stack([verts, verts]), ict_model.triangles,
                                        jnp.stack(cams), jnp.stack([light, light]), base, c2p, lay, face_w, cheeks,
                                        canvas_size=canvas)
  one, both, conf1, conf2 = (np.asarray(a) for a in (one, both, conf1, conf2))
  skin = tmap.mask & (tmap.material == 0) & (np.asarray(face_w) > 0.99)
  own = np.asarray(detail.observe(photos[0], verts, ict_model.triangles, cams[0], light, c2p, lay,
                                  canvas_size=canvas)[1])
  far = skin & (own == 0) & (conf2 > 0.99)  # the side only the second photo sees
  assert far.sum() > 0.1 * skin.sum()
  err_one = np.abs(one - albedo)[far].mean()
  err_both = np.abs(both - albedo)[far].mean()
  assert err_both < 0.04 and err_both < 0.25 * err_one, (err_both, err_one)
  assert conf2[skin].mean() > conf1[skin].mean()  # the second photo adds what the first could only mirror


def test_texel_maps_are_stored_beside_the_exported_programs(tmp_path, monkeypatch):
  """With a disk folder a texel map is computed once and read back by the next process (here: the memory
  cache cleared); another package version's file of the same layout is removed when it is written."""
  from ganfit_jax import compiled
  model = _occluder_scene()
  monkeypatch.setattr(compiled, "_DISK", [str(tmp_path)])
  monkeypatch.setattr(layout, "_CACHE", {})
  key = layout._layout_digest(model, 32)
  stale = tmp_path / f"texel_map-32-{key}-0000000000000000.npz"
  stale.write_bytes(b"old")
  first = layout.texel_map(model, 32)
  files = sorted(p.name for p in tmp_path.glob("texel_map-*"))
  assert len(files) == 1 and not stale.exists() and key in files[0]
  layout._CACHE.clear()
  calls = []
  monkeypatch.setattr(layout, "_compute_texel_map", lambda *a: calls.append(a))
  again = layout.texel_map(model, 32)
  assert calls == []  # read from the file, not recomputed
  for f in ("triangle", "bary", "mask", "mirror", "material"):
    np.testing.assert_array_equal(getattr(again, f), getattr(first, f))
