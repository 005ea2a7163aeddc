"""Builds the API reference of ganfit_jax (every module, from its docstrings) as HTML with pdoc.

  python tools/build_docs.py                 # -> docs/api/index.html (open it in a browser; works offline)
  python tools/build_docs.py --out=/tmp/api

Docstrings are read in Google style (Args:, Returns:). Any warning pdoc raises (a module that does not
import, a broken reference) is an error: exit 1 with the warning; .ci/run builds it this way.
"""

import os
import pathlib
import pkgutil
import sys
import warnings

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_string("out", os.path.join(ROOT, "docs", "api"), "Output folder (replaced).")
FLAGS = flags.FLAGS


def modules() -> list:
  """Every module of the package by name (subpackages walked), in a stable order."""
  import ganfit_jax
  return ["ganfit_jax"] + sorted(m.name for m in pkgutil.walk_packages(ganfit_jax.__path__, "ganfit_jax."))


# pdoc adds a package's submodules itself where its __all__ allows: a module named again is a duplicate, not a
# problem of the reference
_DUPLICATE = "but a module with this name has already been added"


def main(argv):
  del argv
  import shutil

  import pdoc
  import pdoc.render
  names = modules()
  if os.path.isdir(FLAGS.out):
    shutil.rmtree(FLAGS.out)
  pdoc.render.configure(docformat="google", show_source=False)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    pdoc.pdoc(*names, output_directory=pathlib.Path(FLAGS.out))
  caught = [w for w in caught if _DUPLICATE not in str(w.message)]
  if caught:
    for w in caught:
      print(f"error: {w.message}", file=sys.stderr)
    print(f"error: the API reference has {len(caught)} problem(s) (above)", file=sys.stderr)
    return 1
  written = sum(1 for _, _, fs in os.walk(FLAGS.out) for f in fs if f.endswith(".html")) - 1  # less index.html
  print(f"wrote {FLAGS.out}/index.html ({written} module pages; the package has {len(names)} modules)")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
