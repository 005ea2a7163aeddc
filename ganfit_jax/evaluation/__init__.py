"""Evaluation: the numbers a face-reconstruction library is judged by, as library functions.

* :mod:`~ganfit_jax.evaluation.shape`: scan-to-mesh error (NoW-, MICC- and region-style protocols).
* :mod:`~ganfit_jax.evaluation.landmarks`: NME under the usual normalisations; landmark file readers.
* :mod:`~ganfit_jax.evaluation.identity`: verification accuracy, ROC AUC, the independent dlib judge.
* :mod:`~ganfit_jax.evaluation.texture`: Frechet distance, KID; skin colour error (CIELAB delta E).
* :mod:`~ganfit_jax.evaluation.peers`: 3DDFA_V2's regressor, to print beside ganfit_jax.

``python tools/evaluate.py`` runs them on files.
"""
