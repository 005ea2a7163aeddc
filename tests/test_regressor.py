"""Fast-GANFit / GANFit++: the regressor's start, its gradients, training + exact resume, the shipped weights,
and the CLI modes."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import LFW_DIR, make_tiny_scene
from ganfit_jax import objective, regressor
from ganfit_jax import params as P

ROOT = os.path.join(os.path.dirname(__file__), "..")
TINY_NET = dict(widths=(8, 8, 8, 8), blocks=1, hidden=16, feature_width=4)
ALIGN = objective.LossWeights.create(align=1.0, reg_shape=0.1, reg_expression=0.01)
FULL = objective.LossWeights.create(identity=1.0, pixel=1.0, align=0.1, reg_shape=0.1)


@pytest.fixture(scope="module")
def tiny():
  """The cube scene and 6 photos of it: random cube faces rendered, landmarks projected."""
  sc = make_tiny_scene()
  rng = np.random.default_rng(0)

  @jax.jit
  def photo(latent, shape, cam):
    v = P.init(sc.model, latent).replace(shape=shape, camera=cam)
    f = P.to_face(v, sc.model.expression_kind)
    return objective.render_face(sc, f, jnp.full((64, 64, 3), 0.5))[0].image, objective.project_landmarks(sc, f)

  images, lms = [], []
  for i in range(6):
    image, lm = photo(jnp.asarray(rng.normal(size=4), jnp.float32), jnp.asarray(rng.normal(size=2) * 0.5, jnp.float32),
                      jnp.asarray(rng.normal(size=9) * 0.05, jnp.float32))
    images.append(np.asarray(image))
    lms.append(np.asarray(lm))
  targets = jax.device_get(objective.prepare_targets(sc, np.stack(images), np.stack(lms)))
  return sc, regressor.HostTargets(jax.tree_util.tree_map(np.asarray, targets))


_predict = jax.jit(regressor.predict_variables)  # a network, a scene and targets: all pytrees


def test_untrained_network_predicts_the_neutral_start(tiny):
  sc, data = tiny
  net = regressor.init(sc, jax.random.key(0), **TINY_NET)
  v = _predict(net, sc, data.batch(np.arange(3)))
  start = P.init(sc.model, jnp.zeros((sc.texture.latent_dim,)))
  for g in P.GROUPS:  # the mean face, neutral expression, latent 0, default camera and light
    np.testing.assert_array_equal(np.asarray(getattr(v, g)), np.broadcast_to(getattr(start, g), getattr(v, g).shape))
  _, faces = regressor.predict(net, sc, data.batch(np.arange(3)))
  np.testing.assert_allclose(faces.camera[0], P.to_face(start, sc.model.expression_kind).camera, atol=1e-6)


def test_ganfit_plus_plus_starts_no_expression_below_the_floor(tiny):
  """A network that predicts blendshape logits far below the fit's neutral start (the shipped one gives ~-11:
  activation 2e-5, out of reach of a short fit's Adam steps) starts the fit at the floor instead; the other
  groups, and Gaussian expression coefficients, are left as predicted."""
  from ganfit_jax.types import EXPRESSION_BLENDSHAPE
  sc, data = tiny
  t = data.batch(np.arange(3))
  blend = sc.replace(model=sc.model.replace(expression_kind=EXPRESSION_BLENDSHAPE))
  for scene in (blend, sc):
    net = regressor.init(scene, jax.random.key(0), **TINY_NET)
    params = jax.tree_util.tree_map(lambda x: x, net.params)
    params["head_expression"]["bias"] = jnp.full_like(params["head_expression"]["bias"], -11.0)
    net = net.replace(params=params)
    raw = regressor.start(net, scene, t)
    floored = regressor.start(net, scene, t, expression_floor=P.EXPRESSION_LOGIT_INIT)
    for g in P.GROUPS:
      if g != "expression":
        np.testing.assert_array_equal(np.asarray(getattr(floored, g)), np.asarray(getattr(raw, g)))
    if scene is blend:
      np.testing.assert_allclose(np.asarray(raw.expression), P.EXPRESSION_LOGIT_INIT - 11.0, atol=1e-5)
      np.testing.assert_array_equal(np.asarray(floored.expression), P.EXPRESSION_LOGIT_INIT)
    else:  # Gaussian coefficients: no floor
      np.testing.assert_array_equal(np.asarray(floored.expression), np.asarray(raw.expression))
      np.testing.assert_allclose(np.asarray(raw.expression), -11.0, atol=1e-5)
  for bad in (float("nan"), float("inf")):  # refused with the flag to fix
    with pytest.raises(ValueError, match="--config.regress_expression_floor"):
      regressor.start(net, blend, t, expression_floor=bad)


def test_prediction_evaluated_with_and_without_the_image_terms(tiny):
  """regress mode's report: the landmark terms alone by default (no render), every term on request."""
  sc, data = tiny
  net = regressor.init(sc, jax.random.key(0), **TINY_NET)
  t = data.batch(np.arange(2))
  v = _predict(net, sc, t)
  full = objective.evaluate(sc, v, t, FULL, jax.random.key(0))
  cheap = objective.evaluate(sc, v, t, FULL, jax.random.key(0), images=False)
  assert set(objective.IMAGE_TERMS) | {"loss"} <= set(full) and not (set(objective.IMAGE_TERMS) | {"loss"}) & set(cheap)
  assert float(np.max(full["identity"])) > 0
  for k in cheap:
    np.testing.assert_allclose(cheap[k], full[k], rtol=1e-5, atol=1e-6)
  # Fast-GANFit in one compiled call (targets from the canvases, prediction, geometry terms) = the three steps
  t2, v2, faces, terms = regressor.regress(net, sc, t.image, t.landmarks, t.landmark_weight, FULL)
  np.testing.assert_allclose(t2.embedding, t.embedding, rtol=1e-4, atol=1e-5)
  for g in P.GROUPS:
    np.testing.assert_allclose(getattr(v2, g), getattr(v, g), rtol=1e-4, atol=1e-5)
  assert set(terms) == set(cheap)
  for k in cheap:
    np.testing.assert_allclose(terms[k], cheap[k], rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="regress needs"):
    regressor.regress(net, sc, t.image[:, :32], t.landmarks)


def test_training_targets_carry_the_fits_landmark_weights():
  """The regressor descends the loss the fit descends: its targets weigh the jaw contour as the fit does
  (objective.landmark_weights of the fit config's jaw_weight), not 1."""
  from ganfit_jax import face
  from ganfit_jax.configs.fit import get_config
  cfg = get_config("fast")
  cfg.jaw_weight = 0.3  # not 1: the plumbing shows
  photo = os.path.join(LFW_DIR, "images_deepfunneled", "AJ_Cook", "AJ_Cook_0001.jpg")
  lm = face.detect_faces(face.load_image(photo), detector="dlib")[0].landmarks
  sc = make_tiny_scene(canvas_size=112)
  data = regressor.prepare_photos(sc, [photo, photo], [lm, lm], jaw_weight=cfg.jaw_weight, chunk=2)
  np.testing.assert_array_equal(data.target.landmark_weight, objective.landmark_weights(2, cfg.jaw_weight))
  assert np.all(data.target.landmark_weight[:, objective.JAW] == cfg.jaw_weight)


def test_gradients_reach_the_backbone_through_the_loss(tiny):
  """Through the landmark stage's loss (no render: cheap; the full loss trains in the next test)."""
  sc, data = tiny
  net = regressor.init(sc, jax.random.key(0), **TINY_NET)
  b = data.batch(np.arange(3))  # the training test's batch and optimiser: its compiled step serves both
  keys = jax.random.key_data(jax.random.split(jax.random.key(1), 3))

  @jax.jit
  def grads(params):
    return jax.grad(lambda p: regressor.batch_loss(p, net.module, sc, b, ALIGN, keys, False)[0])(params)

  g0 = grads(net.params)
  assert float(jnp.abs(g0["head_shape"]["kernel"]).max()) > 0  # the heads learn first (they start at zero)
  opt = regressor.make_optimizer(3e-3)
  p, s, _ = regressor.train_step(jax.tree_util.tree_map(jnp.copy, net.params), opt.init(net.params), sc, b, ALIGN,
                                 keys, module=net.module, images=False, optimizer=opt)
  g1 = grads(p)
  stem = [v for k, v in g1.items() if k.startswith("Conv_")][0]["kernel"]
  assert float(jnp.abs(stem).max()) > 0  # ... then through them to the first convolution
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(g1))


def _stages(n_align, n_full):
  return [dict(name="align", steps=n_align, weights=ALIGN), dict(name="full", steps=n_full, weights=FULL,
                                                                  lr_scale=0.5)]


def test_training_lowers_the_loss_and_resumes_bit_exactly(tiny, tmp_path):
  sc, data = tiny
  kw = dict(batch_size=3, lr=3e-3, seed=0, net_options=TINY_NET, checkpoint_every=10, log_every=1, log=lambda s: None)
  full = regressor.train(sc, data, _stages(30, 2), workdir=str(tmp_path / "a"), **kw)
  log = [json.loads(l) for l in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
  align = [r["align"] for r in log if r["stage"] == "align"]
  assert np.mean(align[-5:]) < 0.7 * np.mean(align[:5])  # the landmark term falls
  assert [r["stage"] for r in log][-1] == "full" and len(log) == 32
  # interrupted at step 12 (mid align) and at 31 (mid full), resumed: the same weights to the bit
  regressor.train(sc, data, _stages(30, 2), workdir=str(tmp_path / "b"), max_steps=12, **kw)
  regressor.train(sc, data, _stages(30, 2), workdir=str(tmp_path / "b"), max_steps=31, **kw)
  resumed = regressor.train(sc, data, _stages(30, 2), workdir=str(tmp_path / "b"), **kw)
  for x, y in zip(jax.tree_util.tree_leaves(full.params), jax.tree_util.tree_leaves(resumed.params)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  # the saved file round-trips (float16 weights)
  regressor.save(str(tmp_path / "r.npz"), full, meta=dict(canvas_size=64))
  net, meta = regressor.load(str(tmp_path / "r.npz"))
  assert meta["canvas_size"] == 64 and net.module == full.module
  a = _predict(full, sc, data.batch(np.arange(2)))
  b = _predict(net, sc, data.batch(np.arange(2)))
  np.testing.assert_allclose(np.asarray(a.shape), np.asarray(b.shape), atol=5e-3)


def test_shipped_weights_beat_the_mean_face_on_a_devtest_photo():
  from ganfit_jax import assets, face
  from ganfit_jax import scene as scene_lib
  net, meta = regressor.load(assets.path("regressor"))
  assert os.path.getsize(assets.path("regressor")) < 25 * 2**20
  sc = scene_lib.load(meta["model"], meta["texture_model"], meta["identity_net"], canvas_size=meta["canvas_size"])
  errs = []
  for name, k in (("Aaron_Eckhart", 1), ("AJ_Cook", 1)):  # DevTest people
    p = face.prepare(os.path.join(LFW_DIR, "images_deepfunneled", name, f"{name}_{k:04d}.jpg"), meta["canvas_size"])
    t = objective.prepare_targets(sc, p.canvas[None], p.landmarks[None])
    v, faces = regressor.predict(net, sc, t)
    start = P.init(sc.model, jnp.zeros((sc.texture.latent_dim,)))
    rmse = lambda f: float(jnp.sqrt(jnp.mean(jnp.sum((objective.project_landmarks(sc, f) - t.landmarks[0]) ** 2, -1))))  # noqa: E731
    errs.append((rmse(jax.tree_util.tree_map(lambda x: x[0], faces)), rmse(P.to_face(start, sc.model.expression_kind))))
  for pred, mean_face in errs:
    assert pred < 0.7 * mean_face, errs


def test_auto_mode_uses_the_regressor_only_where_it_was_trained_for_the_scene():
  from ganfit_jax.configs.fit import get_config
  from ganfit_jax.reconstruct import Reconstructor
  cfg = get_config("tiny")
  cfg.mode = "auto"
  rec = Reconstructor(cfg)
  assert rec.mode == "regress_fit" and rec.regressor is not None and rec.mode_note is None
  assert [st.steps for st in rec.schedule.stages] == [7, 1]  # a third of tiny's 20 + 4 steps
  cfg.canvas_size = 160  # the shipped regressor was trained on 224 px canvases
  rec = Reconstructor(cfg)
  assert rec.mode == "fit" and rec.regressor is None and "canvas" in rec.mode_note
  assert [st.steps for st in rec.schedule.stages] == [20, 4]
