"""Atomic file and folder writes: nothing half-written is ever left under its final name.

The one place the project writes files through a temporary name renamed into place:
:func:`atomic_write` (bytes or text), :func:`atomic_path` (a temporary path for writers that take a path,
e.g. ``np.savez``), :func:`atomic_dir` (a whole result folder).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Optional


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
  """Yields a temporary path beside ``path`` (ending in ``suffix``, for writers that choose the format by
  extension) that is renamed to ``path`` when the block succeeds and removed when it fails. The name is per
  process: several processes of a dataset job may write the same file; each write is whole."""
  tmp = f"{path}.partial{os.getpid()}{suffix}"
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def atomic_write(path: str, data, mode: str = "w") -> None:
  """Writes ``data`` (text for ``mode`` 'w', bytes for 'wb') to ``path`` through :func:`atomic_path`."""
  with atomic_path(path) as tmp:
    with open(tmp, mode) as f:
      f.write(data)


@contextlib.contextmanager
def atomic_dir(out_dir: str, overwrite: bool = True, tmp_root: Optional[str] = None):
  """Yields a temporary folder that becomes ``out_dir`` when the block succeeds.

  The temporary folder is made beside ``out_dir``, or in ``tmp_root`` (on the same file system: a dataset
  job's one place for what a kill leaves behind, removed when the job restarts). On an exception the
  temporary folder is removed and ``out_dir`` is left as it was.
  """
  parent = os.path.dirname(os.path.abspath(out_dir)) or "."
  os.makedirs(parent, exist_ok=True)
  where = tmp_root or parent
  os.makedirs(where, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".partial-", dir=where)
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide results from the user's group
  try:
    yield tmp
    if os.path.exists(out_dir):
      if not overwrite:
        raise FileExistsError(f"{out_dir} exists; pass overwrite=True to replace it")
      old = tempfile.mkdtemp(prefix=".old-", dir=where)
      os.replace(out_dir, os.path.join(old, "x"))
      os.replace(tmp, out_dir)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.replace(tmp, out_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
