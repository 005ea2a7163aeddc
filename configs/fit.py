"""The fitting presets of tools/fit.py (``--config=configs/fit.py:fast`` (default), ``:paper`` or ``:tiny``).

  python tools/fit.py --image=examples/astronaut.jpg --out=out/astronaut
  python tools/fit.py --image=x.jpg --out=o --config=configs/fit.py:paper --config.stages.full.weights.content=20

The presets live in the package, ``ganfit_jax/configs/fit.py`` (every field documented there); this file is
the command line's entry to them (ml_collections' ``--config`` flag takes a file).
"""

from ganfit_jax.configs.fit import get_config  # noqa: F401
