"""Identity networks on LFW verification, and their speed on this machine.

  python tools/detect_lfw.py                  # once: landmark cache (work/lfw_faces.jsonl)
  python benchmarks/identity.py

Accuracy on ``pairsDevTest.txt`` (500 same + 500 different pairs): 10-fold
cross-validated best threshold on cosine similarity (SFace-Flax) and on
Euclidean distance (dlib ResNet judge, its usual metric), plus dlib's own fixed
0.6 threshold. The subject face of each photo is the detected face nearest the
image centre; photos with no detection use the mean LFW landmark layout.
Timing: milliseconds per 112x112 image for the jitted forward pass and
forward+backward (gradient of 1 - cos with respect to the image), batch 1 and 16.
"""

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from ganfit_jax import numerics as gmath
from ganfit_jax.data import lfw
from ganfit_jax.evaluation import identity as id_eval
from ganfit_jax.face import align, image_io
from ganfit_jax.nets import identity

FLAGS = flags.FLAGS
flags.DEFINE_string("lfw_dir", None, "LFW folder (default ../shared/assets/lfw).")
flags.DEFINE_string("faces_cache", "work/lfw_faces.jsonl", "Landmark cache from tools/detect_lfw.py "
                    "(missing photos are detected and appended).")
flags.DEFINE_string("pairs", "pairsDevTest.txt", "Pairs file inside the LFW folder.")
flags.DEFINE_string("net", "sface", "Identity network: asset name or converted .npz.")
flags.DEFINE_bool("accuracy", True, "Run the LFW verification table (False: speed only).")


def subject_landmarks(faces_by_file, rel, fallback):
  faces = faces_by_file.get(rel) or []
  if not faces:
    return fallback, False
  i = lfw.subject_face(faces, faces[0]["shape"])
  return np.asarray(faces[i]["landmarks"], np.float32), True


def time_net(net, batch):
  x = jnp.asarray(np.random.default_rng(0).random((batch, 112, 112, 3), dtype=np.float32))
  fwd = jax.jit(lambda im: identity.identity_features(net.module, net.variables, im)[0])
  target = fwd(x[::-1])

  def loss(im):
    return jnp.sum(1.0 - gmath.cosine(identity.identity_features(net.module, net.variables, im)[0], target))
  bwd = jax.jit(jax.grad(loss))
  out = []
  for f in (fwd, bwd):
    jax.block_until_ready(f(x))
    reps = max(3, 24 // batch)
    t0 = time.perf_counter()
    for _ in range(reps):
      jax.block_until_ready(f(x))
    out.append(1000 * (time.perf_counter() - t0) / reps / batch)
  return out


def main(argv):
  del argv
  if not FLAGS.accuracy:
    return speed(identity.load(FLAGS.net), 0.0, 0)
  root = lfw.root(FLAGS.lfw_dir)
  pairs = lfw.read_pairs(os.path.join(root, FLAGS.pairs))
  rels = sorted({f"{n}/{n}_{i:04d}.jpg" for a, ia, b, ib, _ in pairs for n, i in ((a, ia), (b, ib))})
  t0 = time.time()
  faces = lfw.detect_cache(root, rels, FLAGS.faces_cache)
  all_lm = [np.asarray(v[lfw.subject_face(v, v[0]["shape"])]["landmarks"]) for v in faces.values() if v]
  fallback = np.mean(all_lm, 0).astype(np.float32)
  print(f"landmarks for {len(rels)} photos ready in {time.time() - t0:.0f} s")

  net = identity.load(FLAGS.net)
  embed = jax.jit(lambda im: identity.identity_features(net.module, net.variables, im)[0])
  emb, judge, missed = {}, {}, []
  t_judge = 0.0
  for rel in rels:
    img = image_io.load_image(os.path.join(root, "images_deepfunneled", rel))
    lm, found = subject_landmarks(faces, rel, fallback)
    if not found:
      missed.append(rel)
    emb[rel] = np.asarray(embed(align.align_112(jnp.asarray(img), lm)[None])[0])
    t = time.perf_counter()
    judge[rel] = identity.judge_embedding(img, lm)
    t_judge += time.perf_counter() - t
  same = [p[4] for p in pairs]
  key = lambda n, i: f"{n}/{n}_{i:04d}.jpg"  # noqa: E731
  cos = [float(np.dot(emb[key(a, ia)], emb[key(b, ib)]) /
               (np.linalg.norm(emb[key(a, ia)]) * np.linalg.norm(emb[key(b, ib)]))) for a, ia, b, ib, _ in pairs]
  dist = [float(np.linalg.norm(judge[key(a, ia)] - judge[key(b, ib)])) for a, ia, b, ib, _ in pairs]
  acc_s = id_eval.kfold_accuracy(cos, same)
  acc_j = id_eval.kfold_accuracy(dist, same, higher_is_same=False)
  acc_j_fixed = id_eval.fixed_accuracy(dist, same, id_eval.JUDGE_THRESHOLD, higher_is_same=False)

  print(f"\n## LFW verification, {FLAGS.pairs} ({len(pairs)} pairs, {len(rels)} photos; "
        f"{len(missed)} without a detection use the mean layout)\n")
  print("| network | role | 10-fold accuracy | fixed threshold |\n|---|---|---|---|")
  print(f"| {net.name} (Flax) | fitting loss | {100 * acc_s[0]:.1f}% ± {100 * acc_s[1]:.1f} | - |")
  print(f"| dlib ResNet-29 | independent judge | {100 * acc_j[0]:.1f}% ± {100 * acc_j[1]:.1f} | "
        f"{100 * acc_j_fixed:.1f}% (d < 0.6) |")
  if missed:
    print(f"\nno detection: {', '.join(missed)}")
  return speed(net, t_judge, len(rels))


def speed(net, t_judge, n_judge):
  print(f"\n## Speed on {jax.devices()[0].device_kind} ({jax.default_backend()}), ms per image\n")
  print("| network | batch | forward | forward+backward |\n|---|---|---|---|")
  for b in (1, 16):
    f, fb = time_net(net, b)
    print(f"| {net.name} (Flax, jit) | {b} | {f:.1f} | {fb:.1f} |")
  if n_judge:
    print(f"| dlib ResNet-29 (judge, C++; includes its own alignment) | 1 | {1000 * t_judge / n_judge:.1f} | - |")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
