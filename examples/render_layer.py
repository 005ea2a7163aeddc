"""The differentiable renderer as a layer: a Flax module renders a morphable face, and gradient descent on the
pixels recovers a known head pose and expression from a target image.

  python examples/render_layer.py                  # 96 px, 250 Adam steps (about half a minute on 2 CPU cores)
  python examples/render_layer.py --size=128 --steps=300

The target is the ICT face rendered at a known yaw, pitch and expression (jawOpen, a smile) with a
procedural texture; the module starts from another pose and a neutral face, and optax's Adam fits its
parameters to the target's pixels (blurred, so the loss sees the face from afar first). It prints the
errors before and after.
"""

import sys

import numpy as np
from absl import app, flags

flags.DEFINE_integer("size", 96, "Render size in pixels.")
flags.DEFINE_integer("steps", 250, "Adam steps.")
FLAGS = flags.FLAGS
SHAPES = ("jawOpen", "mouthSmile_L", "mouthSmile_R")  # the expression shapes the layer fits


def main(argv):
  del argv
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  import optax

  import ganfit_jax
  from ganfit_jax import runtime
  runtime.configure()
  model = ganfit_jax.load_model("ict")
  idx = jnp.asarray([model.expression_names.index(n) for n in SHAPES])
  lm = np.asarray(model.mean)[np.asarray(model.landmarks)]  # the model's 68 hand-picked vertices
  centre, size = tuple(float(x) for x in lm.mean(0)), FLAGS.size
  u, v = np.meshgrid(np.linspace(0, 1, 128), np.linspace(0, 1, 128))
  texture = jnp.asarray(np.stack([0.6 + 0.3 * np.sin(18 * u), 0.5 + 0.3 * np.sin(14 * v),
                                  0.5 + 0.2 * np.sin(9 * (u + v))], -1), jnp.float32)  # something to see
  light = ganfit_jax.default_light()

  class FaceLayer(nn.Module):
    """Renders the model's mean identity at a learnt yaw, pitch and expression (sigmoid activations)."""

    @nn.compact
    def __call__(self):
      yaw = self.param("yaw", lambda k: jnp.asarray(0.1))
      pitch = self.param("pitch", lambda k: jnp.asarray(0.0))
      logits = self.param("expression", lambda k: jnp.full((len(SHAPES),), -2.0))
      expression = jnp.zeros(model.num_expression).at[idx].set(jax.nn.sigmoid(logits))
      cam = ganfit_jax.orbit_camera(yaw, pitch, distance=1100.0, look_at=centre, focal=3.0)
      out = ganfit_jax.render_model(model, jnp.zeros(model.num_identity), expression, texture, cam, light,
                                    height=size, width=size)
      return out.image

  truth = {"yaw": 0.35, "pitch": -0.12, "expression": np.array([0.5, 0.4, 0.4])}
  layer = FaceLayer()
  params = layer.init(jax.random.key(0))
  true_params = {"params": {"yaw": jnp.asarray(truth["yaw"]), "pitch": jnp.asarray(truth["pitch"]),
                            "expression": jnp.log(truth["expression"] / (1 - truth["expression"]))}}
  target = layer.apply(true_params)
  blur = lambda x, s: jax.image.resize(jax.image.resize(x, (size // s, size // s, 3), "linear"),  # noqa: E731
                                       (size, size, 3), "linear")

  def loss(p, step):
    img = layer.apply(p)
    coarse = jnp.mean(jnp.square(blur(img, 4) - blur(target, 4)))
    fine = jnp.mean(jnp.square(img - target))
    w = jnp.clip(step / (0.6 * FLAGS.steps), 0.0, 1.0)  # coarse to fine
    return (1 - w) * coarse + w * fine

  tx = optax.adam(0.05)
  state = tx.init(params)

  @jax.jit
  def step(p, s, i):
    value, g = jax.value_and_grad(loss)(p, i)
    upd, s = tx.update(g, s, p)
    return optax.apply_updates(p, upd), s, value

  def errors(p):
    q = p["params"]
    e = np.asarray(jax.nn.sigmoid(q["expression"]))
    return (np.degrees(abs(float(q["yaw"]) - truth["yaw"])), np.degrees(abs(float(q["pitch"]) - truth["pitch"])),
            float(np.abs(e - truth["expression"]).mean()))

  before = errors(params)
  for i in range(FLAGS.steps):
    params, state, value = step(params, state, jnp.asarray(i, jnp.float32))
  after = errors(params)
  print(f"{'':<8}{'yaw error deg':>15}{'pitch error deg':>17}{'expression MAE':>16}")
  for name, e in (("before", before), ("after", after)):
    print(f"{name:<8}{e[0]:>15.2f}{e[1]:>17.2f}{e[2]:>16.3f}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
