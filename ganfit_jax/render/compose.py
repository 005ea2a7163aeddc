"""Composite the render over a background with the coverage mask."""

from __future__ import annotations


def composite(color, mask, background):
  """color * mask + background * (1 - mask); mask (H, W) bool or float in [0, 1]."""
  m = mask.astype(color.dtype)[..., None]
  return color * m + background * (1.0 - m)

