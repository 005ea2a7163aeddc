"""Renders a mesh saved by benchmarks/render.py with jaxrenderer (PyPI) and prints JSON timings.

Runs in its own virtual environment (jaxrenderer 0.3.2 needs jax 0.4.13 and numpy<2):
  python3 -m venv /tmp/jrvenv && /tmp/jrvenv/bin/pip install jax==0.4.13 jaxlib==0.4.13 "numpy<2" \
      "ml_dtypes<0.3" jaxrenderer==0.3.2
"""

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import renderer


def main(path, size, reps):
  d = np.load(path)
  verts = jnp.asarray(d["verts"] / 1000.0)  # metres: jaxrenderer's near plane is 0.01
  tex = jnp.asarray(d["texture"])

  def image(tex, verts):
    model = renderer.Model.create(verts=verts, norms=jnp.asarray(d["normals"]), uvs=jnp.asarray(d["uv"]),
                                  faces=jnp.asarray(d["faces"]), diffuse_map=tex)
    cam = renderer.CameraParameters(viewWidth=size, viewHeight=size, position=jnp.array([0.0, 0.0, 1.0]),
                                    target=jnp.array([0.0, -0.01, 0.04]), up=jnp.array([0.0, 1.0, 0.0]),
                                    hfov=14.3, vfov=14.3)
    return renderer.Renderer.get_camera_image(objects=[renderer.ModelObject(model=model)],
                                              light=renderer.LightParameters(), camera=cam,
                                              width=size, height=size)

  fwd = jax.jit(image)
  bwd = jax.jit(jax.grad(lambda t, v: jnp.mean(image(t, v)), argnums=0))
  out = {}
  for name, f in (("fwd", fwd), ("fwd+bwd", bwd)):
    t0 = time.perf_counter()
    jax.block_until_ready(f(tex, verts))
    compile_s = time.perf_counter() - t0
    ts = []
    for _ in range(reps):
      t0 = time.perf_counter()
      jax.block_until_ready(f(tex, verts))
      ts.append(time.perf_counter() - t0)
    out[name] = dict(ms=1000 * float(np.median(ts)), first_call_s=compile_s)
  print(json.dumps(out))


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
