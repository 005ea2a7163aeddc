"""The paper's pinhole camera: position (3), look-at (3), up (3), focal length (1).

Conventions:
  * World = model frame, millimetres, y up.
  * Camera frame is OpenGL-like: the camera looks down its -z axis; ``depth``
    is the distance along the viewing direction (positive in front).
  * Focal length ``f`` is in units of the image height: ``f_pixels = f * H``
    (so one camera vector serves every resolution; f = 4 is a ~14 degree
    vertical field of view).
  * Pixel coordinates are continuous, x right and y down, with the centre of
    pixel (row i, column j) at (j + 0.5, i + 0.5); the principal point is the
    image centre.
"""

from __future__ import annotations

import jax.numpy as jnp

from ganfit_jax import numerics as gmath

DEFAULT_POSITION = (0.0, 0.0, 1000.0)
DEFAULT_LOOK_AT = (0.0, -10.0, 40.0)
DEFAULT_UP = (0.0, 1.0, 0.0)
DEFAULT_FOCAL = 4.0


def make_camera(position=DEFAULT_POSITION, look_at=DEFAULT_LOOK_AT, up=DEFAULT_UP, focal=DEFAULT_FOCAL):
  """(10,) camera vector from its parts."""
  return jnp.concatenate([jnp.asarray(position, jnp.float32), jnp.asarray(look_at, jnp.float32),
                          jnp.asarray(up, jnp.float32), jnp.reshape(jnp.asarray(focal, jnp.float32), (1,))])


def default_camera():
  """A frontal camera 1 m from the face, framing a head of ~240 mm height."""
  return make_camera()


def orbit_camera(yaw=0.0, pitch=0.0, distance=960.0, look_at=DEFAULT_LOOK_AT, focal=DEFAULT_FOCAL):
  """Camera on a sphere around ``look_at`` (mm), looking at it, y up; ``yaw`` / ``pitch`` in RADIANS,
  ``distance`` in mm, ``focal`` in units of the image height (f_pixels = focal * H). Signs: yaw > 0 moves the
  camera to the subject's left (the model's +x), so the face appears turned towards the image's left and
  its left cheek shows; pitch > 0 moves the camera up (the face seen from above). Returns the (10,) camera.

  Example::

    cam = orbit_camera(yaw=jnp.deg2rad(30.0), pitch=jnp.deg2rad(-5.0))   # a three-quarter view, slightly below
  """
  at = jnp.asarray(look_at, jnp.float32)
  d = jnp.stack([jnp.sin(yaw) * jnp.cos(pitch), jnp.sin(pitch), jnp.cos(yaw) * jnp.cos(pitch)])
  return make_camera(at + distance * d, at, DEFAULT_UP, focal)


def split(camera):
  """(position, look_at, up, focal) of a (10,) camera vector."""
  if camera.shape != (10,):
    raise ValueError(f"camera must be (10,) [position, look_at, up, focal], got {camera.shape}; "
                     "vmap over batches")
  return camera[0:3], camera[3:6], camera[6:9], camera[9]


def view_matrix(camera):
  """(3, 3) rotation R and (3,) eye such that p_cam = R @ (p - eye)."""
  eye, at, up, _ = split(camera)
  z = gmath.safe_normalize(eye - at)
  x = gmath.safe_normalize(jnp.cross(up, z))
  y = jnp.cross(z, x)
  return jnp.stack([x, y, z]), eye


def world_to_camera(camera, points):
  """(N, 3) points in the camera frame (looking down -z)."""
  r, eye = view_matrix(camera)
  return (points - eye[None, :]) @ r.T


def project(camera, points, height: int, width: int, near: float = 1.0):
  """Projects world points to pixels.

  Args:
    camera: (10,) camera vector.
    points: (N, 3) world points in millimetres.
    height, width: image size in pixels.
    near: depths below this are clamped (points behind the camera stay finite).

  Returns:
    xy: (N, 2) pixel coordinates (x right, y down), depth: (N,) depth in mm.
  """
  _, _, _, f = split(camera)
  if points.ndim != 2 or points.shape[1] != 3:
    raise ValueError(f"points must be (N, 3), got {points.shape}; vmap over batches")
  pc = world_to_camera(camera, points)
  depth = -pc[:, 2]
  d = jnp.maximum(depth, near)
  fp = f * height
  x = width / 2.0 + fp * pc[:, 0] / d
  y = height / 2.0 - fp * pc[:, 1] / d
  return jnp.stack([x, y], -1), depth
