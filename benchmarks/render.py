"""Renderer speed: forward and forward+backward milliseconds for the ICT face mesh.

  python benchmarks/render.py                                   # ours: 224/512 x batch 1/8
  python benchmarks/render.py --jaxrenderer_python=/tmp/jrvenv/bin/python   # + jaxrenderer, same run
  python benchmarks/render.py --extents    # triangle-size statistics behind the raster's window ladder
  python benchmarks/render.py --ablate --reps=50                # where the 224 px fwd+bwd time goes

fwd+bwd = gradient of the mean image w.r.t. shape coefficients and texture (batch 8: per batch).
Times are "median (minimum)" over --reps runs after one compile (the minimum is the
least disturbed by other load on a shared machine); the table is printed as Markdown.
"""

import json
import os
import subprocess
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from ganfit_jax import camera, morphable, runtime
from ganfit_jax.render import default_light, raster, render, render_model

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["224", "512"], "Square image sizes.")
flags.DEFINE_list("batches", ["1", "8"], "Batch sizes (vmap).")
flags.DEFINE_integer("reps", 10, "Timed repetitions.")
flags.DEFINE_string("jaxrenderer_python", None, "Python of a venv with jaxrenderer (see _jaxrenderer_peer.py).")
flags.DEFINE_integer("jaxrenderer_reps", 2, "Timed repetitions for jaxrenderer (it is slow).")
flags.DEFINE_bool("extents", False, "Print triangle bounding-box statistics and exit.")
flags.DEFINE_bool("ablate", False, "Time parts of the 224 px batch-1 render against each other (interleaved runs "
                  "in one process, so machine load hits all alike) and exit.")


def _time(f, *args, reps):
  jax.block_until_ready(f(*args))
  ts = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(f(*args))
    ts.append(time.perf_counter() - t0)
  return f"{1000 * np.median(ts):.1f} ({1000 * np.min(ts):.1f})"


def _peer_env():
  """The environment for jaxrenderer's old jaxlib: without the XLA flag ganfit_jax added."""
  from ganfit_jax import runtime
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  if runtime.ORIGINAL_XLA_FLAGS is not None:
    env["XLA_FLAGS"] = runtime.ORIGINAL_XLA_FLAGS
  return env


def extents(model):
  for yaw in (0.0, 45.0):
    for size in (224, 512):
      xy, _ = camera.project(camera.orbit_camera(yaw=np.deg2rad(yaw)), model.mean, size, size)
      tv = np.asarray(xy)[np.asarray(model.triangles)]
      e1, e2 = tv[:, 1] - tv[:, 0], tv[:, 2] - tv[:, 0]
      front = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] < 0
      ext = (np.floor(tv.max(1) - 0.5) - np.ceil(tv.min(1) - 0.5)).max(1) + 1
      pct = np.percentile(ext[front], [50, 90, 99, 99.9, 100])
      ladder = np.asarray(raster.window_ladder(size, size))
      bucket = np.searchsorted(ladder, ext[front], side="left")
      tests = int((ladder[bucket] ** 2).sum())
      print(f"yaw {yaw:4.0f} size {size}: front-facing {front.sum()}, extent percentiles 50/90/99/99.9/100 = "
            f"{pct.round(1).tolist()}; pixel tests {tests} (before chunk padding) on ladder {ladder.tolist()}")


def _scene(model):
  """The benchmark scene: flat 256x256 texture, default camera and light, mean shape, neutral expression."""
  return (jnp.full((256, 256, 3), 0.7), camera.default_camera(), default_light(),
          jnp.zeros(model.num_identity), jnp.zeros(model.num_expression))


def ablate(model, size=224):
  """Wall-clock of render variants, interleaved: each rep runs every variant once."""
  tex, cam, light, s0, e0 = _scene(model)

  def image(s, t):
    return render_model(model, s, e0, t, cam, light, height=size, width=size).image

  def loss(s, t):
    return jnp.mean(image(s, t))

  sg = jax.lax.stop_gradient
  tri, uv, uvt = model.triangles, model.uv, model.uv_triangles

  def mesh_loss(s, t):  # the renderer alone: gradient w.r.t. vertices, not through the 3DMM
    v = morphable.vertices(model, sg(s), e0)
    return jax.grad(lambda v, t: jnp.mean(render(v, tri, uv, uvt, t, cam, light, height=size, width=size).image),
                    argnums=(0, 1))(v, t)

  variants = {
      "forward+backward (shape, texture)": jax.grad(loss, argnums=(0, 1)),
      "forward+backward (vertices, texture): no 3DMM": mesh_loss,
      "forward+backward, shape only": jax.grad(lambda s, t: loss(s, sg(t))),
      "forward+backward, texture only": jax.grad(lambda s, t: loss(sg(s), t), argnums=1),
      "forward": image,
      "rasterise only": lambda s, t: raster.rasterize(
          *camera.project(cam, morphable.vertices(model, s, e0), size, size), model.triangles, size, size).mask,
  }
  fs = {k: jax.jit(f) for k, f in variants.items()}
  for f in fs.values():
    jax.block_until_ready(f(s0, tex))
  ts = {k: [] for k in fs}
  for _ in range(FLAGS.reps):
    for k, f in fs.items():
      t0 = time.perf_counter()
      jax.block_until_ready(f(s0, tex))
      ts[k].append(time.perf_counter() - t0)
  print(f"\n| {size} px, batch 1, {FLAGS.reps} interleaved runs | median ms | min ms |\n|---|---|---|")
  for k, v in ts.items():
    print(f"| {k} | {1000 * np.median(v):.1f} | {1000 * np.min(v):.1f} |")


def main(argv):
  del argv
  runtime.configure()
  model = morphable.load("ict")
  if FLAGS.extents:
    extents(model)
    return
  if FLAGS.ablate:
    ablate(model)
    return
  tex, cam, light, shape0, expr0 = _scene(model)
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}, "
        f"mesh {model.num_vertices} vertices / {model.triangles.shape[0]} triangles, texture 256x256")
  print("\n| renderer | size | batch | forward ms, median (min) | forward+backward ms, median (min) |\n"
        "|---|---|---|---|---|")
  for size in map(int, FLAGS.sizes):
    def image(s, t, size=size):
      return render_model(model, s, expr0, t, cam, light, height=size, width=size).image

    for b in map(int, FLAGS.batches):
      if b == 1:
        fwd = jax.jit(image)
        bwd = jax.jit(jax.grad(lambda s, t: jnp.mean(image(s, t)), argnums=(0, 1)))
        args = (shape0, tex)
      else:
        fwd = jax.jit(jax.vmap(image))
        bwd = jax.jit(jax.grad(lambda s, t: jnp.mean(jax.vmap(image)(s, t)), argnums=(0, 1)))
        args = (jnp.zeros((b, model.num_identity)), jnp.broadcast_to(tex, (b,) + tex.shape))
      print(f"| ganfit_jax | {size} | {b} | {_time(fwd, *args, reps=FLAGS.reps)} | "
            f"{_time(bwd, *args, reps=FLAGS.reps)} |", flush=True)

  if FLAGS.jaxrenderer_python:
    verts = np.asarray(morphable.vertices(model, shape0, expr0))
    tri = np.asarray(model.triangles)
    normals = np.asarray(morphable.vertex_normals(model.mean, model.triangles))
    # jaxrenderer wants one UV per vertex: take each vertex's first corner UV
    uv = np.zeros((verts.shape[0], 2), np.float32)
    uv[tri.reshape(-1)] = np.asarray(model.uv)[np.asarray(model.uv_triangles).reshape(-1)]
    with tempfile.TemporaryDirectory() as tmp:
      p = os.path.join(tmp, "mesh.npz")
      np.savez(p, verts=verts, faces=tri, normals=normals, uv=np.clip(uv, 0, 1), texture=np.asarray(tex))
      for size in map(int, FLAGS.sizes):
        r = subprocess.run([FLAGS.jaxrenderer_python, os.path.join(os.path.dirname(__file__), "_jaxrenderer_peer.py"),
                            p, str(size), str(FLAGS.jaxrenderer_reps)], capture_output=True, text=True,
                           env=_peer_env())
        if r.returncode != 0:
          print(f"| jaxrenderer 0.3.2 | {size} | 1 | failed: {r.stderr.strip().splitlines()[-1]} | |")
          continue
        res = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"| jaxrenderer 0.3.2 | {size} | 1 | {res['fwd']['ms']:.1f} | {res['fwd+bwd']['ms']:.1f} |",
              flush=True)


if __name__ == "__main__":
  app.run(main)
