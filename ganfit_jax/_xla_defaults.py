"""XLA CPU settings applied when ``ganfit_jax`` is imported.

XLA's experimental "YNN" fusions (jaxlib 0.10.2) turn small reductions, such as
the per-pixel sums over 3 colour channels or 3 triangle corners that autodiff
creates in the renderer's gradient, into library calls that are several times
slower than XLA's own loops on this workload (measured in WORKSPACE.md,
"Measured: renderer speed"). They are switched off unless the user chose
otherwise:

* ``XLA_FLAGS`` already mentioning ``xla_cpu_experimental_ynn_fusion_type``
  wins;
* ``GANFIT_XLA_DEFAULTS=0`` leaves ``XLA_FLAGS`` untouched.

Child processes inherit the variable; one running another jaxlib that does not
know the flag should get ``ORIGINAL`` back (see ``benchmarks/render.py``).

XLA reads the variable when JAX first starts a backend, so this only takes
effect when ``ganfit_jax`` is imported before any JAX computation runs (as in
every tool and benchmark here). It changes code generation, not results beyond
float rounding.
"""

from __future__ import annotations

import os

_FLAG = "--xla_cpu_experimental_ynn_fusion_type="
ORIGINAL = os.environ.get("XLA_FLAGS")  # as the user set it (for child processes running other jaxlibs)


def apply() -> bool:
  """Adds the flag to ``XLA_FLAGS``; returns whether it did."""
  if os.environ.get("GANFIT_XLA_DEFAULTS", "1") == "0":
    return False
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_experimental_ynn_fusion_type" in flags:
    return False
  os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}".strip()
  return True
