"""Compiled entry points that survive the process: ``jax.export`` of the pure step functions, on disk.

JAX's persistent compilation cache (:mod:`ganfit_jax.runtime`) skips XLA's
compile on a second run, but JAX must still trace and lower the Python
function to find the cache entry: ~8 s for the full fitting step on the 2-core
CPU. :func:`call` removes that too: the first call with a given structure
exports the function (``jax.export``: traced and lowered once), writes the
serialised module beside the compilation cache, and runs it through
``Exported.call`` (compiled once, then found in the compilation cache); later
processes deserialise it in milliseconds.

Entries are keyed by the function's name and static configuration, the
pytree structure, shapes and dtypes of its arguments, the backend, the JAX
version and a hash of this package's source, so a code change never reuses
a stale program. With the compilation cache switched off
(``GANFIT_COMPILATION_CACHE=0``) nothing is written and :func:`call` is a
plain ``jax.jit``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import threading
from typing import Callable, Dict, Hashable, Optional, Tuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

_MEMORY: Dict[Tuple, Tuple[Callable, list]] = {}
_COUNTS: Dict[str, int] = {}
# one lock per entry, held while it is built and first run (JAX compiles at the first call): a thread that
# asks for an entry another thread is still compiling (e.g. Reconstructor.prefetch_outputs) waits for it
# instead of compiling it again
_LOCKS: Dict[Tuple, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@functools.lru_cache(maxsize=None)
def code_version() -> str:
  """sha256 of every .py file of the package (names and contents)."""
  root = os.path.dirname(os.path.abspath(__file__))
  h = hashlib.sha256()
  for d, dirs, files in sorted(os.walk(root)):
    dirs.sort()
    for f in sorted(files):
      if f.endswith(".py"):
        p = os.path.join(d, f)
        h.update(os.path.relpath(p, root).encode())
        with open(p, "rb") as fh:
          h.update(fh.read())
  return h.hexdigest()


def _folder():
  from ganfit_jax import runtime
  d = runtime.compilation_cache_dir()
  return None if d is None else os.path.join(d, "exported")


def _flat(fn: Callable, in_tree):
  """``fn`` as a function of flat leaves returning flat leaves; the output structure is recorded in the
  returned list at the first trace."""
  out_tree = []

  def flat(*ls):
    out_leaves, tree = jax.tree_util.tree_flatten(fn(*jax.tree_util.tree_unflatten(in_tree, ls)))
    out_tree.append(tree)
    return out_leaves

  return flat, out_tree


def _build(fn: Callable, name: str, static: Hashable, leaves, in_tree, donate: Tuple[int, ...] = ()):
  flat, out_tree = _flat(fn, in_tree)

  folder = _folder()
  if folder is None:
    return jax.jit(flat, donate_argnums=donate), out_tree  # the structure is learnt at the first call
  from jax import export
  avals = tuple((tuple(x.shape), str(x.dtype)) for x in leaves)
  key = hashlib.sha256(repr((name, static, str(in_tree), avals, jax.default_backend(), jax.__version__,
                             code_version())).encode()).hexdigest()[:32]
  path = os.path.join(folder, f"{name}-{key}.jaxexport")
  if os.path.exists(path):
    try:
      with open(path, "rb") as fh:
        blob, tree = pickle.load(fh)
      return jax.jit(export.deserialize(bytearray(blob)).call, donate_argnums=donate), [tree]
    except Exception:  # noqa: BLE001  (a truncated or foreign file: export again)
      pass
  exp = export.export(jax.jit(flat))(*leaves)
  os.makedirs(folder, exist_ok=True)
  tmp = f"{path}.partial{os.getpid()}"
  with open(tmp, "wb") as fh:
    pickle.dump((bytes(exp.serialize()), out_tree[0]), fh)
  os.replace(tmp, path)
  return jax.jit(exp.call, donate_argnums=donate), out_tree


def _sharded(x, mesh) -> bool:
  return isinstance(getattr(x, "sharding", None), NamedSharding) and x.sharding.mesh == mesh


def _build_spmd(fn: Callable, in_tree, donate: Tuple[int, ...]):
  flat, out_tree = _flat(fn, in_tree)
  return jax.jit(flat, donate_argnums=donate), out_tree


def _committed_to(x, device) -> bool:
  return isinstance(x, jax.Array) and x.committed and len(x.sharding.device_set) == 1 and \
      next(iter(x.sharding.device_set)) == device


def call(fn: Callable, *args, name: str, static: Hashable = (), donate: int = 0, mesh: Optional[Mesh] = None):
  """``fn(*args)`` through a cached, exported compilation (see the module docstring).

  Args:
    fn: a pure function of pytrees of arrays (no typed PRNG keys: pass key data); anything
      static must be bound into ``fn`` and named in ``static``.
    name: the entry point's name (part of the key and of the file name).
    static: a hashable description of everything bound into ``fn``.
    donate: the first ``donate`` arguments' buffers are donated to the outputs (the caller must not use
      them afterwards; e.g. the optimiser's variables and state, replaced by the step's outputs).
    mesh: run SPMD over this device mesh (more than one device): arguments already placed on it (e.g. a
      batch axis sharded with ``NamedSharding``) keep their placement, the others are replicated, and the
      program is a plain ``jax.jit`` (XLA partitions it; the persistent compilation cache still applies,
      the exported-program cache does not: an exported program is tied to one device count).
  """
  if not 0 <= donate <= len(args):
    raise ValueError(f"donate={donate} must count leading arguments (0..{len(args)})")
  leaves, in_tree = jax.tree_util.tree_flatten(args)
  donated = tuple(range(len(jax.tree_util.tree_leaves(args[:donate]))))
  spmd = mesh is not None and mesh.size > 1
  if spmd:
    replicated = NamedSharding(mesh, PartitionSpec())
    leaves = [x if _sharded(x, mesh) else jax.device_put(x, replicated) for x in leaves]
    placement = tuple(str(x.sharding.spec) for x in leaves)
  else:
    # committed to this process's first device, as outputs of a compiled call are: a first call with fresh
    # (uncommitted) inputs and a second one with the first's outputs then share one program. Leaves already
    # there (a scene made by scene.make, weights, earlier outputs) are not put again: a scene has ~300 leaves.
    dev = jax.local_devices()[0]
    todo = [i for i, x in enumerate(leaves) if not _committed_to(x, dev)]
    if todo:
      leaves = list(leaves)
      for i, x in zip(todo, jax.device_put([leaves[i] for i in todo], dev)):
        leaves[i] = x
    placement = ()
  mem_key = (name, static, in_tree, tuple((x.shape, x.dtype) for x in leaves), donated, placement,
             None if mesh is None else (tuple(mesh.shape.items()), tuple(d.id for d in mesh.devices.flat)))
  entry = _MEMORY.get(mem_key)
  if entry is None:
    with _LOCKS_GUARD:
      lock = _LOCKS.setdefault(mem_key, threading.Lock())
    with lock:
      entry = _MEMORY.get(mem_key)
      if entry is None:  # this thread builds it, and compiles it by running it once
        if spmd:
          built = _build_spmd(fn, in_tree, donated)
        else:
          built = _build(fn, name, static, leaves, in_tree, donated)
        out = built[0](*leaves)
        _MEMORY[mem_key] = built
        _COUNTS[name] = _COUNTS.get(name, 0) + 1
        return jax.tree_util.tree_unflatten(built[1][0], out)
  f, out_tree = entry
  out = f(*leaves)
  return jax.tree_util.tree_unflatten(out_tree[0], out)


def float32(x):
  """``x`` as a float32 argument of a compiled call, without running a program for it: a jax array (or
  tracer) as it is (cast when it is another dtype), anything else converted on the host. (``jnp.asarray``
  of a NumPy array compiles and runs a small conversion program, one per shape.)"""
  if isinstance(x, jax.Array):
    return x if x.dtype == np.float32 else x.astype(np.float32)
  return np.asarray(x, np.float32)


def compilations(name: str) -> int:
  """How many distinct programs this process has built (or loaded) for ``name``."""
  return _COUNTS.get(name, 0)


def clear_memory() -> None:
  """Forgets the in-process entries (the disk cache stays): what a new process would see."""
  _MEMORY.clear()
  _COUNTS.clear()
  with _LOCKS_GUARD:
    _LOCKS.clear()
