"""GAN vs PCA texture models on held-out UV maps (DevTest people), with the real-vs-real floor.

  python benchmarks/texture_models.py --data=work/uv128 --num=1000

1. Distribution distance. Inception weights cannot be installed here, so each
   UV map is rendered on the ICT mean face (frontal, default light, 224 px),
   aligned to 112 px with the mean face's projected landmarks, and described by
   SFace (the fitting identity net): its 128-d embedding concatenated with the
   global-average-pooled 'res14' features (512-d). Frechet distance (FD) and
   kernel distance (KID, cubic polynomial kernel, unbiased, mean over subsets
   of 100, x1000) between held-out maps and: generated GAN samples, PCA samples,
   and real training maps (the real-vs-real floor).
2. Reconstruction: for --recon held-out maps, min_latent |decode(latent) - map|_1
   over observed texels (status 3) by Adam (lr 0.05, --recon_steps steps, latent
   prior weight 1e-3), for GAN and PCA alike; mean L1 on observed texels. PCA
   starts from latent 0 (the mean map); the GAN from one fixed prior sample, as
   fitting does (latent 0 is degenerate under the generator's pixel norm).

--num=0 skips part 1, --recon=0 part 2.
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from ganfit_jax import camera, morphable
from ganfit_jax.data import uv_dataset
from ganfit_jax.evaluation.texture import frechet, kid
from ganfit_jax.face import align
from ganfit_jax.nets import identity
from ganfit_jax.render import default_light, render_model
from ganfit_jax.texture import models

FLAGS = flags.FLAGS
flags.DEFINE_string("data", "work/uv128", "UV dataset folder.")
flags.DEFINE_integer("num", 1000, "Maps per set for the distances.")
flags.DEFINE_string("gan", "gan", "GAN texture model (asset name or exported .npz).")
flags.DEFINE_string("pca", "pca", "PCA texture model (asset name or .npz).")
flags.DEFINE_integer("recon", 50, "Held-out maps for the reconstruction test.")
flags.DEFINE_integer("recon_steps", 200, "Adam steps per reconstruction.")
flags.DEFINE_integer("recon_batch", 10, "Maps reconstructed at once (vmap); memory grows with it.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")


def make_featurizer(model, net, size=224, batch=25):
  shape = jnp.zeros((model.num_identity,))
  cam = camera.default_camera()
  lm, _ = camera.project(cam, morphable.landmark_points(model, shape), size, size)
  m = jnp.asarray(align.arcface_transform(np.asarray(lm)))

  def one(tex):
    img = render_model(model, shape, None, tex, cam, default_light(), height=size, width=size).image
    crop = align.warp_affine(img, m, 112, 112)
    emb, feats = net.module.apply(net.variables, crop[None])
    e = emb[0] / jnp.linalg.norm(emb[0])
    f = feats["res14"][0].mean((0, 1))
    return jnp.concatenate([e, f / (jnp.linalg.norm(f) + 1e-8)])

  f = jax.jit(jax.vmap(one))

  def featurize(textures):
    out = []
    for k in range(0, len(textures), batch):
      chunk = np.asarray(textures[k:k + batch], np.float32)
      n = len(chunk)
      if n < batch:
        chunk = np.concatenate([chunk, np.repeat(chunk[:1], batch - n, 0)])
      out.append(np.asarray(f(jnp.asarray(chunk)))[:n])
    return np.concatenate(out).astype(np.float64)
  return featurize


def samples(tm, n, key, batch=50):
  out = []
  dec = jax.jit(tm.decode)
  for k in range(0, n, batch):
    z = tm.sample_latent(jax.random.fold_in(key, k), (batch,))
    out.append(np.asarray(dec(z)))
  return np.concatenate(out)[:n]


def reconstruct(tm, targets, observed, steps, lr=0.05, prior=1e-3, batch=10):
  """Per-map L1 after latent optimisation; ``batch`` maps at a time (``vmap`` of
  independent Adam runs; the same numbers as one by one to float rounding). On the
  2-core CPU the generator is compute-bound and batching gains ~5%; it is meant
  for accelerators."""
  opt = optax.adam(lr)
  start = jnp.zeros((tm.latent_dim,)) if tm.kind == "pca" else tm.sample_latent(jax.random.PRNGKey(FLAGS.seed))

  def l1(z, t, m):
    w = m[..., None].astype(jnp.float32)
    return jnp.sum(jnp.abs(tm.decode(z) - t) * w) / (3 * jnp.maximum(jnp.sum(w), 1.0))

  def loss(z, t, m):
    return l1(z, t, m) + prior * jnp.mean(z * z)

  def run(t, m):
    def body(carry, _):
      z, st = carry
      u, st = opt.update(jax.grad(loss)(z, t, m), st)
      return (optax.apply_updates(z, u), st), None

    (z, _), _ = jax.lax.scan(body, (start, opt.init(start)), None, length=steps)
    return l1(z, t, m)

  run_batch = jax.jit(jax.vmap(run))
  n = len(targets)
  out = []
  for k in range(0, n, batch):
    t, m = targets[k:k + batch], observed[k:k + batch]
    pad = batch - len(t)  # the last batch is padded with copies (one compile), their results dropped
    if pad:
      t = np.concatenate([t, np.repeat(t[-1:], pad, 0)])
      m = np.concatenate([m, np.repeat(m[-1:], pad, 0)])
    out.append(np.asarray(run_batch(jnp.asarray(t), jnp.asarray(m)))[:batch - pad])
    print(f"  {tm.kind}: {min(k + batch, n)}/{n} maps", file=sys.stderr, flush=True)
  return np.concatenate(out)


def main(argv):
  del argv
  t0 = time.time()
  model = morphable.load("ict")
  net = identity.load("sface")
  held = uv_dataset.load_split(FLAGS.data, "heldout")
  train = uv_dataset.load_split(FLAGS.data, "train")
  rng = np.random.default_rng(FLAGS.seed)
  tms = {"GAN": models.load(FLAGS.gan), "PCA": models.load(FLAGS.pca)}
  for name, tm in tms.items():
    if tm.resolution != held["texture"].shape[1]:
      print(f"error: {name} makes {tm.resolution}px maps, data has {held['texture'].shape[1]}px", file=sys.stderr)
      return 2
  if FLAGS.num:
    hi = rng.choice(len(held["files"]), min(FLAGS.num, len(held["files"])), replace=False)
    ti = rng.choice(len(train["files"]), min(FLAGS.num, len(train["files"])), replace=False)
    held_tex = held["texture"][hi].astype(np.float32) / 255.0
    train_tex = train["texture"][ti].astype(np.float32) / 255.0
    feat = make_featurizer(model, net)
    f_held = feat(held_tex)
    rows = [("real train maps (floor)", feat(train_tex))]
    for name, tm in tms.items():
      s = samples(tm, len(held_tex), jax.random.PRNGKey(FLAGS.seed))
      rows.append((f"{name} samples ({tm.latent_dim}-d latent)", feat(s)))
    print(f"\n## Texture models vs {len(held_tex)} held-out UV maps (DevTest people), "
          f"features: SFace on mean-face renders\n")
    print("| set | FD | KID x1000 |\n|---|---|---|")
    for name, f in rows:
      print(f"| {name} | {frechet(f, f_held):.4f} | {kid(f, f_held):.3f} |", flush=True)
  if not FLAGS.recon:
    return 0
  if FLAGS.recon_batch < 1:
    print(f"error: --recon_batch must be >= 1, got {FLAGS.recon_batch}", file=sys.stderr)
    return 2
  ri = rng.choice(len(held["files"]), min(FLAGS.recon, len(held["files"])), replace=False)
  tgt = held["texture"][ri].astype(np.float32) / 255.0
  obs = held["status"][ri] == 3
  print(f"\n## Reconstruction of {len(ri)} held-out maps by latent optimisation "
        f"({FLAGS.recon_steps} Adam steps), L1 on observed texels\n")
  print("| model | mean L1 | median L1 | seconds |\n|---|---|---|---|")
  for name, tm in tms.items():
    t1 = time.time()
    l1 = reconstruct(tm, tgt, obs, FLAGS.recon_steps, batch=FLAGS.recon_batch)
    print(f"| {name} | {l1.mean():.4f} | {np.median(l1):.4f} | {time.time() - t1:.0f} |", flush=True)
  print(f"\n({time.time() - t0:.0f} s)")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
