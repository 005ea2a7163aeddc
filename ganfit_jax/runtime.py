"""Process-wide settings, applied only when asked: ``ganfit_jax.runtime.configure()``.

Importing ``ganfit_jax`` changes nothing in the process. The tools, benchmarks
and tests call :func:`configure` first thing, which does two things (each can
be turned off, and each leaves a setting the user made alone):

1. **XLA CPU flag.** XLA's experimental "YNN" fusions (jaxlib 0.10.2) turn the
   small reductions of the renderer's gradient (per-pixel sums over 3 colour
   channels or 3 triangle corners) into library calls several times slower
   than XLA's own loops here (WORKSPACE.md, renderer speed: 25-35% slower
   forward + backward). :func:`configure` adds
   ``--xla_cpu_experimental_ynn_fusion_type=`` to ``XLA_FLAGS``, unless
   ``XLA_FLAGS`` already names that flag or ``GANFIT_XLA_DEFAULTS=0``. XLA
   reads the variable when JAX starts its first backend, so call
   :func:`configure` before any JAX computation.
2. **Persistent compilation cache.** Compiled programs are kept on disk, so a
   second run of the main job does not compile again: in
   ``$JAX_COMPILATION_CACHE_DIR`` when set (JAX's own variable wins), else in
   ``<asset cache>/xla_cache`` (``$GANFIT_ASSETS`` or ``~/.cache/ganfit_jax``);
   the project's exported programs (:mod:`ganfit_jax.compiled`) go into its
   ``exported/`` folder. ``GANFIT_COMPILATION_CACHE=0`` turns both off. Without
   :func:`configure` nothing is written to disk.

Child processes inherit ``XLA_FLAGS``; one running another jaxlib that does not
know the flag should get :data:`ORIGINAL_XLA_FLAGS` back (``benchmarks/render.py``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Optional, Sequence

_FLAG = "--xla_cpu_experimental_ynn_fusion_type="
ORIGINAL_XLA_FLAGS = os.environ.get("XLA_FLAGS")  # as the user set it, before configure()


def apply_xla_flags() -> bool:
  """Adds the CPU flag to ``XLA_FLAGS`` (see the module docstring); returns whether it did."""
  if os.environ.get("GANFIT_XLA_DEFAULTS", "1") == "0":
    return False
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_experimental_ynn_fusion_type" in flags:
    return False
  os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}".strip()
  return True


def compilation_cache_dir() -> Optional[str]:
  """Where compiled programs are cached, or None when the cache is off."""
  if os.environ.get("GANFIT_COMPILATION_CACHE", "1") == "0":
    return None
  env = os.environ.get("JAX_COMPILATION_CACHE_DIR")
  if env:
    return env
  from ganfit_jax import assets
  return os.path.join(assets.cache_dir(), "xla_cache")


def enable_compilation_cache() -> Optional[str]:
  """Turns JAX's persistent compilation cache on (see the module docstring); returns its folder."""
  d = compilation_cache_dir()
  if d is None:
    return None
  import jax
  os.makedirs(d, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", d)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  from ganfit_jax import compiled
  compiled.use_disk_cache(os.path.join(d, "exported"))
  return d


_SECONDS = {"trace": 0.0, "lower": 0.0, "compile": 0.0}
_EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "trace",
           "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
           "/jax/core/compile/backend_compile_duration": "compile"}
_LISTENING = []


def _listen(event: str, seconds: float, **_):
  if event in _EVENTS:
    _SECONDS[_EVENTS[event]] += seconds


def compile_seconds() -> dict:
  """Seconds this process spent tracing, lowering and compiling with XLA (JAX's own monitoring events;
  counted from :func:`configure` on)."""
  return {k: round(v, 3) for k, v in _SECONDS.items()}


def configure(xla_flags: bool = True, compilation_cache: bool = True) -> dict:
  """Applies the settings above and starts counting compile time (:func:`compile_seconds`); returns what
  was done."""
  if not _LISTENING:
    import jax.monitoring
    jax.monitoring.register_event_duration_secs_listener(_listen)
    _LISTENING.append(True)
  _quiet_platform_probe()
  return dict(xla_flags=apply_xla_flags() if xla_flags else False,
              compilation_cache=enable_compilation_cache() if compilation_cache else None)


def _quiet_platform_probe() -> None:
  """JAX logs at INFO each accelerator platform it probes and does not find ("Unable to initialize backend
  'tpu'"); absl's app.run shows INFO lines, so every tool printed it. Shown only with absl's --v=1."""
  import logging
  if not _verbose():
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)


def _verbose() -> bool:
  """absl's verbosity is >= 1 (``--v=1``): the notices below are shown."""
  try:
    from absl import logging as absl_logging
    return absl_logging.get_verbosity() >= 1
  except ImportError:  # pragma: no cover - absl is a requirement
    return False


@contextlib.contextmanager
def native_notices_dropped(drop: Sequence[str]):
  """Runs the block with the process's stderr (file descriptor 2, where native libraries such as OpenCV and
  the TFLite runtime print) captured; afterwards writes what was captured back to ``sys.stderr``, less the
  lines that contain one of ``drop`` (known notices that tell a user nothing, e.g. TFLite's "Created
  TensorFlow Lite XNNPACK delegate"). With absl's ``--v=1`` (verbosity >= 1) nothing is dropped. The
  redirection is process-wide: keep the block to the one native call that prints."""
  verbose = _verbose()
  sys.stderr.flush()
  with tempfile.TemporaryFile() as log:
    saved = os.dup(2)
    try:
      os.dup2(log.fileno(), 2)
      yield
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      log.seek(0)
      lines = log.read().decode(errors="replace").splitlines(True)
      keep = [ln for ln in lines if verbose or not any(d in ln for d in drop)]
      if keep:
        sys.stderr.write("".join(keep))
        sys.stderr.flush()
