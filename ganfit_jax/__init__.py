"""ganfit_jax: GANFit, Fast-GANFit and GANFit++ in JAX (see README.md and WORKSPACE.md).

Importing the package changes no process state; :func:`ganfit_jax.runtime.configure`
applies this project's XLA CPU flag and the persistent compilation cache (the
tools call it first thing). The stages of one fit, in data-flow order:

  face.prepare -> objective.prepare_targets -> fitting.fit (params.Variables ->
  params.to_face -> morphable / camera / render / nets -> objective.loss_fn) ->
  types.FaceParams -> outputs.writer (outputs.render: one compiled render) -> files

``reconstruct.Reconstructor`` composes them; ``cli`` is the command line; ``jobs`` runs every input path.
"""

__all__ = ["runtime"]
