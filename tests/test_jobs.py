"""Dataset jobs (ganfit_jax.jobs, tools/fit.py --input_dir/--input_list): inputs, shares, manifests, the
bounded pipeline, and through the command line: resume and dry runs, person groups, bad flags (in process);
SIGKILL + resume, 2 processes, 4 simulated devices, memory over 2,000 inputs (child processes: each needs a
process of its own)."""

import collections
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from conftest import LFW, ROOT, run_cli

from ganfit_jax.jobs import inputs, manifest, stream

# DevTrain people only
PHOTOS = [("Aaron_Peirsol", 1), ("Aaron_Peirsol", 2), ("AJ_Cook", 1), ("Abdoulaye_Wade", 1), ("Aaron_Sorkin", 1)]


def _lfw(name, i):
  return os.path.join(LFW, name, f"{name}_{i:04d}.jpg")


# ----------------------------------------------------------------------------- inputs, shares, manifest

def test_inputs_from_dir_recursive_with_unique_output_folders(tmp_path):
  (tmp_path / "a" / "b").mkdir(parents=True)
  (tmp_path / ".hidden").mkdir()
  for p in ("x.jpg", "x.png", "a/y.JPG", "a/b/z.webp", ".hidden/h.jpg", "a/notes.txt", "a/.dot.jpg"):
    (tmp_path / p).write_bytes(b"")
  items = inputs.from_dir(str(tmp_path))
  assert [it.key for it in items] == ["a/b/z.webp", "a/y.JPG", "x.jpg", "x.png"]
  outs = {it.key: it.out for it in items}
  assert outs["a/b/z.webp"] == "a/b/z" and outs["a/y.JPG"] == "a/y"
  assert outs["x.jpg"] != outs["x.png"] and outs["x.jpg"].startswith("x_jpg")  # two photos, one stem
  assert len(set(outs.values())) == len(outs)


def test_inputs_from_list_csv_and_jsonl(tmp_path):
  (tmp_path / "l.csv").write_text("path,person,landmarks,face_box\nimgs/a.jpg,p1,a.pts,\n/abs/b.jpg,p1,,1,2,3,4\n"
                                  "c.jpg,,,\n".replace(",1,2,3,4", ',"1,2,3,4"'))
  items = inputs.from_list(str(tmp_path / "l.csv"))
  assert [it.key for it in items] == ["imgs/a.jpg", "/abs/b.jpg", "c.jpg"]
  assert items[0].path == str(tmp_path / "imgs" / "a.jpg") and items[1].path == "/abs/b.jpg"
  assert items[0].landmarks == str(tmp_path / "a.pts") and items[1].face_box == "1,2,3,4"
  assert [it.person for it in items] == ["p1", "p1", None]
  assert items[0].out == "p1/a" and items[1].out == "p1/b" and items[2].out == "c"
  (tmp_path / "l.jsonl").write_text('{"path": "a.jpg", "person": "q"}\n\n{"path": "identity.jpg", "person": "q"}\n')
  items = inputs.from_list(str(tmp_path / "l.jsonl"))
  assert [it.out for it in items] == ["q/a", "q/identity_photo"]  # q/identity is the shared face


@pytest.mark.parametrize("text,message", [
    ("file,person\na.jpg,p\n", "needs a header line naming a 'path' column"),
    ("path,colour\na.jpg,red\n", "unknown column(s) ['colour']"),
    ("path\na.jpg\na.jpg\n", "listed twice (first on line 2)"),
    ('{"path": "a.jpg"}\n{"path": \n', "l.txt:2: not a JSON object"),
    ("path\n", "lists no photos"),
    ("path\n\"\"\n", "empty 'path'"),
])
def test_inputs_list_errors_name_the_line_and_the_fix(tmp_path, text, message):
  (tmp_path / "l.txt").write_text(text)
  with pytest.raises(inputs.JobInputError) as e:
    inputs.from_list(str(tmp_path / "l.txt"))
  assert message in str(e.value)


def test_shares_are_disjoint_complete_deterministic_and_keep_groups_together():
  items = inputs.with_outputs([inputs.Item(key=f"p{i // 3}/{i}.jpg", path=f"{i}.jpg", person=f"p{i // 3}" if i < 30
                                           else None) for i in range(200)])
  for n in (1, 2, 3, 7):
    shares = [inputs.share(items, p, n) for p in range(n)]
    keys = [it.key for s in shares for it in s]
    assert sorted(keys) == sorted(it.key for it in items)  # disjoint and complete
    assert [[it.key for it in s] for s in shares] == [[it.key for it in inputs.share(items, p, n)] for p in range(n)]
    for p, s in enumerate(shares):
      people = {it.person for it in s if it.person}
      assert all(inputs.owner(it, n) == p for it in items if it.person in people)
  assert 70 < len(inputs.share(items, 0, 2)) < 130  # roughly balanced
  assert inputs.seed(items[0]) == inputs.seed(inputs.Item(key=items[0].key, path="elsewhere.jpg"))
  with pytest.raises(ValueError):
    inputs.share(items, 2, 2)


def test_manifest_survives_a_torn_line_and_the_last_line_wins(tmp_path):
  with manifest.Manifest(str(tmp_path)) as m:
    m.append(dict(key="a", status="failed", failure="error", reason="killed"))
    m.append(dict(key="b", status="failed", failure="input", reason="no face"))
    m.append(dict(key="a", status="done", output="a"))
  with open(tmp_path / "manifest.jsonl", "ab") as f:
    f.write(b'{"key": "c", "status": "do')  # a kill in the middle of a write
  recs = manifest.read(str(tmp_path))
  assert set(recs) == {"a", "b"} and recs["a"]["status"] == "done"
  with manifest.Manifest(str(tmp_path)) as m:  # reopening cuts the torn line before appending
    m.append(dict(key="c", status="done"))
  lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
  assert len(lines) == 4 and all(json.loads(x) for x in lines)
  recs = manifest.read(str(tmp_path))
  assert not manifest.should_run(recs["a"], False) and not manifest.should_run(recs["b"], False)
  assert manifest.should_run(recs["b"], True) and manifest.should_run(None, False)
  assert manifest.should_run(dict(key="e", status="failed", failure="error"), False)
  assert manifest.counts(recs, ["a", "b", "c", "new"], False) == dict(new=1, finished=2, failed=1, retried=0)
  manifest.write_summary(str(tmp_path), recs)
  rows = (tmp_path / "summary.csv").read_text().splitlines()
  assert rows[0].startswith("key,status") and len(rows) == 4
  assert "no face" in (tmp_path / "index.html").read_text()  # the listing beside it says why b failed
  with manifest.Manifest(str(tmp_path), 1, 2) as m:
    m.append(dict(key="d", status="done"))
  assert (tmp_path / "manifest.1.jsonl").exists() and set(manifest.read(str(tmp_path))) == {"a", "b", "c", "d"}


def test_pipeline_is_bounded_ordered_and_groups_people():
  items = stream.order(inputs.with_outputs(
      [inputs.Item(key=f"{i}", path=f"{i}", person="p" if i in (1, 5, 9) else None) for i in range(40)]))
  assert [it.key for it in items][:4] == ["0", "1", "5", "9"]  # a person's photos next to each other
  lock, state = threading.Lock(), dict(started=0, max_ahead=0)
  consumed = [0]

  def prepare(it):
    with lock:
      state["started"] += 1
      state["max_ahead"] = max(state["max_ahead"], state["started"] - consumed[0])
    if it.key == "7":
      raise stream.face.NoFaceError("no face found in 7")
    if it.key == "8":
      raise RuntimeError("surprise")
    return it.key

  got = []
  for unit in stream.units(stream.prepare_all(items, prepare, workers=3, prefetch=5), 4, {"p": 3}):
    consumed[0] += len(unit.photos) + len(unit.failed)
    got.append(unit)
    time.sleep(0.01)
  # the prefetch window + the unit being filled (photos and failures of up to a batch each, one group)
  assert state["max_ahead"] <= 5 + 2 * 4 + 3 < len(items) // 2
  group = [u for u in got if u.person == "p"]
  assert len(group) == 1 and [it.key for it, _ in group[0].photos] == ["1", "5", "9"]
  singles = [u for u in got if u.person is None]
  assert all(len(u.photos) <= 4 for u in singles)
  failed = {it.key: f.kind for u in got for it, f in u.failed}
  assert failed == {"7": "input", "8": "error"}
  assert sorted(it.key for u in got for it, _ in u.photos + u.failed) == sorted(it.key for it in items)


# ----------------------------------------------------------------------------- the CLI on LFW photos

# The job tests are about the job (streaming, resuming, shares, devices, groups): the landmark stage alone, one
# photo at a time (the image terms through a job run in test_cli.py; a batch padded to the device count in the
# 4-device test below).
JOB = ["--config=" + os.path.join(ROOT, "configs", "fit.py") + ":tiny", "--config.stages.full.steps=0",
       "--config.batch_size=1", "--workers=2"]


def _cmd(args):
  return [sys.executable, os.path.join(ROOT, "tools", "fit.py")] + JOB + args  # args may override JOB's


def _run(args):
  """The job's command line in this process (conftest.run_cli)."""
  return run_cli(JOB + args, tiny=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  d = tmp_path_factory.mktemp("photos")
  (d / "sub").mkdir()
  for k, (name, i) in enumerate(PHOTOS):
    shutil.copy(_lfw(name, i), d / ("sub" if k % 2 else ".") / os.path.basename(_lfw(name, i)))
  (d / "broken.jpg").write_bytes(b"not a jpeg")
  return d


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
  """One process, one device, no interruption."""
  out = tmp_path_factory.mktemp("reference") / "out"
  r = _run([f"--input_dir={folder}", f"--out={out}"])
  assert r.code == 0, r.err[-4000:]
  assert "broken.jpg" in r.err  # the bad photo is reported, and recorded
  return out


def _manifest_lines(out):
  lines = []
  for p in sorted(out.glob("manifest*.jsonl")):
    text = p.read_text()
    assert text == "" or text.endswith("\n"), p
    lines += [json.loads(x) for x in text.splitlines()]
  return lines


def _check_complete(out, keys):
  lines = _manifest_lines(out)
  count = collections.Counter(x["key"] for x in lines)
  assert set(count) == set(keys) and max(count.values()) == 1, count  # every photo exactly once
  done = {x["key"]: x for x in lines if x["status"] == "done"}
  assert set(keys) - set(done) == {"broken.jpg"}
  for rec in done.values():
    rep = json.loads((out / rec["output"] / "report.json").read_text())
    assert np.isfinite(rep["identity_cosine_photo_vs_render"]) and (out / rec["output"] / "params.npz").exists()
  leftovers = [os.path.join(d, x) for d, dirs, _ in os.walk(out) for x in dirs if x.startswith((".partial", ".old"))]
  assert leftovers == []
  rows = (out / "summary.csv").read_text().splitlines()
  assert len(rows) == 1 + len(keys)
  listing = (out / "index.html").read_text()  # the top-level page: every photo, linked to its own page
  for k in keys:
    assert k in listing, k
  for rec in done.values():
    assert f"href='{rec['output']}/index.html'" in listing and (out / rec["output"] / "index.html").exists()
  return done


def _params(out, rec):
  with np.load(out / rec["output"] / "params.npz") as z:
    return {k: z[k] for k in ("shape", "expression", "texture_latent", "camera", "light")}


# A photo's fit is deterministic (the same command twice gives identical files) and does not depend on its
# batch neighbours' values, but float results depend on the program (batch size, position in the batch,
# device count): rounding differences that 24 Adam steps grow to 0.024 sigma in shape and 1.6 mm in camera
# position (`python benchmarks/dataset.py --section=determinism`, WORKSPACE.md). "The same parameters" is
# checked at a few times that scale, far below what another photo or another random start changes.
# (array, slice, atol): coefficients in sigma units, camera position / look-at / up in mm (~1 m away), focal;
# the light's position (~1.5 m away, weakly constrained) is compared by direction, below
TOLERANCE = (("shape", slice(None), 0.1), ("expression", slice(None), 0.1), ("texture_latent", slice(None), 0.1),
             ("camera", slice(0, 9), 5.0), ("camera", slice(9, 10), 0.02), ("light", slice(3, 9), 0.05))


def _same_params(out_a, done_a, out_b, done_b):
  for key in done_a:
    a, b = _params(out_a, done_a[key]), _params(out_b, done_b[key])
    for k, part, atol in TOLERANCE:
      np.testing.assert_allclose(a[k][part], b[k][part], rtol=0, atol=atol, err_msg=f"{key} {k}[{part}]")
    u, v = (x["light"][:3] / np.linalg.norm(x["light"][:3]) for x in (a, b))
    assert np.degrees(np.arccos(np.clip(u @ v, -1, 1))) < 1.0, (key, a["light"], b["light"])


KEYS = [("sub/" if k % 2 else "") + os.path.basename(_lfw(n, i)) for k, (n, i) in enumerate(PHOTOS)] + ["broken.jpg"]


def test_reference_run_resume_and_dry_run(reference, folder):
  done = _check_complete(reference, KEYS)
  assert done["sub/" + os.path.basename(_lfw("Aaron_Peirsol", 2))]["output"] == "sub/Aaron_Peirsol_0002"
  r = _run([f"--input_dir={folder}", f"--out={reference}", "--dry_run"])
  assert r.code == 0 and "6 photos: 0 new, 5 finished, 1 failed (0 would be retried" in r.out, r.out
  before = (reference / "manifest.jsonl").read_text()
  r = _run([f"--input_dir={folder}", f"--out={reference}"])
  assert r.code == 0 and "0 fitted, 0 failed, 6 already finished" in r.out, r.out + r.err[-2000:]
  assert (reference / "manifest.jsonl").read_text() == before  # nothing refitted, the bad input not retried


@pytest.mark.slow  # its own processes
def test_sigkill_at_random_moments_then_rerun(folder, reference, tmp_path):
  out = tmp_path / "out"
  rng = random.Random(1)
  moments = []
  for attempt in range(3):
    p = subprocess.Popen(_cmd([f"--input_dir={folder}", f"--out={out}"]), cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    if attempt == 0:  # as soon as the first photo is recorded: inside the batch's writing
      start = time.monotonic()
      while p.poll() is None and time.monotonic() - start < 300:
        if (out / "manifest.jsonl").exists() and (out / "manifest.jsonl").stat().st_size > 0:
          break
        time.sleep(0.05)
      moments.append("first line")
    else:
      t = rng.uniform(3.0, 12.0)  # the job's start (imports, compiled programs from the caches) to its end
      moments.append(round(t, 1))
      try:
        p.wait(timeout=t)
      except subprocess.TimeoutExpired:
        pass
    p.kill()  # SIGKILL
    p.wait()
  r = _run([f"--input_dir={folder}", f"--out={out}"])
  assert r.code == 0, (moments, r.err[-4000:])
  done = _check_complete(out, KEYS)
  _same_params(reference, _check_complete(reference, KEYS), out, done)


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow  # its own processes
def test_two_processes_with_jax_distributed_equal_one(folder, reference, tmp_path):
  out = tmp_path / "out"
  addr = f"127.0.0.1:{_free_port()}"
  procs = [subprocess.Popen(_cmd([f"--input_dir={folder}", f"--out={out}", f"--coordinator_address={addr}",
                                  "--num_processes=2", f"--process_id={i}"]), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for i in range(2)]
  results = [p.communicate(timeout=900) for p in procs]
  for p, (so, se) in zip(procs, results):
    assert p.returncode == 0, se[-4000:]
  assert {p.name for p in out.glob("manifest*.jsonl")} == {"manifest.0.jsonl", "manifest.1.jsonl"}
  shares = [{json.loads(x)["key"] for x in (out / f"manifest.{i}.jsonl").read_text().splitlines()} for i in range(2)]
  assert shares[0] and shares[1] and not shares[0] & shares[1]
  done = _check_complete(out, KEYS)
  ref = _check_complete(reference, KEYS)
  assert {k: v["output"] for k, v in done.items()} == {k: v["output"] for k, v in ref.items()}
  _same_params(reference, ref, out, done)
  r = _run([f"--input_dir={folder}", f"--out={out}", "--num_processes=2", "--process_id=1", "--dry_run"])
  assert r.code == 0 and f"process 1 of 2: {len(shares[1])} photos: 0 new" in r.out, r.out


@pytest.mark.slow  # its own processes
def test_four_simulated_devices_equal_one(folder, reference, tmp_path):
  """In one child process with 4 simulated CPU devices (the device count is fixed when JAX starts): a sharded
  fit of the tiny scene equals the one-device fit (photos sharing an identity: the cross-device mean), its step
  really is split over the devices, and the dataset job over 4 devices gives the parameters of the reference."""
  out = tmp_path / "out"
  code = textwrap.dedent("""
      import os, sys
      os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
      sys.path.insert(0, sys.argv[1])
      from ganfit_jax import runtime
      runtime.configure()
      import jax, jax.numpy as jnp, numpy as np
      from conftest import make_tiny_scene
      from ganfit_jax import cli, fitting, objective
      from ganfit_jax.jobs import run
      from test_fitting import LRS, ALL, FULL
      assert len(jax.devices()) == 4
      sc = make_tiny_scene()
      rng = np.random.default_rng(0)
      tg = objective.prepare_targets(sc, jnp.asarray(rng.uniform(0.2, 0.8, (4, 64, 64, 3)), jnp.float32),
                                     jnp.asarray(rng.uniform(20, 44, (4, 68, 2)), jnp.float32))
      sched = fitting.Schedule(stages=(fitting.Stage("a", 4, (("align", 1.0),), ALL), fitting.Stage("s", 3, FULL, ALL)),
                               learning_rates=LRS, chunk=2)
      mesh = run.local_mesh()
      one = fitting.fit(sc, tg, sched, key=jax.random.key(0), shared_identity=True, photo_keys=[5, 6, 7, 8])
      four = fitting.fit(sc, tg, sched, key=jax.random.key(0), shared_identity=True, mesh=mesh, photo_keys=[5, 6, 7, 8])
      for a, b in zip(jax.tree_util.tree_leaves(one.faces), jax.tree_util.tree_leaves(four.faces)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
      # the step really is split over the devices: its outputs live on 4 devices, one photo each (the fit's own
      # full-stage step: no new program)
      spec = fitting.ChunkSpec(length=1, learning_rates=LRS, groups=ALL, lr_scale=1.0, images=True,
                               shared_identity=True)
      v = fitting.initial_variables(sc, 4, fitting.Schedule(stages=(), learning_rates=LRS), jax.random.key(1))
      keys = jax.random.key_data(jax.random.split(jax.random.key(2), 4)).reshape((4, 1, -1))
      photos = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("photos"))
      v, tg, keys = jax.device_put((v, tg, keys), photos)
      w = objective.LossWeights.create(**dict(FULL))
      v2, _, aux = fitting.chunk(v, fitting.init_opt_state(v, spec=spec, mesh=mesh), sc, tg, w, keys, 0, spec,
                                 "dispatch", donate=True, mesh=mesh)
      assert len(v2.camera.sharding.device_set) == 4 and v2.camera.addressable_shards[0].data.shape[0] == 1
      # the dataset job over the 4 devices (independent photos, batch 4: the last batch padded); the parameters are
      # compared, so the outputs are the cheap ones
      sys.exit(cli.main(["fit.py"] + sys.argv[2:] + ["--config.texture_detail=false", "--export=arkit,html"]))
  """)
  r = subprocess.run([sys.executable, "-c", code, os.path.dirname(os.path.abspath(__file__))] + JOB
                     + [f"--input_dir={folder}", f"--out={out}", "--config.batch_size=4"],
                     capture_output=True, text=True, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-4000:]
  _same_params(reference, _check_complete(reference, KEYS), out, _check_complete(out, KEYS))


def test_input_list_person_groups_equal_images(tmp_path):
  a, b = _lfw("Aaron_Peirsol", 1), _lfw("Aaron_Peirsol", 3)
  lst = tmp_path / "list.csv"
  from ganfit_jax import face
  cook = _lfw("AJ_Cook", 1)
  np.save(tmp_path / "cook.npy", face.detect_faces(face.load_image(cook))[0].landmarks)
  lst.write_text(f"path,person,landmarks\n{a},aaron,\n{cook},,cook.npy\n{b},aaron,\n")  # cook.npy: beside the list
  out = tmp_path / "list_out"
  r = _run([f"--input_list={lst}", f"--out={out}"])
  assert r.code == 0, r.err[-4000:]
  r2 = _run([f"--images={a},{b}", f"--out={tmp_path / 'images_out'}"])
  assert r2.code == 0, r2.err[-4000:]
  for name in ("Aaron_Peirsol_0001", "Aaron_Peirsol_0003"):
    x = np.load(out / "aaron" / name / "params.npz")
    y = np.load(tmp_path / "images_out" / name / "params.npz")
    for k in ("shape", "expression", "texture_latent", "camera", "light"):
      np.testing.assert_allclose(x[k], y[k], rtol=1e-4, atol=1e-4, err_msg=f"{name} {k}")
  assert (out / "aaron" / "identity" / "mesh_neutral.obj").exists() and (out / "AJ_Cook_0001" / "mesh.glb").exists()
  rep = json.loads((out / "AJ_Cook_0001" / "report.json").read_text())  # from the given landmarks
  assert rep["faces_detected"] == 1 and "dlib_landmarks68" not in rep["assets"]
  x1, x3 = (np.load(out / "aaron" / n / "params.npz") for n in ("Aaron_Peirsol_0001", "Aaron_Peirsol_0003"))
  np.testing.assert_array_equal(x1["shape"], x3["shape"])  # one identity for the person


def _peak_rss(cmd, env=None):
  """Peak resident memory (MiB) of a child process, sampled every 50 ms, and its exit code."""
  import psutil
  p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
  proc, peak = psutil.Process(p.pid), 0
  err = []
  t = threading.Thread(target=lambda: err.append(p.stderr.read()))
  t.start()
  while p.poll() is None:
    try:
      peak = max(peak, proc.memory_info().rss)
    except psutil.Error:
      break
    time.sleep(0.05)
  t.join()
  return peak / 2**20, p.returncode, err[0] if err else ""


@pytest.mark.slow  # its own processes
def test_memory_stays_flat_over_2000_inputs(tmp_path):
  """2,000 inputs (tiny images without a face, and 2 LFW photos among them, fitted) vs 200 of the same
  kind: the pipeline holds a bounded window, so peak RSS grows by less than 96 MiB (measured: see
  WORKSPACE.md, dataset jobs; the sampled peak of a ~900 MiB process moved by 65 MiB once with the two test
  workers, so 64 was at the noise)."""
  import cv2
  rng = np.random.default_rng(0)
  tiny = rng.integers(0, 255, (24, 24, 3), np.uint8)
  peaks = {}
  for n in (200, 2000):
    d = tmp_path / f"in{n}"
    d.mkdir()
    for i in range(n):
      cv2.imwrite(str(d / f"t{i:05d}.png"), tiny)
    for k, (name, i) in enumerate(PHOTOS[:2]):
      shutil.copy(_lfw(name, i), d / f"t{(k * n) // 2:05d}_face.jpg")
    peak, code, err = _peak_rss(_cmd([f"--input_dir={d}", f"--out={tmp_path / f'out{n}'}"]))
    assert code == 0, err[-3000:]
    recs = manifest.read(str(tmp_path / f"out{n}"))
    assert len(recs) == n + 2 and sum(r["status"] == "done" for r in recs.values()) == 2
    peaks[n] = peak
  print(f"peak RSS MiB: {peaks}")  # pytest -s shows it (WORKSPACE.md quotes it)
  assert peaks[2000] - peaks[200] < 96, peaks


def test_bad_job_flags_exit_2_with_a_message_and_write_nothing(tmp_path, folder):
  (tmp_path / "bad.csv").write_text("file\na.jpg\n")
  (tmp_path / "afile").write_text("x")
  out = tmp_path / "out"
  cases = [([f"--input_list={tmp_path / 'bad.csv'}", f"--out={out}"], "naming a 'path' column"),
           ([f"--input_list={tmp_path / 'missing.csv'}", f"--out={out}"], "does not exist"),
           ([f"--input_dir={folder}", f"--out={tmp_path / 'afile'}"], "is a file"),
           ([f"--input_dir={folder}", f"--out={out}", "--num_processes=2"], "needs --coordinator_address"),
           ([f"--input_dir={folder}", f"--out={out}", "--num_processes=2", "--process_id=2",
             "--coordinator_address=127.0.0.1:1"], "must be in 0..1"),
           ([f"--input_dir={folder}", f"--out={out}", "--landmarks=x.pts"], "apply to --image"),
           ([f"--input_dir={folder}", f"--out={out}", "--num_devices=3"], "this process has 1 device"),
           ([f"--image={_lfw('AJ_Cook', 1)}", f"--out={out}", "--dry_run"], "apply to --input_dir")]
  for args, message in cases:
    r = _run(args)
    assert r.code == 2 and message in r.err and "Traceback" not in r.err, (args, r.err[-2000:])
    assert not out.exists(), args
