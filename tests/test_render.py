"""Renderer: golden scenes computed by hand, gradient checks, jit/vmap agreement, NaN safety."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganfit_jax import camera, lighting, morphable
from ganfit_jax import numerics as gmath
from ganfit_jax.render import raster
from ganfit_jax.render import (barycentrics, interpolate, make_light, rasterize, render_model, sample_texture)
from ganfit_jax.render import render as render_eager

from conftest import make_tiny_model

# the renderer compiled (one program per scene shape); eager calls compile each operation on its own first use
render = jax.jit(render_eager, static_argnames=("height", "width", "specular", "shininess", "cull_backfaces"))
H = W = 16
# Camera 100 mm in front of the origin, focal 1 (x H pixels): a point at x mm lands at 8 + 16 x / 100.
CAM = camera.make_camera((0, 0, 100), (0, 0, 0), (0, 1, 0), 1.0)
FLAT = make_light((0, 0, 1000), (0, 0, 0), (1, 1, 1))  # ambient 1, no point light: image = albedo

QUAD_V = jnp.array([[-25, -25, 0], [25, -25, 0], [25, 25, 0], [-25, 25, 0]], jnp.float32)
QUAD_T = jnp.array([[0, 1, 2], [0, 2, 3]], jnp.int32)
QUAD_UV = jnp.array([[0, 0], [1, 0], [1, 1], [0, 1]], jnp.float32)


def ramp_texture(t=8):
  u = (jnp.arange(t) + 0.5) / t
  return jnp.stack([jnp.tile(u[None, :], (t, 1)), jnp.tile(u[::-1, None], (1, t)), jnp.zeros((t, t))], -1)


def render_quad(verts=QUAD_V, tex=None, cam=CAM, light=FLAT, **kw):
  tex = ramp_texture() if tex is None else tex
  return render(verts, QUAD_T, QUAD_UV, QUAD_T, tex, cam, light, height=H, width=W, **kw)


def test_textured_quad_golden():
  out = render_quad()
  expected_mask = np.zeros((H, W), bool)
  expected_mask[4:12, 4:12] = True  # corners project to pixels 4 and 12 exactly
  np.testing.assert_array_equal(np.asarray(out.mask), expected_mask)
  img = np.asarray(out.image)
  k = np.arange(8)
  # pixel centre 4.5 + k maps to u = (k + 0.5) / 8: texel centres of the ramp, so exact values
  np.testing.assert_allclose(img[4:12, 4:12, 0], np.tile((k + 0.5) / 8, (8, 1)), atol=1e-5)
  np.testing.assert_allclose(img[4:12, 4:12, 1], np.tile(((7 - k + 0.5) / 8)[::-1, None], (1, 8))[::-1], atol=1e-5)
  assert np.all(img[~expected_mask] == 0)


def test_backface_culled_and_kept():
  flipped = render(QUAD_V, QUAD_T[:, ::-1], QUAD_UV, QUAD_T[:, ::-1], ramp_texture(), CAM, FLAT, height=H, width=W)
  assert not np.asarray(flipped.mask).any()
  kept = render(QUAD_V, QUAD_T[:, ::-1], QUAD_UV, QUAD_T[:, ::-1], ramp_texture(), CAM, FLAT, height=H, width=W,
                cull_backfaces=False)
  assert np.asarray(kept.mask).sum() == 64


def test_two_triangles_depth_order():
  # red triangle at z=0 covers the left, blue at z=10 (nearer) covers the right; they overlap in the middle
  v = jnp.array([[-40, -40, 0], [40, -40, 0], [-40, 40, 0], [-20, -40, 10], [40, -40, 10], [40, 40, 10]],
                jnp.float32)
  uv = jnp.array([[0.1, 0.5], [0.1, 0.5], [0.1, 0.5], [0.9, 0.5], [0.9, 0.5], [0.9, 0.5]], jnp.float32)
  tex = jnp.stack([jnp.ones((2, 2)), jnp.zeros((2, 2)), jnp.zeros((2, 2))], -1)
  tex = tex.at[:, 1].set(jnp.array([0.0, 0.0, 1.0]))  # left texel red, right texel blue
  for tris in (jnp.array([[0, 1, 2], [3, 4, 5]]), jnp.array([[3, 4, 5], [0, 1, 2]])):
    out = render(v, tris, uv, tris, tex, CAM, FLAT, height=H, width=W)
    img, fb = np.asarray(out.image), out.framebuffer
    # pixel (row 10, col 9): (9.375, -15.6) mm at z=0 and (8.4, -14.1) mm at z=10: inside both
    assert img[10, 9].tolist() == [0.0, 0.0, 1.0]
    assert img[4, 2].tolist() == [1.0, 0.0, 0.0]  # (-34.4, 21.9) mm: only the far one there
    tri_id = np.asarray(fb.triangle_id)[10, 9]
    assert np.asarray(tris)[tri_id].tolist() == [3, 4, 5]


def test_cube_uv_seam_uses_per_corner_uvs():
  model = make_tiny_model()
  v = np.asarray(model.mean)
  # each cube side gets its own constant texel column, so the 8 shared vertices need 12*3 UVs
  normals = np.asarray(morphable.face_normals(model.mean, model.triangles))
  side = np.argmax(np.abs(normals), 1) * 2 + (normals[np.arange(12), np.argmax(np.abs(normals), 1)] > 0)
  uv = np.stack([(side.repeat(3) + 0.5) / 6, np.full(36, 0.5)], 1).astype(np.float32)
  uv_tri = np.arange(36).reshape(12, 3)
  colours = np.eye(6, 3) + np.array([[0, 0, 0]] * 3 + [[0.5, 0.5, 0]] * 3)
  tex = jnp.asarray(np.tile(colours[None], (1, 1, 1)), jnp.float32)  # (1, 6, 3)
  cam = camera.make_camera((300, 250, 400), (0, 0, 0), (0, 1, 0), 1.5)
  out = render(jnp.asarray(v), model.triangles, jnp.asarray(uv), jnp.asarray(uv_tri), tex, cam, FLAT,
               height=64, width=64)
  img, tid = np.asarray(out.image), np.asarray(out.framebuffer.triangle_id)
  mask = np.asarray(out.mask)
  seen = set()
  for y, x in zip(*np.nonzero(mask)):
    s = side[tid[y, x]]
    seen.add(int(s))
    np.testing.assert_allclose(img[y, x], colours[s], atol=1e-5)
  assert seen == {1, 3, 5}  # +x, +y, +z sides face this camera


def _scene_loss(weights):
  def loss(verts, tex, cam, light):
    out = render(verts, QUAD_T, QUAD_UV, QUAD_T, tex, cam, light, height=H, width=W, specular=0.3)
    return jnp.sum(out.image * weights)
  return loss


def test_gradients_match_finite_differences():
  """The reverse-mode gradient of every input (vertices, texture, camera, light) against central differences
  along random directions (check_grads' rev-mode check, with one compiled forward and one compiled gradient)."""
  w = jnp.asarray(np.random.default_rng(0).uniform(size=(H, W, 3)), jnp.float32)
  loss = jax.jit(_scene_loss(w))
  verts = QUAD_V + jnp.array([[0.3, -0.2, 1.0], [0.1, 0.2, -2.0], [-0.2, 0.1, 0.5], [0.2, 0.3, 0.0]])
  light = make_light((30, 40, 200), (0.6, 0.5, 0.4), (0.3, 0.3, 0.3))
  args = (verts, ramp_texture(), CAM, light)
  grads = jax.jit(jax.grad(_scene_loss(w), argnums=(0, 1, 2, 3)))(*args)
  rng = np.random.default_rng(1)
  eps = 1e-3
  for i, g in enumerate(grads):
    assert float(jnp.abs(g).sum()) > 0, i
    for _ in range(2):
      d = jnp.asarray(rng.normal(size=args[i].shape), jnp.float32)
      d = d / jnp.linalg.norm(d)
      at = lambda x: loss(*(args[:i] + (x,) + args[i + 1:]))  # noqa: E731
      numeric = (float(at(args[i] + eps * d)) - float(at(args[i] - eps * d))) / (2 * eps)
      analytic = float(jnp.sum(g * d))
      assert abs(numeric - analytic) <= 2e-2 + 2e-2 * abs(numeric), (i, numeric, analytic)


def test_jit_matches_eager_and_vmap_matches_loop():
  model = make_tiny_model()
  cams = jnp.stack([camera.make_camera((300 * s, 250, 400), (0, 0, 0), (0, 1, 0), 1.5) for s in (1.0, -1.0, 0.5)])
  tex = ramp_texture()
  light = make_light((100, 100, 400), (0.5, 0.5, 0.5), (0.4, 0.4, 0.4))

  def one(cam):
    return render_model(model, jnp.zeros(2), jnp.zeros(2), tex, cam, light, height=32, width=32).image

  eager = jnp.stack([one(c) for c in cams])
  jitted = jnp.stack([jax.jit(one)(c) for c in cams])
  batched = jax.jit(jax.vmap(one))(cams)
  np.testing.assert_allclose(jitted, eager, atol=1e-5)
  np.testing.assert_allclose(batched, eager, atol=1e-5)


def test_no_nan_gradients_for_degenerate_and_empty():
  # a zero-area triangle, a triangle behind the camera, and pixels with no coverage
  v = jnp.array([[-25, -25, 0], [25, -25, 0], [25, 25, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0],
                 [0, 0, 200], [5, 0, 200], [0, 5, 200]], jnp.float32)
  tris = jnp.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]], jnp.int32)
  uv = jnp.zeros((9, 2))

  def loss(verts, cam):
    out = render(verts, tris, uv, tris, ramp_texture(), cam, make_light((0, 0, 50), (1, 1, 1), (0.1, 0.1, 0.1)),
                 height=H, width=W, specular=0.5)
    return jnp.sum(out.image) + jnp.sum(out.normals)

  grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
  gv, gc = grad(v, CAM)
  assert np.all(np.isfinite(np.asarray(gv))) and np.all(np.isfinite(np.asarray(gc)))
  # everything off screen: no coverage at all
  g_empty, _ = grad(v + jnp.array([[1e4, 0, 0]]), CAM)
  assert np.all(np.isfinite(np.asarray(g_empty)))


def test_stages_usable_alone():
  xy, depth = camera.project(CAM, QUAD_V, H, W)
  np.testing.assert_allclose(np.asarray(xy), [[4, 12], [12, 12], [12, 4], [4, 4]], atol=1e-5)
  fb = rasterize(xy, depth, QUAD_T, H, W)
  b = barycentrics(fb, xy, depth, QUAD_T)
  np.testing.assert_allclose(np.asarray(b.sum(-1))[np.asarray(fb.mask)], 1.0, atol=1e-6)
  pos = interpolate(b, fb, QUAD_V, QUAD_T)
  # pixel (row 4, col 4) centre (4.5, 4.5) -> x = (4.5 - 8) * 100 / 16 = -21.875, y = +21.875
  np.testing.assert_allclose(np.asarray(pos[4, 4]), [-21.875, 21.875, 0], atol=1e-4)
  c = sample_texture(ramp_texture(), jnp.array([[0.5, 0.5]]))
  np.testing.assert_allclose(np.asarray(c), [[0.5, 0.5, 0.0]], atol=1e-6)


def test_perspective_correct_interpolation():
  # a quad tilted in depth: the interpolated world position must lie on the 3D plane and match the ray
  v = jnp.array([[-25, -25, -40], [25, -25, 20], [25, 25, 20], [-25, 25, -40]], jnp.float32)
  xy, depth = camera.project(CAM, v, H, W)
  fb = rasterize(xy, depth, QUAD_T, H, W)
  pos = np.asarray(interpolate(barycentrics(fb, xy, depth, QUAD_T), fb, v, QUAD_T))
  m = np.asarray(fb.mask)
  ys, xs = np.nonzero(m)
  p = pos[ys, xs]
  np.testing.assert_allclose(p[:, 2], -10 + 60 * (p[:, 0] / 50), atol=1e-3)  # on the plane z = -10 + 1.2 x
  # re-projecting the interpolated point gives back the pixel centre
  back, _ = camera.project(CAM, jnp.asarray(p), H, W)
  np.testing.assert_allclose(np.asarray(back), np.stack([xs + 0.5, ys + 0.5], 1), atol=1e-3)


def test_large_triangles_never_cut():
  big = QUAD_V * 4  # two triangles covering the whole 96-pixel image
  out = render(big, QUAD_T, QUAD_UV, QUAD_T, ramp_texture(), CAM, FLAT, height=96, width=96)
  assert np.asarray(out.mask).sum() == 96 * 96
  assert raster.window_ladder(96, 96)[-1] == 96
  assert raster.window_ladder(224, 224) == (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 224)


def test_rasterize_independent_of_chunking(ict_model):
  """Bucketed, chunked rasterisation equals a brute-force z-buffer over all triangles."""
  cam = camera.orbit_camera(yaw=np.deg2rad(30.0))
  n = 32
  xy, depth = camera.project(cam, ict_model.mean, n, n)
  tris = jnp.asarray(ict_model.triangles)
  rasterize_with = jax.jit(raster.rasterize, static_argnames=("height", "width", "chunk_samples"))
  fbs = [rasterize_with(xy, depth, tris, height=n, width=n, chunk_samples=c) for c in (512, 8192)]
  np.testing.assert_array_equal(np.asarray(fbs[0].triangle_id), np.asarray(fbs[1].triangle_id))
  # brute force (numpy): nearest front-facing triangle whose interior holds each pixel centre
  tv, td = np.asarray(xy)[np.asarray(tris)], np.asarray(depth)[np.asarray(tris)]
  p = np.stack(np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5, indexing="xy"), -1).reshape(-1, 1, 2)
  cr = lambda a, b: a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]  # noqa: E731
  v0, v1, v2 = tv[None, :, 0], tv[None, :, 1], tv[None, :, 2]
  area = cr(v1 - v0, v2 - v0)[0]
  w = np.stack([cr(v1 - p, v2 - p), cr(v2 - p, v0 - p), cr(v0 - p, v1 - p)], -1) / area[None, :, None]
  inside = np.all(w >= -1e-6, -1) & (area < -1e-9)[None]
  z = 1.0 / np.sum(w / td[None], -1)
  z = np.where(inside, z, np.inf)
  want = np.where(np.isfinite(z.min(1)), z.argmin(1), -1).reshape(n, n)
  got = np.where(np.asarray(fbs[1].mask), np.asarray(fbs[1].triangle_id), -1)
  assert (want >= 0).sum() > 150
  assert (got == want).mean() > 0.995  # ties on shared edges may go either way


def test_ict_face_render_covers_face(ict_model):
  out = jax.jit(lambda: render_model(ict_model, jnp.zeros(100), jnp.zeros(53), jnp.full((8, 8, 3), 0.7),
                                     camera.default_camera(), make_light((0, 200, 1500), (0.6, 0.6, 0.6),
                                                                         (0.5, 0.5, 0.5)), height=64, width=64))()
  lm_xy, _ = camera.project(camera.default_camera(), ict_model.mean[ict_model.landmarks], 64, 64)
  lm = np.asarray(lm_xy).astype(int)
  assert np.asarray(out.mask)[lm[30, 1], lm[30, 0]]  # the nose tip is covered


def test_xla_defaults_respect_the_user(monkeypatch):
  from ganfit_jax import runtime
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
  monkeypatch.delenv("GANFIT_XLA_DEFAULTS", raising=False)
  assert runtime.apply_xla_flags()
  assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2",
                                            "--xla_cpu_experimental_ynn_fusion_type="]
  assert not runtime.apply_xla_flags()  # already there: unchanged
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=reduce")
  assert not runtime.apply_xla_flags() and os.environ["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=reduce"
  monkeypatch.setenv("XLA_FLAGS", "")
  monkeypatch.setenv("GANFIT_XLA_DEFAULTS", "0")
  assert not runtime.apply_xla_flags() and os.environ["XLA_FLAGS"] == ""


@pytest.mark.skipif(os.environ.get("GANFIT_XLA_DEFAULTS") == "0", reason="XLA defaults switched off by the user")
def test_small_reductions_compile_without_ynn_fusions():
  f = jax.jit(lambda x, y: jnp.sum(x[..., None] * y, -1).sum(-1))
  # at this size jaxlib 0.10.2 emits "__ynn_fusion" kernels for these sums unless the flag is set
  assert "__ynn_fusion" not in f.lower(jnp.ones((64, 64, 3)), jnp.ones((64, 64, 3, 9))).compile().as_text()


def test_phong_gradient_matches_autodiff_reference():
  """The hand-written diffuse VJP equals autodiff of the plain formula, incl. a zero
  normal (ambient only, finite gradient), back-lit pixels and vmap."""
  from ganfit_jax.render import shading

  def reference(albedo, normals, positions, light):
    pos, colour, ambient = (x.reshape(1, 1, 3) for x in lighting.split(light))
    n = gmath.safe_normalize(normals)
    l = gmath.safe_normalize(pos - positions)
    ndotl = jnp.maximum(jnp.sum(n * l, -1, keepdims=True), 0.0)
    return albedo * (ambient + colour * ndotl)

  rng = np.random.default_rng(3)
  albedo = jnp.asarray(rng.uniform(size=(6, 5, 3)), jnp.float32)
  normals = jnp.asarray(rng.normal(size=(6, 5, 3)), jnp.float32).at[0, 0].set(0.0)
  positions = jnp.asarray(rng.normal(size=(6, 5, 3)) * 50.0, jnp.float32)
  light = jnp.asarray([30.0, 200.0, 1500.0, 0.6, 0.5, 0.7, 0.4, 0.5, 0.3], jnp.float32)
  weights = jnp.asarray(rng.normal(size=(6, 5, 3)), jnp.float32)
  eye = jnp.zeros(3)
  got = jax.jit(shading.phong)(albedo, normals, positions, light, eye)
  np.testing.assert_allclose(np.asarray(got), np.asarray(reference(albedo, normals, positions, light)), atol=1e-6)
  assert (np.sum(np.asarray(normals) * (np.asarray(positions) - np.asarray(light[:3])), -1) > 0).any()  # back-lit
  args = (albedo, normals, positions, light)
  g_ref = jax.jit(jax.grad(lambda *a: jnp.sum(reference(*a) * weights), argnums=(0, 1, 2, 3)))(*args)
  g = jax.jit(jax.grad(lambda *a: jnp.sum(shading.phong(*a, eye) * weights), argnums=(0, 1, 2, 3)))(*args)
  for a, b in zip(g, g_ref):
    assert np.isfinite(np.asarray(a)).all()
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5 * float(jnp.abs(b).max()))
  grad_light = jax.grad(lambda l: jnp.sum(shading.phong(albedo, normals, positions, l, eye) * weights))
  gv = jax.jit(jax.vmap(grad_light))(jnp.stack([light, light * 1.1]))
  g1 = jax.jit(grad_light)(light * 1.1)
  np.testing.assert_allclose(np.asarray(gv[1]), np.asarray(g1), rtol=1e-5)
