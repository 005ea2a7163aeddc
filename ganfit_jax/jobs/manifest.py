"""What a job has finished: append-only manifests (one JSON line per photo) and the merged summary.csv.

Each process appends to its own file (``manifest.jsonl`` for a single process, ``manifest.P.jsonl`` for
process P of several), one complete line per ``os.write`` on an ``O_APPEND`` descriptor, fsynced: a kill
at any moment leaves whole lines, or at worst an unterminated last line, which :func:`read` drops (and
:class:`Manifest` cuts off before appending). The last line of a key wins, so a retried photo's new line
replaces its old one.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from typing import Dict, Iterable, List, Optional
from ganfit_jax.files import atomic_write

DONE, FAILED = "done", "failed"
# why a photo failed: 'input' (the photo or its landmark file cannot be used: not retried unless asked)
# or 'error' (anything else, e.g. an interrupted or crashed fit: retried on the next run)
INPUT, ERROR = "input", "error"
SUMMARY_COLUMNS = ("key", "status", "failure", "output", "person", "identity_cosine", "landmark_rmse_px",
                   "fit_seconds", "reason", "source")


def manifest_name(process_id: int, num_processes: int) -> str:
  return "manifest.jsonl" if num_processes == 1 else f"manifest.{process_id}.jsonl"


def _lines(path: str) -> Iterable[dict]:
  with open(path, "rb") as f:
    lines = f.read().split(b"\n")
  for raw in lines[:-1]:  # the last piece is empty, or an unterminated (torn) line: dropped
    if not raw.strip():
      continue
    try:
      rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
      continue  # not ours, or damaged by hand: ignored
    if isinstance(rec, dict) and "key" in rec and "status" in rec:
      yield rec


def read(out_dir: str) -> Dict[str, dict]:
  """key -> the latest record over every manifest in ``out_dir``."""
  records: Dict[str, dict] = {}
  for p in sorted(glob.glob(os.path.join(out_dir, "manifest*.jsonl"))):
    for rec in _lines(p):
      records[rec["key"]] = rec
  return records


class Manifest:
  """This process's manifest in ``out_dir``, opened for appending at the first :meth:`append` (a job that
  fails before its first result writes nothing); a torn last line is cut first."""

  def __init__(self, out_dir: str, process_id: int = 0, num_processes: int = 1):
    self.path = os.path.join(out_dir, manifest_name(process_id, num_processes))
    self._fd = None

  def _open(self) -> None:
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    if os.path.exists(self.path):
      with open(self.path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
          f.truncate(data.rfind(b"\n") + 1)
    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

  def append(self, *records: dict) -> None:
    """Appends the records' lines in ONE write (a unit's photos, e.g. one person's, land together or not
    at all), then fsyncs."""
    data = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in records).encode("utf-8")
    if not data:
      return
    if self._fd is None:
      self._open()
    n = os.write(self._fd, data)
    if n != len(data):  # a short write (disk full): cut it back, so no half line stays
      os.ftruncate(self._fd, os.lseek(self._fd, 0, os.SEEK_END) - n)
      raise OSError(f"short write to {self.path} ({n} of {len(data)} bytes); free disk space and rerun")
    os.fsync(self._fd)

  def close(self) -> None:
    if self._fd is not None:
      os.close(self._fd)
      self._fd = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def should_run(rec: Optional[dict], retry_failed: bool) -> bool:
  """Whether a photo with manifest record ``rec`` is fitted (again) by this run."""
  if rec is None:
    return True
  if rec["status"] == DONE:
    return False
  return retry_failed or rec.get("failure") != INPUT


def write_summary(out_dir: str, records: Dict[str, dict]) -> str:
  """``summary.csv``: one row per photo (sorted by key), written through a temporary file renamed into
  place (several processes may write it; each write is whole), and ``index.html`` listing every photo with
  a link to its report page (:func:`ganfit_jax.outputs.page.write_listing`)."""
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
  w.writeheader()
  for k in sorted(records):
    r = records[k]
    w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in SUMMARY_COLUMNS})
  path = os.path.join(out_dir, "summary.csv")
  atomic_write(path, buf.getvalue())
  from ganfit_jax.outputs import page
  page.write_listing(out_dir, [dict(records[k], out=records[k].get("output")) for k in sorted(records)])
  return path


def counts(records: Dict[str, dict], keys: List[str], retry_failed: bool) -> Dict[str, int]:
  """For ``--dry_run``: how many of ``keys`` are new, finished, failed (and of those, to be retried)."""
  c = dict(new=0, finished=0, failed=0, retried=0)
  for k in keys:
    rec = records.get(k)
    if rec is None:
      c["new"] += 1
    elif rec["status"] == DONE:
      c["finished"] += 1
    else:
      c["failed"] += 1
      c["retried"] += int(should_run(rec, retry_failed))
  return c


__all__ = ["DONE", "FAILED", "INPUT", "ERROR", "SUMMARY_COLUMNS", "manifest_name", "read", "Manifest",
           "should_run", "write_summary", "counts"]
