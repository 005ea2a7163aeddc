"""Compiled entry points that survive the process: ``jax.export`` of the pure step functions, on disk.

JAX's persistent compilation cache (:mod:`ganfit_jax.runtime`) skips XLA's
compile on a second run, but JAX must still trace and lower the Python
function to find the cache entry (the full fitting step takes seconds).
:func:`call` removes that too: the first call with a given structure exports
the function (``jax.export``: traced and lowered once), writes the serialised
module beside the compilation cache, and runs it through ``Exported.call``
(compiled once, then found in the compilation cache); later processes
deserialise it instead of tracing.

What an entry is keyed on (in memory and on disk): the entry's name and
``static`` description, the pytree structure, shapes and dtypes of the
arguments, and the **function itself** (:func:`fingerprint`): its code, what
its closure captures, and, followed through its globals and the attributes
of the modules it names, every Python function it can reach (a loss that a
user wraps or replaces in ``objective``'s namespace changes the key). On disk
the key adds the backend, the JAX and Python versions and a hash of this
package's source. A function whose fingerprint is not reproducible across
processes (it captures an object compared by identity) gets an in-memory
entry only.

Programs are written to disk only after :func:`ganfit_jax.runtime.configure`
turned the compilation cache on (the tools, benchmarks and tests call it) or
after :func:`use_disk_cache`; otherwise :func:`call` compiles in memory only.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import os
import pickle
import sys
import sysconfig
import threading
import types
from typing import Callable, Dict, Hashable, List, Optional, Tuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

_MEMORY: Dict[Tuple, Tuple[Callable, list, list]] = {}  # key -> (program, output tree, objects kept)
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


_DISK: List[Optional[str]] = [None]  # the folder of exported programs, once turned on


def use_disk_cache(folder: Optional[str]) -> None:
  """Exports programs into ``folder`` from now on (None: in memory only). :func:`ganfit_jax.runtime.configure`
  calls it with ``<compilation cache>/exported``."""
  _DISK[0] = None if folder is None else os.path.abspath(folder)


def disk_folder() -> Optional[str]:
  """Where programs are exported, or None (not turned on: :func:`use_disk_cache`)."""
  return _DISK[0]


# --------------------------------------------------------------------------- #
# Function fingerprints.

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_LIBRARY_DIRS = tuple(sorted({os.path.abspath(p) + os.sep for k in ("stdlib", "platstdlib", "purelib", "platlib")
                              for p in [sysconfig.get_paths().get(k)] if p}))
_SCALARS = (type(None), bool, int, float, complex, str, bytes)


def _where(code: types.CodeType) -> str:
  """'package' (this package: its source is in the disk key), 'library' (installed packages and the
  standard library: their version is what counts) or 'user' (anything else: the code itself is hashed)."""
  f = os.path.abspath(code.co_filename)
  if f.startswith(_PACKAGE_DIR):
    return "package"
  if f.startswith(_LIBRARY_DIRS) or code.co_filename.startswith("<frozen"):
    return "library"
  return "user"


@functools.lru_cache(maxsize=None)
def _code_digest(code: types.CodeType) -> str:
  """A digest of a code object: its bytecode, names and constants (nested code objects included)."""
  h = hashlib.sha256()
  h.update(code.co_code)
  h.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_argcount,
                 code.co_kwonlyargcount)).encode())
  for c in code.co_consts:
    h.update(_code_digest(c).encode() if isinstance(c, types.CodeType) else repr((type(c).__name__, c)).encode())
  return h.hexdigest()


def _names(code: types.CodeType) -> Tuple[str, ...]:
  """Global and attribute names a code object (and the code objects nested in it) may look up."""
  out = list(code.co_names)
  for c in code.co_consts:
    if isinstance(c, types.CodeType):
      out += _names(c)
  return tuple(dict.fromkeys(out))


class _Walk:
  """One fingerprint computation: a digest, whether it is reproducible in another process, and the
  (namespace, name, value) slots it read (to check a memoised result cheaply)."""

  def __init__(self):
    self.stable = True
    self.slots: List[Tuple[dict, str, object]] = []
    self._seen_slots: set = set()
    self.keep: List[object] = []  # objects fingerprinted by identity: kept alive while their entry is used
    self.active: set = set()

  def value(self, x, depth: int = 0) -> str:
    if depth > 50:
      return "deep"
    if isinstance(x, _SCALARS):
      return repr((type(x).__name__, x))
    if isinstance(x, enum.Enum):
      return repr(x)
    if isinstance(x, (tuple, list, frozenset, set)):
      items = sorted(x, key=repr) if isinstance(x, (set, frozenset)) else x
      return f"{type(x).__name__}(" + ",".join(self.value(v, depth + 1) for v in items) + ")"
    if isinstance(x, dict):
      return "dict(" + ",".join(f"{self.value(k, depth + 1)}:{self.value(v, depth + 1)}"
                                for k, v in sorted(x.items(), key=lambda kv: repr(kv[0]))) + ")"
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
      if isinstance(x, jax.core.Tracer):
        self.stable = False
        self.keep.append(x)
        return f"tracer@{id(x)}"
      a = np.asarray(x)
      return f"array({a.dtype},{a.shape},{hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()})"
    if isinstance(x, functools.partial):
      parts = (self.value(x.func, depth + 1), self.value(x.args, depth + 1), self.value(x.keywords, depth + 1))
      return "partial(" + ",".join(parts) + ")"
    if isinstance(x, types.MethodType):
      return f"method({self.value(x.__func__, depth + 1)},{self.value(x.__self__, depth + 1)})"
    if isinstance(x, types.FunctionType):
      return self.function(x, depth + 1)
    if isinstance(x, types.ModuleType):
      return f"module({x.__name__})"
    if isinstance(x, type):
      return self.cls(x)
    if isinstance(x, (types.BuiltinFunctionType, types.BuiltinMethodType)):
      return f"builtin({getattr(x, '__module__', '')}.{getattr(x, '__qualname__', repr(x))})"
    if dataclasses.is_dataclass(x):
      return f"{self.cls(type(x))}(" + ",".join(f"{f.name}={self.value(getattr(x, f.name, None), depth + 1)}"
                                                 for f in dataclasses.fields(x)) + ")"
    wrapped = getattr(x, "__wrapped__", None)  # e.g. a jax.jit-ed or custom_vjp function
    if wrapped is not None and callable(x):
      return f"wrapped({self.cls(type(x))},{self.value(wrapped, depth + 1)})"
    if type(x) is object:  # a bare sentinel (e.g. jax.vmap's "no axis name"): no state to tell apart
      return "sentinel"
    if type(x).__hash__ is not object.__hash__ and type(x).__repr__ is not object.__repr__:
      return f"{self.cls(type(x))}:{x!r}"  # a value type (hash and repr of its own)
    self.stable = False  # compared by identity: this process only
    self.keep.append(x)
    return f"object({self.cls(type(x))}@{id(x)})"

  def slot(self, ns: dict, name: str, value) -> None:
    if (id(ns), name) not in self._seen_slots:
      self._seen_slots.add((id(ns), name))
      self.slots.append((ns, name, value))

  def cls(self, c: type) -> str:
    name = f"{c.__module__}.{c.__qualname__}"
    mod = sys.modules.get(c.__module__)
    f = getattr(mod, "__file__", None) or ""
    if f and not os.path.abspath(f).startswith(_PACKAGE_DIR) and not os.path.abspath(f).startswith(_LIBRARY_DIRS):
      # a user's class: its methods' code (one level) belongs to it
      name += "{" + ",".join(f"{k}:{_code_digest(v.__code__)}" for k, v in sorted(vars(c).items())
                             if isinstance(v, types.FunctionType)) + "}"
    return name

  def function(self, fn: types.FunctionType, depth: int) -> str:
    code = fn.__code__
    where = _where(code)
    head = f"{where}:{fn.__module__}.{fn.__qualname__}"
    if where == "user":
      head += ":" + _code_digest(code)
    parts = [head]
    if fn.__defaults__:
      parts.append("defaults=" + self.value(fn.__defaults__, depth))
    if fn.__kwdefaults__:
      parts.append("kwdefaults=" + self.value(fn.__kwdefaults__, depth))
    if fn.__closure__:
      cells = []
      for name, cell in zip(code.co_freevars, fn.__closure__):
        try:
          cells.append(f"{name}={self.value(cell.cell_contents, depth)}")
        except ValueError:  # an empty cell (a recursive inner function not yet bound)
          cells.append(f"{name}=<empty>")
      parts.append("closure(" + ",".join(cells) + ")")
    if where != "library" and id(fn) not in self.active:  # what it can reach through its globals
      self.active.add(id(fn))
      parts.append("globals(" + self.globals_of(fn, depth) + ")")
      self.active.discard(id(fn))
    return "fn[" + ";".join(parts) + "]"

  def globals_of(self, fn: types.FunctionType, depth: int) -> str:
    ns = fn.__globals__
    names = _names(fn.__code__)
    out = []
    for n in names:
      if n not in ns:
        continue
      v = ns[n]
      self.slot(ns, n, v)
      if isinstance(v, types.ModuleType):
        out.append(f"{n}={self.module_attrs(v, names, depth)}")
      elif isinstance(v, (types.FunctionType, functools.partial, types.MethodType)) or dataclasses.is_dataclass(v) \
          or callable(getattr(v, "__wrapped__", None)):
        out.append(f"{n}={self.value(v, depth + 1)}")
      elif isinstance(v, type):
        out.append(f"{n}={self.cls(v)}")
      elif isinstance(v, _SCALARS + (tuple, np.ndarray, np.generic)):
        out.append(f"{n}={self.value(v, depth + 1)}")  # module constants
    return ",".join(out)

  def module_attrs(self, mod: types.ModuleType, names, depth: int) -> str:
    """A module global: the functions among its attributes that the code may look up (``objective.loss_fn``);
    library modules by name only."""
    f = getattr(mod, "__file__", None) or ""
    if not f or os.path.abspath(f).startswith(_LIBRARY_DIRS) and not os.path.abspath(f).startswith(_PACKAGE_DIR):
      return f"module({mod.__name__})"
    ns = vars(mod)
    out = []
    for n in names:
      v = ns.get(n)
      if v is None:
        continue
      self.slot(ns, n, v)
      if isinstance(v, (types.FunctionType, functools.partial)) or callable(getattr(v, "__wrapped__", None)):
        out.append(f"{n}={self.value(v, depth + 1)}")
    return f"module({mod.__name__}:" + ",".join(out) + ")"


# code object -> [(slots, digest of the code-and-globals part)]: re-walked only when a slot changed
_MEMO: Dict[types.CodeType, Tuple[List[Tuple[dict, str, object]], str, bool, list]] = {}
_MEMO_LOCK = threading.Lock()


def fingerprint(fn: Callable) -> Tuple[str, bool, list]:
  """(digest, reproducible in another process, objects it refers to by identity) of a function: see the module
  docstring. Globals are re-read on every call (a replaced ``objective.loss_fn`` is seen); the walk behind
  them is memoised and re-done only when one of the names it read now holds another object."""
  walk = _Walk()
  if isinstance(fn, types.FunctionType):
    # the function's own closure and defaults: read at every call (a new lambda per call is the usual case)
    own = _Walk()
    code = fn.__code__
    local = []
    if fn.__defaults__:
      local.append(own.value(fn.__defaults__))
    if fn.__kwdefaults__:
      local.append(own.value(fn.__kwdefaults__))
    if fn.__closure__:
      for name, cell in zip(code.co_freevars, fn.__closure__):
        try:
          local.append(f"{name}={own.value(cell.cell_contents)}")
        except ValueError:
          local.append(f"{name}=<empty>")
    with _MEMO_LOCK:
      memo = _MEMO.get(code)
    if memo is None or any(ns.get(n, _MISSING) is not v for ns, n, v in memo[0]):
      g = _Walk()
      where = _where(code)
      head = f"{where}:{fn.__module__}.{fn.__qualname__}" + (":" + _code_digest(code) if where == "user" else "")
      body = g.globals_of(fn, 0) if where != "library" else ""
      memo = (g.slots, hashlib.sha256(f"{head};{body}".encode()).hexdigest(), g.stable, g.keep)
      with _MEMO_LOCK:
        _MEMO[code] = memo
    digest = hashlib.sha256(f"{memo[1]};{';'.join(local)}".encode()).hexdigest()
    return digest, memo[2] and own.stable, memo[3] + own.keep
  text = walk.value(fn)
  return hashlib.sha256(text.encode()).hexdigest(), walk.stable, walk.keep


_MISSING = object()



def _flat(fn: Callable, in_tree):
  """``fn`` as a function of flat leaves returning flat leaves; the output structure is recorded in the
  returned list at the first trace."""
  out_tree = []

  def flat(*ls):
    out_leaves, tree = jax.tree_util.tree_flatten(fn(*jax.tree_util.tree_unflatten(in_tree, ls)))
    out_tree.append(tree)
    return out_leaves

  return flat, out_tree


def _build(fn: Callable, name: str, static: Hashable, fp: str, stable: bool, leaves, in_tree,
           donate: Tuple[int, ...] = ()):
  flat, out_tree = _flat(fn, in_tree)

  folder = disk_folder()
  if folder is None or not stable:
    return jax.jit(flat, donate_argnums=donate), out_tree  # the structure is learnt at the first call
  from jax import export
  avals = tuple((tuple(x.shape), str(x.dtype)) for x in leaves)
  key = hashlib.sha256(repr((name, static, fp, str(in_tree), avals, jax.default_backend(), jax.__version__,
                             sys.version_info[:2], code_version())).encode()).hexdigest()[:32]
  path = os.path.join(folder, f"{name}-{key}.jaxexport")
  if os.path.exists(path):
    try:
      with open(path, "rb") as fh:
        blob, tree = pickle.load(fh)
      return jax.jit(export.deserialize(bytearray(blob)).call, donate_argnums=donate), [tree]
    except Exception:  # noqa: BLE001  (a truncated or foreign file: export again)
      pass
  exp = export.export(jax.jit(flat))(*leaves)
  from ganfit_jax.files import atomic_write
  os.makedirs(folder, exist_ok=True)
  atomic_write(path, pickle.dumps((bytes(exp.serialize()), out_tree[0])), "wb")
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
    fn: a pure function of pytrees of arrays (no typed PRNG keys: pass key data); what it captures (closure,
      ``functools.partial`` arguments, globals) is part of the key (:func:`fingerprint`).
    name: the entry point's name (part of the key, the file name and :func:`compilations`).
    static: an optional hashable description of the entry (part of the key, for readability).
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
  fp, stable, keep = fingerprint(fn)
  mem_key = (name, static, fp, in_tree, tuple((x.shape, x.dtype) for x in leaves), donated, placement,
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
          built = _build(fn, name, static, fp, stable, leaves, in_tree, donated)
        out = built[0](*leaves)
        _MEMORY[mem_key] = built + (keep,)
        _COUNTS[name] = _COUNTS.get(name, 0) + 1
        return jax.tree_util.tree_unflatten(built[1][0], out)
  f, out_tree, _ = entry
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
  with _MEMO_LOCK:
    _MEMO.clear()
  _COUNTS.clear()
  with _LOCKS_GUARD:
    _LOCKS.clear()
