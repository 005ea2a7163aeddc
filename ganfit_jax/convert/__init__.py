"""Offline converters: upstream files (ONNX, PyTorch, model formats) to the project's own files.

* :mod:`ganfit_jax.convert.build`: the builders of every cached asset and
  :func:`~ganfit_jax.convert.build.fetch` (``python tools/fetch_assets.py``).
* :mod:`ganfit_jax.convert.identity_nets`: ONNX / PyTorch identity networks to
  Flax variables (SFace, ArcFace IResNet).

Nothing at fitting time imports this package.
"""
