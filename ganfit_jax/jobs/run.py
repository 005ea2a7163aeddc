"""The job loop behind every input path: stream -> fit (sharded over local devices) -> atomic output folders
-> manifest lines.

  items = inputs.share(inputs.from_dir("photos"), process_id, num_processes)
  summary = run.run(Reconstructor(cfg), items, "out/", batch_size=8, mesh=run.local_mesh())

``--input_dir`` / ``--input_list`` (datasets) and ``--image`` / ``--images`` (a photo, one person's photos;
``strict``: a bad input is an error, nothing is written) all come here as :class:`ganfit_jax.jobs.inputs.Item`
s: one naming scheme, one person-group flow (a person's photos fitted together, their shared face written to
``identity/`` beside them), one summary (``manifest.jsonl`` + ``summary.csv`` + ``index.html``).

Resumable: photos whose manifest line says ``done`` are skipped; a photo that failed for a bad input is
skipped unless ``retry_failed``; anything else (never finished, a crash) is fitted again. Every result
folder is built aside and renamed into place, then its manifest line is appended: a kill loses at most the
unit in flight. Independent photos are fitted ``batch_size`` at a time (the last batch padded with copies,
so one compiled program serves the whole job); a person's photos are fitted together with a shared
identity (one program per distinct group size; groups whose size is not a multiple of the device count
run on one device).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np

from ganfit_jax.jobs import inputs, manifest, stream


MAX_FAILURES_SHOWN = 20


def local_mesh(num_devices: Optional[int] = None):
  """A 1-d mesh ('photos') over this process's devices (all of them, or the first ``num_devices``)."""
  import jax
  devs = jax.local_devices()
  if num_devices is not None:
    if not 1 <= num_devices <= len(devs):
      raise ValueError(f"num_devices={num_devices}: this process has {len(devs)} device(s)")
    devs = devs[:num_devices]
  return jax.sharding.Mesh(np.array(devs), ("photos",))


def initialize_distributed(coordinator_address: str, num_processes: int, process_id: int) -> None:
  """JAX's multi-process runtime (``jax.distributed.initialize``); CPU devices use gloo collectives (the
  end-of-job barrier; the setting does not touch GPUs or TPUs). Every process of the job is started with
  the same address and count, before anything else uses JAX."""
  import jax
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                             process_id=process_id)


def barrier(name: str, timeout_s: float = 7 * 24 * 3600) -> None:
  """Waits for every process of a multi-process job (no-op for one process).

  Processes of a dataset job finish hours apart; a device collective (``multihost_utils.sync_global_devices``)
  gives up after 30 s on CPUs (gloo's context deadline), so this waits at the coordination service's own
  barrier (``jax.distributed``'s client; it is not a public API, hence the fallback)."""
  import jax
  if jax.process_count() == 1:
    return
  from jax._src import distributed
  client = getattr(distributed.global_state, "client", None)
  if client is not None and hasattr(client, "wait_at_barrier"):
    client.wait_at_barrier(name, int(timeout_s * 1000))
  else:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def _pad_to(n: int, multiple: int) -> int:
  return int(math.ceil(n / multiple) * multiple)


def _record(item: inputs.Item, status: str, **kw) -> dict:
  rec = dict(key=item.key, source=os.path.abspath(item.path), status=status, output=item.out,
             person=item.person, time=round(time.time(), 3))
  rec.update({k: v for k, v in kw.items() if v is not None})
  return rec


def _done_record(item: inputs.Item, report, seconds: float) -> dict:
  """The manifest line of a written result (``report``: its :class:`ganfit_jax.outputs.report.Report`)."""
  lm = report.landmark_rmse_px
  return _record(item, manifest.DONE, identity_cosine=report.identity_cosine_photo_vs_render,
                 landmark_rmse_px=None if lm is None else round(lm, 3), fit_seconds=round(seconds, 3),
                 faces_detected=report.faces_detected)


class _Bar:
  """A photo progress bar (tqdm) with the job's counts."""

  def __init__(self, total: int, desc: str, enabled: bool):
    self.bar = None
    if enabled and total:
      from tqdm import tqdm
      self.bar = tqdm(total=total, desc=desc, unit="photo", mininterval=1.0, file=sys.stderr)

  def update(self, n: int, done: int, failed: int) -> None:
    if self.bar is not None:
      self.bar.update(n)
      self.bar.set_postfix_str(f"done {done} failed {failed}", refresh=False)

  def write(self, line: str) -> None:
    if self.bar is not None:
      self.bar.write(line, file=sys.stderr)
    else:
      print(line, file=sys.stderr)

  def close(self):
    if self.bar is not None:
      self.bar.close()


def run(rec, items: List[inputs.Item], out_dir: str, *, batch_size: int, mesh=None, process_id: int = 0,
        num_processes: int = 1, retry_failed: bool = False, refit: bool = False, workers: int = 2,
        prefetch: Optional[int] = None, select="largest", progress: bool = True,
        summary_every_s: float = 30.0, book: bool = True, strict: bool = False,
        fit_progress: Optional[Callable[[str], Callable]] = None) -> Dict[str, object]:
  """Fits this process's ``items`` into ``out_dir``; returns counts (done, failed, skipped) and ``records``
  (this run's manifest records, in order).

  Args:
    rec: a :class:`ganfit_jax.reconstruct.Reconstructor`.
    items: this process's share (:func:`ganfit_jax.jobs.inputs.share`).
    batch_size: independent photos per fit (rounded up to a multiple of the mesh's device count).
    mesh: shard each batch over these devices (:func:`local_mesh`); None: one device.
    retry_failed: also refit photos that failed for a bad input.
    refit: ignore the manifest (fit everything again, replacing outputs).
    workers, prefetch: host threads loading and detecting, and how many photos they may run ahead
      (default 2 batches).
    select: which face when several are detected and no ``face_box`` is given.
    progress: a photo progress bar.
    summary_every_s: summary.csv is rewritten at most this often (and at the end).
    book: keep ``manifest.jsonl``, ``summary.csv`` and ``index.html`` in ``out_dir`` (False for one photo
      whose result folder is ``out_dir`` itself).
    strict: every item is prepared before anything is written, and the first bad input or failed fit raises
      (``--image`` / ``--images``); otherwise they are recorded and the job goes on (datasets).
    fit_progress: ``fit_progress(description)`` makes the fit's step-progress callback of a unit.
  """
  if int(batch_size) != batch_size or batch_size < 1:
    raise ValueError(f"batch_size={batch_size} must be an integer >= 1 (--config.batch_size)")
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise ValueError(f"process_id={process_id} must be in 0..{num_processes - 1}")
  tmp_root = os.path.join(out_dir, f".partial-p{process_id}") if book else None  # what a kill leaves
  if tmp_root:
    shutil.rmtree(tmp_root, ignore_errors=True)
  book_ = manifest.Manifest(out_dir, process_id, num_processes) if book else None
  records = manifest.read(out_dir) if book and not refit else {}
  run_it = lambda it: refit or manifest.should_run(records.get(it.key), retry_failed)  # noqa: E731
  # a person's photos share one fit: if any of them runs, all of them do (but not its bad inputs)
  people = {it.person for it in items if it.person is not None and run_it(it)}
  todo = [it for it in items if run_it(it) or (it.person in people and records[it.key]["status"] == manifest.DONE)]
  todo = stream.order(todo)
  devices = 1 if mesh is None else mesh.size
  batch = _pad_to(int(batch_size), devices)
  sizes: Dict[str, int] = {}
  for it in todo:
    if it.person is not None:
      sizes[it.person] = sizes.get(it.person, 0) + 1

  def prepare(it: inputs.Item):
    return rec.prepare(it.path, select=select if it.face is None else it.face, landmarks=it.landmarks,
                       face_box=it.face_box)

  counts: Dict[str, object] = dict(done=0, failed=0, skipped=len(items) - len(todo), records=[])
  bar = _Bar(len(todo), f"process {process_id}" if num_processes > 1 else "photos", progress)
  last_summary = time.monotonic()

  def finish(pairs):
    """Records a unit's outcomes: one manifest write for all of them."""
    if book_ is not None:
      book_.append(*[record for _, record in pairs])
    for item, record in pairs:
      _count(item, record)

  def _count(item, record):
    records[item.key] = record
    counts["records"].append(record)
    counts["done" if record["status"] == manifest.DONE else "failed"] += 1
    if record["status"] != manifest.DONE and counts["failed"] <= MAX_FAILURES_SHOWN:
      bar.write(f"failed {item.key} ({record['failure']}): {record['reason']}")
      if counts["failed"] == MAX_FAILURES_SHOWN:
        bar.write(f"(further failures are not shown; see {book_.path} or summary.csv)")

  try:
    if strict:  # every photo prepared first: a bad input raises before anything is written
      prepared = [(it, prepare(it)) for it in todo]
    else:
      prepared = stream.prepare_all(todo, prepare, workers=workers, prefetch=prefetch or 2 * batch)
    for unit in stream.units(prepared, batch, sizes):
      outcomes = [(item, _record(item, manifest.FAILED, failure=fail.kind, reason=fail.reason))
                  for item, fail in unit.failed]
      if unit.photos:
        what = f"{len(unit.photos)} photos" if len(unit.photos) > 1 else "fit"
        outcomes += _fit_unit(rec, unit, batch, mesh, devices, out_dir, tmp_root, strict,
                              fit_progress(what) if fit_progress else None)
      finish(outcomes)
      bar.update(len(unit.photos) + len(unit.failed), counts["done"], counts["failed"])
      if book and time.monotonic() - last_summary > summary_every_s:
        manifest.write_summary(out_dir, records)
        last_summary = time.monotonic()
  finally:
    bar.close()
    if book_ is not None:
      book_.close()
  if tmp_root:
    shutil.rmtree(tmp_root, ignore_errors=True)
  if book and os.path.isdir(out_dir):
    manifest.write_summary(out_dir, manifest.read(out_dir))
  return counts


def _fit_unit(rec, unit: stream.Unit, batch: int, mesh, devices: int, out_dir: str, tmp_root: Optional[str],
              strict: bool = False, fit_progress=None) -> list:
  """Fits and writes one unit; returns its (item, manifest record) pairs (``strict``: errors raise)."""
  items = [it for it, _ in unit.photos]
  faces = [p for _, p in unit.photos]
  t0 = time.perf_counter()
  rec.prefetch_outputs(faces[0])  # the first unit: the outputs' programs get ready while it fits
  try:
    if unit.person is None:
      # a fixed batch: one compiled program for every batch of the job
      results = rec.fit(faces, [it.path for it in items], mesh=mesh, photo_keys=[inputs.seed(it) for it in items],
                        progress=fit_progress, batch=batch)
    else:
      group_mesh = mesh if (mesh is not None and len(faces) % devices == 0) else None
      results = rec.fit(faces, [it.path for it in items], shared_identity=True, mesh=group_mesh,
                        progress=fit_progress)
  except Exception as e:  # noqa: BLE001  (a failed fit is recorded and retried by the next run)
    if strict:
      raise
    return [(it, _record(it, manifest.FAILED, failure=manifest.ERROR, reason=f"fit: {type(e).__name__}: {e}"))
            for it in items]
  seconds = (time.perf_counter() - t0) / len(items)
  out = []
  for it, r in zip(items, results):
    try:
      dest = os.path.join(out_dir, it.out) if it.out else out_dir
      out.append((it, _done_record(it, rec.write(r, dest, tmp_root=tmp_root), seconds)))
    except OSError as e:
      if strict:
        raise
      out.append((it, _record(it, manifest.FAILED, failure=manifest.ERROR, reason=f"write: {e}")))
  if unit.person is not None and results:
    try:  # the shared neutral identity (+ the first photo's pose and detail), beside the person's photos
      # (photo detail fused from every photo, Writer.write(others=), left halos at the face's edge on LFW
      # photos: WORKSPACE.md "Video", so identity/ keeps the first photo's)
      rec.write(results[0], os.path.join(out_dir, os.path.dirname(items[0].out), "identity"), tmp_root=tmp_root)
    except OSError as e:
      if strict:
        raise
      print(f"warning: identity of {unit.person} not written: {e}", file=sys.stderr)
  return out


def dry_run(items: List[inputs.Item], out_dir: str, retry_failed: bool = False, refit: bool = False) -> Dict[str, int]:
  """What :func:`run` would do: counts of new, finished and failed photos (and failed ones it would retry)."""
  records = {} if refit else manifest.read(out_dir) if os.path.isdir(out_dir) else {}
  return manifest.counts(records, [it.key for it in items], retry_failed)


__all__ = ["local_mesh", "initialize_distributed", "barrier", "run", "dry_run"]
