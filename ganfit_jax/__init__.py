"""ganfit_jax: GANFit, Fast-GANFit and GANFit++ in JAX (see README.md and WORKSPACE.md).

Importing the package changes no process state and imports nothing heavy: the names below load their module
on first use. :func:`ganfit_jax.runtime.configure` applies this project's XLA CPU flag and the persistent
compilation cache (the tools call it first thing). The stages of one fit, in data-flow order:

  face.prepare -> objective.prepare_targets -> fitting.fit (params.Variables ->
  params.to_face -> morphable / camera / render / nets -> objective.loss_fn) ->
  types.FaceParams -> outputs.writer (outputs.render: one compiled render) -> files

``reconstruct.Reconstructor`` composes them; ``cli`` is the command line; ``jobs`` runs every input path;
``video.clip.fit_clip`` fits a clip; ``evaluation.shape`` scores meshes against scans.

The public names (``ganfit_jax.NAME``; each has its own docstring with shapes and units)::

  scene = ganfit_jax.load_scene("ict", texture="gan", identity="sface")   # model + texture + identity net
  v = ganfit_jax.vertices(scene.model, shape, expression)                   # (V, 3) mm
  out = ganfit_jax.render_model(scene.model, shape, expression, tex, cam, light, height=224, width=224)
  res = ganfit_jax.fit(scene, targets, schedule, key=jax.random.key(0))     # fitting.FitResult
"""

import importlib

# name -> (module, attribute); attribute None: the module itself
_PUBLIC = {
    # modules
    "camera": ("ganfit_jax.camera", None), "lighting": ("ganfit_jax.lighting", None),
    "morphable": ("ganfit_jax.morphable", None), "objective": ("ganfit_jax.objective", None),
    "fitting": ("ganfit_jax.fitting", None), "params": ("ganfit_jax.params", None),
    "regressor": ("ganfit_jax.regressor", None), "reconstruct": ("ganfit_jax.reconstruct", None),
    "runtime": ("ganfit_jax.runtime", None), "types": ("ganfit_jax.types", None),
    # the morphable model
    "MorphableModel": ("ganfit_jax.types", "MorphableModel"), "FaceParams": ("ganfit_jax.types", "FaceParams"),
    "load_model": ("ganfit_jax.morphable", "load"), "vertices": ("ganfit_jax.morphable", "vertices"),
    "landmarks": ("ganfit_jax.morphable", "landmarks"),
    # camera, light and rendering
    "orbit_camera": ("ganfit_jax.camera", "orbit_camera"), "make_camera": ("ganfit_jax.camera", "make_camera"),
    "default_light": ("ganfit_jax.lighting", "default_light"),
    # (the mesh renderer itself is ganfit_jax.render.pipeline.render: ``render`` is the subpackage's name)
    "render_model": ("ganfit_jax.render.pipeline", "render_model"),
    # texture models, identity networks, the scene
    "load_texture_model": ("ganfit_jax.texture.models", "load"), "Scene": ("ganfit_jax.scene", "Scene"),
    "load_scene": ("ganfit_jax.scene", "load"), "make_scene": ("ganfit_jax.scene", "make"),
    # objective and fitting
    "LossWeights": ("ganfit_jax.objective", "LossWeights"), "loss_fn": ("ganfit_jax.objective", "loss_fn"),
    "prepare_targets": ("ganfit_jax.objective", "prepare_targets"),
    "fit": ("ganfit_jax.fitting", "fit"), "Schedule": ("ganfit_jax.fitting", "Schedule"),
    "Stage": ("ganfit_jax.fitting", "Stage"),
    # Fast-GANFit / GANFit++ and the whole pipeline
    "regress": ("ganfit_jax.regressor", "regress"), "load_regressor": ("ganfit_jax.regressor", "load_for"),
    "Reconstructor": ("ganfit_jax.reconstruct", "Reconstructor"),
    # evaluation
    "evaluate_shape": ("ganfit_jax.evaluation.shape", "evaluate"), "Mesh": ("ganfit_jax.evaluation.shape", "Mesh"),
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
  if name == "__version__":  # the one place is pyproject.toml; the installed metadata carries it
    from importlib import metadata
    try:
      return metadata.version("ganfit_jax")
    except metadata.PackageNotFoundError:  # a source tree that was never installed (pip install -e .)
      return "unknown"
  if name not in _PUBLIC:
    raise AttributeError(f"module 'ganfit_jax' has no attribute {name!r}")
  module, attr = _PUBLIC[name]
  mod = importlib.import_module(module)
  value = mod if attr is None else getattr(mod, attr)
  globals()[name] = value  # the next lookup is a plain attribute
  return value


def __dir__():
  return sorted(set(globals()) | set(_PUBLIC))
