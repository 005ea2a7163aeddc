"""Fitting: schedules, the optimiser, compiled chunks, shared identity, compile counts and what a compiled
entry is keyed on, synthetic recovery."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import LFW_DIR, make_tiny_scene
from ganfit_jax import compiled, fitting, objective
from ganfit_jax import params as P

ROOT = os.path.join(os.path.dirname(__file__), "..")
ALL = P.GROUPS
LRS = tuple((g, 0.02) for g in ALL)
FULL = (("identity", 1.0), ("identity_hat", 1.0), ("content", 5.0), ("pixel", 1.0), ("align", 0.1),
        ("reg_shape", 0.05), ("reg_texture", 0.01))


# ----------------------------------------------------------------------------- weights, stages, optimiser

def test_weights_by_name_only():
  w = objective.LossWeights.create(identity=2.0, pixel=1.0)
  assert w.as_dict()["identity"] == 2.0 and w.as_dict()["content"] == 0.0 and w.uses_images()
  assert not objective.LossWeights.create(align=1.0).uses_images()
  with pytest.raises(ValueError, match="unknown loss term.*identiy"):
    objective.LossWeights.create(identiy=2.0)
  with pytest.raises(ValueError, match="finite"):
    objective.LossWeights.create(pixel=float("nan"))
  with pytest.raises(ValueError, match=">= 0"):
    objective.LossWeights.create(pixel=-1.0)
  with pytest.raises(TypeError):
    objective.LossWeights(1.0, 2.0)  # positional construction is refused


def test_priors_light_chroma_sparse_expression_and_jaw_weight():
  from ganfit_jax import lighting
  from ganfit_jax.objective import landmark_weights
  assert float(objective.light_chroma(lighting.default_light())) == 0.0
  green = lighting.make_light(colour=(0.5, 0.7, 0.5), ambient=(0.5, 0.5, 0.5))
  assert float(objective.light_chroma(green)) > 0
  g = jax.grad(objective.light_chroma)(green)  # descent moves green towards the other channels
  assert float(g[4]) > 0 and float(g[3]) < 0 and float(g[5]) < 0
  w = landmark_weights(2, 0.2)
  assert w.shape == (2, 68) and np.all(w[:, :17] == 0.2) and np.all(w[:, 17:] == 1.0)
  with pytest.raises(ValueError, match="jaw_weight"):
    landmark_weights(1, -1.0)
  # the default config's stages are valid schedules carrying the retuned priors
  from ganfit_jax.configs import fit as fit_config
  for preset in ("fast", "paper", "tiny"):
    sched = fitting.schedule_from_config(fit_config.get_config(preset))
    for st in sched.stages:
      w = dict(st.weights)
      assert w["reg_shape"] >= 1.0 and w["sparse_expression"] > 0, (preset, st.name, w)
      objective.LossWeights.create(**w)
    assert dict(sched.stages[-1].weights)["light_chroma"] > 0


def test_stage_and_schedule_validation():
  with pytest.raises(ValueError, match="unknown parameter group"):
    fitting.Stage("s", 3, (("align", 1.0),), ("shape", "nose"))
  with pytest.raises(ValueError, match="steps"):
    fitting.Stage("s", -1, (("align", 1.0),), ("shape",))
  with pytest.raises(ValueError, match="unknown loss term"):
    fitting.Stage("s", 3, (("algin", 1.0),), ("shape",))
  with pytest.raises(ValueError, match="missing"):
    fitting.Schedule(stages=(), learning_rates=(("shape", 0.1),))
  assert [fitting.chunk_length(n, 10) for n in (100, 60, 7, 1, 24)] == [10, 10, 7, 1, 8]


def test_optimizer_moves_active_groups_and_zeroes_nans():
  v = P.Variables(*[jnp.ones((3,))] * 6)
  tx = fitting.make_optimizer(LRS, ("shape", "texture"))
  g = v.replace(shape=jnp.array([1.0, jnp.nan, 1.0]), texture=jnp.ones(3), camera=jnp.ones(3))
  upd, _ = tx.update(g, tx.init(v), v)
  assert np.all(np.isfinite(np.asarray(upd.shape))) and float(upd.shape[1]) == 0.0  # the NaN entry: no step
  assert float(upd.shape[0]) < 0 and float(upd.texture[0]) < 0  # active groups move against the gradient
  assert np.all(np.asarray(upd.camera) == 0)  # inactive group: fixed


def test_direction_groups_keep_the_gradients_direction_where_adam_takes_its_sign():
  v = P.Variables(*[jnp.zeros((4,))] * 6)
  g = v.replace(shape=jnp.array([1.0, 0.01, -0.5, 0.0]))
  plain = fitting.make_optimizer(LRS, ("shape",))
  direction = fitting.make_optimizer(LRS, ("shape",), direction_groups=("shape",))
  lr = dict(LRS)["shape"]
  up_plain, _ = plain.update(g, plain.init(v), v)
  up_dir, state = direction.update(g, direction.init(v), v)
  # Adam: every coefficient with a gradient takes (almost) a full step, the tiny one included
  np.testing.assert_allclose(np.asarray(up_plain.shape)[:3], [-lr, -lr, lr], rtol=1e-3)
  # the shared second moment: the step is -lr g / rms(g), proportional to the gradient
  rms = float(np.sqrt(np.mean(np.square(np.asarray(g.shape)))))
  np.testing.assert_allclose(np.asarray(up_dir.shape), -lr * np.asarray(g.shape) / rms, rtol=1e-4)
  with pytest.raises(ValueError, match="unknown parameter group"):
    fitting.Stage("s", 3, (("align", 1.0),), ("shape",), direction_groups=("nose",))
  with pytest.raises(ValueError, match="b1"):
    fitting.scale_by_adam_direction(b1=1.0)


# ----------------------------------------------------------------------------- compiled steps (tiny scene)

@pytest.fixture(scope="module")
def tiny():
  sc = make_tiny_scene()
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.uniform(0.2, 0.8, (2, 64, 64, 3)), jnp.float32)
  lm = jnp.asarray(rng.uniform(20, 44, (2, 68, 2)), jnp.float32)
  return sc, objective.prepare_targets(sc, images, lm)


def _spec(length, shared=False):
  return fitting.ChunkSpec(length=length, learning_rates=LRS, groups=ALL, lr_scale=1.0, images=True,
                           shared_identity=shared)


def _start(sc, b, n=1):
  sched = fitting.Schedule(stages=(), learning_rates=LRS, num_inits=n)
  v = fitting.initial_variables(sc, b, sched, jax.random.key(3))
  keys = jax.random.key_data(jax.random.split(jax.random.key(4), b * n)).reshape((b, n, -1))
  return v, keys


def test_scan_chunk_equals_single_steps(tiny):
  sc, tg = tiny
  w = objective.LossWeights.create(**dict(FULL))
  v0, keys = _start(sc, 2)
  spec = _spec(3)
  s0 = fitting.init_opt_state(v0, spec=spec)
  va, sa, aux_a = fitting.chunk(v0, s0, sc, tg, w, keys, 5, spec, "scan")
  # the dispatch loop with donation (as fit() runs it): the step reuses the variables' and optimiser state's
  # buffers, and gives the same result as the scan
  v1, s1 = jax.tree_util.tree_map(jnp.copy, (v0, s0))
  vb, sb, aux_b = fitting.chunk(v1, s1, sc, tg, w, keys, 5, spec, "dispatch", donate=True)
  assert v1.texture.is_deleted() and not v0.texture.is_deleted()
  # (float32 reassociation differs between the scanned and the single-step programs, and Adam's m / sqrt(v)
  # magnifies it where a gradient is near zero: 3.2e-4 relative was measured on an AMD EPYC host; a wrong step
  # differs by orders of magnitude more)
  for a, b in zip(jax.tree_util.tree_leaves((va, sa, aux_a)), jax.tree_util.tree_leaves((vb, sb, aux_b))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=5e-5)
  assert aux_a["loss"].shape == (3, 2, 1)
  assert not np.allclose(np.asarray(va.texture), np.asarray(v0.texture))  # it moved
  # the caller's arrays given to fit() as init stay usable
  init = jax.tree_util.tree_map(lambda x: x[:, 0], v0)
  sched = fitting.Schedule(stages=(fitting.Stage("s", 3, FULL, ALL),), learning_rates=LRS)
  fitting.fit(sc, tg, sched, key=jax.random.key(0), init=init)
  assert not any(x.is_deleted() for x in jax.tree_util.tree_leaves(init))


def test_shared_identity_is_the_mean_of_per_photo_steps(tiny):
  sc, tg = tiny
  w = objective.LossWeights.create(**dict(FULL))
  v0, keys = _start(sc, 2)
  # the photos differ in pose, and start from different identities so that the per-photo steps differ
  # (Adam's first step is +-lr per coordinate)
  v0 = v0.replace(camera=v0.camera.at[1].add(0.05), shape=v0.shape.at[1].add(0.3), texture=v0.texture.at[1].add(0.2))
  shared, alone = _spec(1, shared=True), _spec(1, shared=False)
  s0 = fitting.init_opt_state(v0, spec=shared)
  copy = lambda: jax.tree_util.tree_map(jnp.copy, (v0, s0))  # noqa: E731  (donated: fit()'s own programs)
  vs, _, _ = fitting.chunk(*copy(), sc, tg, w, keys, 0, shared, "dispatch", donate=True)
  va, _, _ = fitting.chunk(*copy(), sc, tg, w, keys, 0, alone, "dispatch", donate=True)
  for field in ("shape", "texture"):
    s, a = np.asarray(getattr(vs, field)), np.asarray(getattr(va, field))
    np.testing.assert_array_equal(s[0], s[1])  # shared across the photos
    np.testing.assert_allclose(s[0], a.mean(0), rtol=1e-5, atol=1e-7)  # = the mean of per-photo steps
    assert not np.allclose(a[0], a[1])  # (the per-photo steps differ, so the check means something)
  np.testing.assert_allclose(np.asarray(vs.camera), np.asarray(va.camera), rtol=1e-5, atol=1e-7)  # per photo


def test_one_compilation_per_structure_across_fits_and_calls(tiny):
  sc, tg = tiny
  sched = fitting.Schedule(stages=(fitting.Stage("align", 4, (("align", 1.0),), ("shape", "camera")),
                                   fitting.Stage("full", 2, FULL, ALL)), learning_rates=LRS, chunk=2)
  compiled.clear_memory()
  fitting.fit(sc, tg, sched, key=jax.random.key(0))
  counts = {n: compiled.compilations(n) for n in ("fit_step", "fit_chunk", "prepare_targets")}
  # a second fit of other photos (same shapes) and another target preparation compile nothing new
  rng = np.random.default_rng(1)
  tg2 = objective.prepare_targets(sc, jnp.asarray(rng.uniform(0, 1, (2, 64, 64, 3)), jnp.float32),
                                  jnp.asarray(rng.uniform(20, 44, (2, 68, 2)), jnp.float32))
  res = fitting.fit(sc, tg2, sched, key=jax.random.key(1))
  assert {n: compiled.compilations(n) for n in counts} == {"fit_step": 1, "fit_chunk": 1, "prepare_targets": 1}
  assert counts == {"fit_step": 1, "fit_chunk": 1, "prepare_targets": 0}
  # the start (variables and keys), the optimiser states (one per stage structure) and the choice of the best
  # init are compiled programs too, built once
  assert {n: compiled.compilations(n) for n in ("fit_start", "init_opt_state", "fit_finish")} == {
      "fit_start": 1, "init_opt_state": 2, "fit_finish": 1}
  for f, _, _ in compiled._MEMORY.values():
    assert f._cache_size() == 1  # and each compiled program was built once
  assert res.history["loss"].shape == (6, 2) and res.faces.camera.shape == (2, 10)
  with pytest.raises(ValueError, match="photo_keys must be integers"):
    fitting.fit(sc, tg2, sched, key=jax.random.key(1), photo_keys=[-1, 2])


def test_main_job_compiles_its_programs_not_single_operations(tmp_path):
  """A fit and its outputs compile (or load from the caches) their named programs and almost nothing else:
  each stray eager jnp operation would be one more XLA compilation, in every process (~170 of them, 3-4 s,
  before they were removed). The outputs' programs, built ahead by prefetch_outputs, are not built again."""
  import jax.monitoring
  from ganfit_jax.configs.fit import get_config
  from ganfit_jax.reconstruct import Reconstructor
  rec = Reconstructor(get_config("tiny"))
  p = rec.prepare(os.path.join(LFW_DIR, "images_deepfunneled", "Aaron_Peirsol", "Aaron_Peirsol_0001.jpg"))
  events = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda name, secs, **kw: events.append(name) if name == "/jax/core/compile/backend_compile_duration" else None)
  with pytest.raises(TypeError, match="PreparedFace"):
    rec.prefetch_outputs("photo.jpg")
  compiled.clear_memory()
  jax.clear_caches()
  rec.prefetch_outputs(p).join()
  assert {n: compiled.compilations(n) for n in ("photo_detail", "render_outputs")} == {
      "photo_detail": 1, "render_outputs": 1}
  (r,) = rec.fit([p], ["Aaron_Peirsol_0001"])
  report = rec.write(r, str(tmp_path / "out"))
  assert {n: compiled.compilations(n) for n in ("photo_detail", "render_outputs")} == {
      "photo_detail": 1, "render_outputs": 1}
  assert report.texture_detail and os.path.exists(tmp_path / "out" / "mesh.glb")
  programs = sum(compiled._COUNTS.values())
  # allowance: the PRNG key (two), the dispatch loop's stacking of aux (and two spare)
  # (12 events for 9 programs when written; the main job had 177 before its eager operations were removed)
  assert len(events) <= programs + 5, (len(events), dict(compiled._COUNTS))


def _landmark_step(sc, tg):
  """A function running one landmark-stage step of the tiny fit (fitting.run_step: compiled entry 'fit_step')."""
  v0, keys = _start(sc, 2)
  spec = fitting.ChunkSpec(length=1, learning_rates=LRS, groups=("shape",), lr_scale=1.0, images=False,
                           shared_identity=False)
  w = objective.LossWeights.create(align=1.0)
  s0 = fitting.init_opt_state(v0, spec=spec)
  return lambda: fitting.run_step(v0, s0, sc, tg, w, keys, 0, spec=spec)


def test_exported_programs_are_reused_from_disk(tiny, monkeypatch):
  """A new process (simulated: the in-memory entries forgotten) loads the program instead of tracing it."""
  if compiled.disk_folder() is None:
    pytest.skip("compilation cache switched off (GANFIT_COMPILATION_CACHE=0)")
  sc, tg = tiny
  step = _landmark_step(sc, tg)
  first = step()
  compiled.clear_memory()
  from jax import export
  monkeypatch.setattr(export, "export", lambda *a, **k: (_ for _ in ()).throw(AssertionError("traced again")))
  again = step()
  for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(again)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ----------------------------------------------------------------------------- the real scene

def test_landmark_stage_recovers_synthetic_landmarks(ict_model):
  from ganfit_jax import scene as scene_lib
  sc = scene_lib.make(ict_model)
  truth = P.init(ict_model, jnp.zeros(1)).replace(
      shape=jnp.zeros(100).at[:5].set(jnp.array([1.0, -0.5, 0.8, 0.3, -1.0])),
      camera=jnp.array([0.3, -0.2, 0.1, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0]), focal=jnp.array([0.2]))
  lm = objective.project_landmarks(sc, P.to_face(truth, ict_model.expression_kind))
  tg = objective.prepare_targets(sc, jnp.zeros((1, 224, 224, 3)), lm[None])
  stage = fitting.Stage("align", 300, (("align", 1.0), ("reg_shape", 0.05), ("reg_expression", 0.01)),
                        ("shape", "expression", "camera", "focal"))
  res = fitting.fit(sc, tg, fitting.Schedule(stages=(stage,), learning_rates=tuple((g, 0.05) for g in ALL),
                                             chunk=100), key=jax.random.key(0))
  assert res.history["landmark_rmse_px"][-1, 0] < 1.0 < res.history["landmark_rmse_px"][0, 0]
  assert res.history["loss"][-1, 0] < res.history["loss"][0, 0] / 50
  e = np.asarray(res.faces.expression)
  assert e.min() >= 0.0 and e.max() <= 1.0  # ICT activations stay in range


@pytest.fixture(scope="module")
def gan_scene(ict_model):
  from ganfit_jax import scene as scene_lib
  from ganfit_jax.nets import identity
  from ganfit_jax.texture import models
  return scene_lib.make(ict_model, models.load("gan"), identity.load("sface"))


def test_synthetic_recovery_with_every_term(gan_scene):
  """A face rendered by the model itself is fitted back: landmarks, pixels and camera improve."""
  sc = gan_scene
  m = sc.model
  truth = P.init(m, sc.texture.sample_latent(jax.random.PRNGKey(3))).replace(
      shape=jnp.zeros(100).at[:4].set(jnp.array([0.8, -0.6, 0.5, 0.4])),
      camera=jnp.array([0.25, -0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]), focal=jnp.array([0.1]),
      light=jnp.array([0.5, 0.3, 0.0, 0.1, 0.0, -0.1, 0.05, 0.0, 0.0]))
  tf = P.to_face(truth, m.expression_kind)
  grey = jnp.full((224, 224, 3), 0.3)
  image = np.asarray(jax.jit(lambda f: objective.render_face(sc, f, grey)[0].image)(tf))
  lm = np.asarray(objective.project_landmarks(sc, tf))
  tg = objective.prepare_targets(sc, image[None], lm[None])
  # the tiny preset's stage structure (groups, rates, chunk): its compiled steps are the command line's
  from ganfit_jax.configs.fit import get_config
  tiny = fitting.schedule_from_config(get_config("tiny"))
  align, full = tiny.stages
  priors = (("reg_shape", 0.05), ("reg_expression", 0.01))
  stages = (dataclasses.replace(align, steps=60, weights=(("align", 1.0), ("landmark", 0.001)) + priors),
            dataclasses.replace(full, steps=40, weights=(("identity", 0.5), ("content", 5.0), ("pixel", 1.0),
                                                         ("align", 0.1)) + priors))
  sched = dataclasses.replace(tiny, stages=stages)
  res = fitting.fit(sc, tg, sched, key=jax.random.key(1))
  h = res.history
  assert h["landmark_rmse_px"][-1, 0] < 2.0 < h["landmark_rmse_px"][0, 0]
  assert h["pixel"][-1, 0] < h["pixel"][60, 0]
  f = jax.tree_util.tree_map(lambda x: x[0], res.faces)
  render = jax.jit(lambda f: objective.render_face(sc, f, grey)[0].image)
  fitted = np.asarray(render(f))
  # where the fit started: fit() splits its key into the texture starts' key and the steps' key
  v0 = fitting.initial_variables(sc, 1, sched, jax.random.split(jax.random.key(1))[0])
  start = np.asarray(render(P.to_face(jax.tree_util.tree_map(lambda x: x[0, 0], v0), m.expression_kind)))
  face = np.abs(image - 0.3).max(-1) > 1e-6
  err, err0 = np.abs(fitted - image)[face].mean(), np.abs(start - image)[face].mean()
  assert err < 0.7 * err0, (err, err0)
  assert np.abs(np.asarray(f.camera - tf.camera))[:3].max() < 60.0  # camera position within 6 cm at ~1 m


# ----------------------------------------------------------------------------- what a compiled entry is keyed on

def test_a_changed_closure_or_a_wrapped_loss_never_reuses_a_program(tiny, tmp_path, monkeypatch):
  """compiled.call keys on the function it compiles (code, closure, what its globals reach): the same entry name
  with another closure, or objective.loss_fn wrapped by a user, compiles anew, in memory and on disk."""
  def add(c):
    return lambda x: x + c

  assert float(compiled.call(add(1.0), np.float32(1), name="t_add")) == 2.0
  assert float(compiled.call(add(2.0), np.float32(1), name="t_add")) == 3.0  # not the first closure's program
  sc, tg = tiny
  step = _landmark_step(sc, tg)
  loss = lambda: float(step()[2]["loss"][0, 0])  # noqa: E731
  base = loss()
  original = objective.loss_fn
  monkeypatch.setattr(compiled, "_DISK", [str(tmp_path / "exported")])  # a disk cache of its own

  def wrapped(extra):
    def loss(*a, **k):
      value, aux = original(*a, **k)
      return value + extra, dict(aux, loss=aux["loss"] + extra)
    return loss

  for extra in (1.0, 2.0):
    monkeypatch.setattr(objective, "loss_fn", wrapped(extra))
    for fresh in (False, True):  # in this process, then as a new process would (memory forgotten, disk kept)
      if fresh:
        compiled.clear_memory()
      got = loss()
      assert got == pytest.approx(base + extra, rel=1e-5), (extra, fresh, got, base)
  assert len(list((tmp_path / "exported").glob("fit_step-*.jaxexport"))) == 2  # one program per wrapped loss
  monkeypatch.setattr(objective, "loss_fn", original)
  compiled.clear_memory()
  assert loss() == pytest.approx(base)


def test_programs_go_to_disk_only_after_configure(tmp_path):
  """A library user who never calls runtime.configure() gets in-memory programs only (a fresh process)."""
  import subprocess
  import sys
  code = ("import numpy as np, os\n"
          "from ganfit_jax import compiled, runtime\n"
          "assert compiled.disk_folder() is None\n"
          "compiled.call(lambda x: x * 2, np.float32(1), name='t_mem')\n"
          "runtime.configure()\n"
          "compiled.call(lambda x: x * 3, np.float32(1), name='t_disk')\n"
          "print(sorted(f.split('-')[0] for f in os.listdir(compiled.disk_folder())))\n")
  env = dict(os.environ, GANFIT_ASSETS=str(tmp_path))
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
  assert r.returncode == 0, r.stderr[-2000:]
  assert r.stdout.strip().splitlines()[-1] == "['t_disk']"


_FINGERPRINTS = """
import functools, jax
from ganfit_jax import compiled, fitting, objective, params
from ganfit_jax.outputs import render
spec = fitting.ChunkSpec(length=1, learning_rates=tuple((g, 0.01) for g in params.GROUPS), groups=params.GROUPS,
                         lr_scale=1.0, images=True, shared_identity=False)
fns = [jax.vmap(objective.prepare_target, in_axes=(None, 0, 0, 0)),
       functools.partial(render._render_outputs, render_size=128), lambda *a: fitting._step(spec, *a)]
print([compiled.fingerprint(f)[:2] for f in fns])
"""


def test_fingerprints_are_the_same_in_every_process():
  """A program exported by one process is found by the next one: the main job's entries have fingerprints that
  are reproducible (no object compared by identity, no address) and equal across processes."""
  import subprocess
  import sys
  runs = [subprocess.run([sys.executable, "-c", _FINGERPRINTS], capture_output=True, text=True) for _ in range(2)]
  assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
  a, b = (eval(r.stdout.strip().splitlines()[-1]) for r in runs)
  assert a == b and all(stable for _, stable in a), (a, b)


def test_newton_solver_converges_and_refuses_image_stages():
  """newton_step solves a badly scaled least-squares problem in a few iterations (Adam would need thousands);
  a stage with image terms, or one that moves the texture, cannot use it."""
  a = jnp.diag(jnp.array([1.0, 100.0, 0.01]))
  b = jnp.array([1.0, -2.0, 3.0])
  loss = lambda x: jnp.sum(jnp.square(a @ x - b)) + 0.1 * jnp.sum(jnp.square(x)) ** 2  # noqa: E731
  x, lam = jnp.zeros(3), jnp.float32(fitting.NEWTON_DAMPING)
  losses = [float(loss(x))]
  for _ in range(30):
    x, lam, _ = fitting.newton_step(loss, x, lam)
    losses.append(float(loss(x)))
  assert all(l1 <= l0 for l0, l1 in zip(losses, losses[1:]))  # refused steps keep the loss
  g, h = jax.grad(loss)(x), jax.hessian(loss)(x)
  assert float(jnp.max(jnp.abs(jnp.linalg.solve(h, g)))) < 1e-2, g  # at the minimum: the Newton step is ~0
  assert losses[-1] < losses[0]
  with pytest.raises(ValueError, match="without image terms"):
    fitting.Stage("full", 5, (("identity", 1.0),), ("shape",), solver="newton")
  with pytest.raises(ValueError, match="texture"):
    fitting.Stage("align", 5, (("align", 1.0),), ("shape", "texture"), solver="newton")
  with pytest.raises(ValueError, match="solver must be"):
    fitting.Stage("align", 5, (("align", 1.0),), ("shape",), solver="lbfgs")
  scene = make_tiny_scene()
  stage = fitting.Stage("align", 2, (("align", 1.0),), ("shape", "camera"), solver="newton")
  sched = fitting.Schedule(stages=(stage,), learning_rates=tuple((g, 0.01) for g in P.GROUPS))
  targets = objective.prepare_targets(scene, np.zeros((2, 64, 64, 3), np.float32),
                                      np.full((2, 68, 2), 32.0, np.float32))
  with pytest.raises(ValueError, match="shared_identity"):
    fitting.fit(scene, targets, sched, key=jax.random.key(0), shared_identity=True)


def test_extra_terms_join_the_objective_through_fit(tiny):
  """A term of one's own (here: pull the shape coefficients towards 0.5) enters fit() by name, with its
  weight in the stage: it moves the result, shows in the history, and bad names are refused."""
  sc, tg = tiny
  pull = lambda face, variables, target: jnp.mean(jnp.square(face.shape - 0.5))  # noqa: E731
  base = dict(align=1.0, reg_shape=0.01)
  lrs = tuple((g, 0.05) for g in ALL)

  def run(extra_weights, terms):
    stage = fitting.Stage("geo", 30, tuple(base.items()), ("shape", "camera"), extra_weights=extra_weights)
    return fitting.fit(sc, tg, fitting.Schedule(stages=(stage,), learning_rates=lrs, chunk=10),
                       key=jax.random.key(0), extra_terms=terms)

  plain = run((), None)
  pulled = run((("pull", 50.0),), {"pull": pull})
  assert "pull" in pulled.history and "pull" not in plain.history
  assert pulled.history["pull"][-1].mean() < 0.3 * pulled.history["pull"][0].mean()
  assert np.abs(np.asarray(pulled.faces.shape) - 0.5).mean() < np.abs(np.asarray(plain.faces.shape) - 0.5).mean()
  # the term's weight 0 (not named in the stage): computed and reported, but it does not pull
  idle = run((), {"pull": pull})
  np.testing.assert_allclose(np.asarray(idle.faces.shape), np.asarray(plain.faces.shape), atol=1e-5)
  assert "pull" in idle.history
  with pytest.raises(ValueError, match="does not define"):
    run((("pull", 1.0),), None)
  with pytest.raises(ValueError, match="built-in"):
    run((), {"pixel": pull})
  with pytest.raises(ValueError, match="built-in"):
    objective.LossWeights.create(extra={"align": 1.0})
