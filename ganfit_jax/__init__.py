"""ganfit_jax: GANFit, Fast-GANFit and GANFit++ in JAX (see README.md and WORKSPACE.md)."""

from ganfit_jax import _xla_defaults

_xla_defaults.apply()
