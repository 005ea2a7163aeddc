"""Differentiable rendering: rasterize -> barycentrics -> interpolate -> texture -> shade -> composite."""

from ganfit_jax.render.compose import composite
from ganfit_jax.render.interp import interpolate
from ganfit_jax.render.raster import Framebuffer, barycentrics, pixel_depth, rasterize
from ganfit_jax.render.pipeline import RenderOutput, render, render_model
from ganfit_jax.lighting import default_light, make_light
from ganfit_jax.render.shading import phong
from ganfit_jax.render.texture import sample as sample_texture

__all__ = ["composite", "interpolate", "Framebuffer", "barycentrics", "pixel_depth", "rasterize",
           "RenderOutput", "render", "render_model", "default_light", "make_light", "phong",
           "sample_texture"]
