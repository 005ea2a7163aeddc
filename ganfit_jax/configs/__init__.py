"""Presets that ship with the package (``ganfit_jax.configs.fit.get_config('fast' | 'paper' | 'tiny')``).

``configs/fit.py`` in a checkout is the command line's thin entry to the same presets
(``--config=configs/fit.py:paper``).
"""
