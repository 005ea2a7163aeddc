"""ICT-FaceKit (light) to :class:`MorphableModel`.

Reads an upstream ICT-FaceKit checkout (``FaceXModel/*.obj``) or the trimmed
copy whose blendshapes are ``*.obj.gz`` with ``v`` lines only. Topology and
UVs come from ``generic_neutral_mesh.obj`` alone. Upstream units are
centimetres; the model is stored in millimetres.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from typing import Dict, Iterable, Sequence, Tuple

import numpy as np

from ganfit_jax import morphable
from ganfit_jax.types import EXPRESSION_BLENDSHAPE, MorphableModel

CM_TO_MM = 10.0
NUM_VERTICES = 26719

# Vertex ranges [start, stop) of the upstream README's topology table.
REGIONS: Dict[str, Tuple[Tuple[int, int], ...]] = {
    "face": ((0, 9409),),
    "head_neck": ((9409, 11248),),
    "mouth_socket": ((11248, 13294),),
    "eye_sockets": ((13294, 14062),),
    "teeth": ((14062, 21451),),  # gums, tongue and teeth
    "eyes": ((21451, 24591),),  # eyeballs (sclera + iris), with their own UV layout
    "eye_caps": ((21451, 24591),),  # the visible front of the eyeballs, textured in the face chart (below)
}
DEFAULT_REGIONS = ("face", "head_neck", "eye_caps")
SCLERA = ((21451, 22221), (23021, 23791))  # the outer sphere of each eyeball (left eye, x > 0, first)
EYE_CAP_DEGREES = 55.0  # eyeball triangles within this angle of the gaze axis are kept (see eye_caps)
FACE_AREA = (0, 9409)  # "Full face area" of the README: the face_mask


class ICTFormatError(ValueError):
  pass


def _open_text(path: str):
  return gzip.open(path, "rt") if path.endswith(".gz") else open(path, "r")


def find_mesh(model_dir: str, name: str) -> str:
  for candidate in (f"{name}.obj", f"{name}.obj.gz"):
    p = os.path.join(model_dir, candidate)
    if os.path.exists(p):
      return p
  raise ICTFormatError(f"ICT-FaceKit mesh {name!r} not found in {model_dir} (.obj or .obj.gz)")


def read_vertices(path: str) -> np.ndarray:
  """(V, 3) float64 vertex positions of an OBJ file (``v`` lines only)."""
  with _open_text(path) as f:
    rows = [line[2:] for line in f if line.startswith("v ")]
  try:
    v = np.array(" ".join(rows).split(), dtype=np.float64).reshape(-1, 3)
  except ValueError as e:
    raise ICTFormatError(f"{path}: malformed vertex lines ({e})") from e
  return v


def read_obj(path: str):
  """Vertices (V,3), texcoords (T,2) and polygons as lists of (v, vt) 0-based index lists."""
  verts, uvs, polys = [], [], []
  with _open_text(path) as f:
    for line in f:
      if line.startswith("v "):
        verts.append(line[2:])
      elif line.startswith("vt "):
        uvs.append(" ".join(line[3:].split()[:2]))
      elif line.startswith("f "):
        corners = line.split()[1:]
        vi = [int(c.split("/")[0]) - 1 for c in corners]
        ti = [int(c.split("/")[1]) - 1 if "/" in c and c.split("/")[1] else -1 for c in corners]
        polys.append((vi, ti))
  v = np.array(" ".join(verts).split(), dtype=np.float64).reshape(-1, 3)
  t = np.array(" ".join(uvs).split(), dtype=np.float64).reshape(-1, 2)
  return v, t, polys


def triangulate(polys) -> Tuple[np.ndarray, np.ndarray]:
  """Fans polygons into triangles: a quad (0,1,2,3) becomes (0,1,2), (0,2,3)."""
  tris, uvtris = [], []
  for vi, ti in polys:
    for k in range(1, len(vi) - 1):
      tris.append((vi[0], vi[k], vi[k + 1]))
      uvtris.append((ti[0], ti[k], ti[k + 1]))
  return np.asarray(tris, np.int64), np.asarray(uvtris, np.int64)


def parse_landmarks(readme_path: str) -> np.ndarray:
  """The 68 Multi-PIE landmark indices listed in the upstream README."""
  with open(readme_path, "r", encoding="utf-8") as f:
    text = f.read()
  m = re.search(r"Multi-PIE 68 point facial landmarks indices:\s*\n\s*([0-9,\s]+)", text)
  if not m:
    raise ICTFormatError(f"{readme_path}: no 'Multi-PIE 68 point facial landmarks indices' list")
  idx = np.array([int(x) for x in m.group(1).replace(",", " ").split()], np.int64)
  if idx.shape != (68,):
    raise ICTFormatError(f"{readme_path}: expected 68 landmark indices, found {idx.shape[0]}")
  return idx


def _find_readme(ict_dir: str) -> str:
  for name in ("README.upstream.md", "README.md"):
    p = os.path.join(ict_dir, name)
    if os.path.exists(p):
      return p
  raise ICTFormatError(f"no README.md / README.upstream.md in {ict_dir}: it lists the 68 landmarks")


def region_vertices(regions: Sequence[str]) -> np.ndarray:
  unknown = [r for r in regions if r not in REGIONS]
  if unknown:
    raise ValueError(f"unknown ICT region(s) {unknown}; choose from {sorted(REGIONS)}")
  keep = np.zeros((NUM_VERTICES,), bool)
  for r in regions:
    for a, b in REGIONS[r]:
      keep[a:b] = True
  return keep


def _free_discs(uv: np.ndarray, uvtris: np.ndarray, size: int = 256):
  """Centres and radius (UV units) of the largest empty discs of tile [0, 1]^2, one per half (u < 0.5, u > 0.5),
  mirror-symmetric: where the face chart leaves room for the eyes' own texels."""
  import cv2
  img = np.zeros((size, size), np.uint8)
  pts = np.stack([uv[..., 0] * size, (1.0 - uv[..., 1]) * size], -1)
  for t in pts[uvtris]:
    cv2.fillConvexPoly(img, np.round(t * 16).astype(np.int32), 255, lineType=cv2.LINE_8, shift=4)
  free = np.pad((img == 0).astype(np.uint8), 1)  # the tile's outside counts as used
  dist = cv2.distanceTransform(free, cv2.DIST_L2, 5)[1:-1, 1:-1]
  dist = np.minimum(dist, dist[:, ::-1])  # mirror-symmetric choice
  left = dist[:, :size // 2]
  i, j = np.unravel_index(np.argmax(left), left.shape)
  r = float(left[i, j]) - 1.0
  if r < 3:
    raise ICTFormatError("no room in the UV tile for the eye texels")
  cl = np.array([(j + 0.5) / size, 1.0 - (i + 0.5) / size])
  return [cl, np.array([1.0 - cl[0], cl[1]])], r / size


def eye_caps(neutral_v: np.ndarray, uv: np.ndarray, tris: np.ndarray, uvtris: np.ndarray):
  """The visible front of each eyeball, with UVs in a free disc of the face's UV tile.

  ICT-FaceKit's eyeballs have two nested spheres (sclera and iris layers) and
  a UV layout of their own that overlaps the face's tile, so a face texture
  would paint skin on them and the face chart has no texels for the eyes
  (its eye openings are closed slits). Here each eye keeps the outer (sclera)
  sphere's triangles within ``EYE_CAP_DEGREES`` of its gaze axis (the
  direction from the fitted sphere centre to its front-most vertex), and its
  vertices get UVs by an azimuthal map onto the largest empty disc of the tile
  on that side (:func:`_free_discs`; mirror-symmetric): disc radius at
  ``EYE_CAP_DEGREES``, so the iris and pupil are concentric rings of the disc
  (``ganfit_jax.texture.layout.eye_fill``) and a photo unwrapped onto the mesh
  lands there too.

  Returns (kept eyeball triangles (N, 3) in upstream vertex indices, their
  corner UVs (N, 3, 2)).
  """
  face_tri = (tris < FACE_AREA[1]).all(1)
  centres, radius = _free_discs(uv, uvtris[face_tri])
  # which way u runs with x in the face chart (the layout is mirror-symmetric about u = 0.5)
  cu = uv[uvtris[face_tri]].reshape(-1, 2)[:, 0]
  cx = neutral_v[tris[face_tri]].reshape(-1, 3)[:, 0]
  side = 1.0 if np.corrcoef(cu, cx)[0, 1] > 0 else -1.0
  out_tri, out_uv = [], []
  for a, b in SCLERA:
    x_sign = np.sign(neutral_v[a:b, 0].mean())
    centre_uv = centres[1] if x_sign * side > 0 else centres[0]
    p = neutral_v[a:b]
    # least-squares sphere |p - c|^2 = R^2
    sol = np.linalg.lstsq(np.c_[2 * p, np.ones(len(p))], (p * p).sum(1), rcond=None)[0]
    centre = sol[:3]
    front = p[np.argmax(p[:, 2])]
    axis = (front - centre) / np.linalg.norm(front - centre)
    ex = np.cross([0.0, 1.0, 0.0], axis)
    ex /= np.linalg.norm(ex)
    ey = np.cross(axis, ex)
    d = (neutral_v - centre) / np.linalg.norm(neutral_v - centre, axis=1, keepdims=True)
    theta = np.degrees(np.arccos(np.clip(d @ axis, -1.0, 1.0)))
    mine = (tris >= a).all(1) & (tris < b).all(1)
    cap = mine & (theta[tris] < EYE_CAP_DEGREES).all(1)
    # azimuthal map: the disc's rim is EYE_CAP_DEGREES from the gaze axis, u runs with x as on the face
    k = radius / np.sin(np.radians(EYE_CAP_DEGREES))
    vuv = np.stack([centre_uv[0] + side * k * (d @ ex), centre_uv[1] + k * (d @ ey)], -1)
    out_tri.append(tris[cap])
    out_uv.append(vuv[tris[cap]])
  return np.concatenate(out_tri), np.concatenate(out_uv)


def eye_materials(num_vertices: int) -> np.ndarray:
  """(V,) material code per upstream vertex: skin, or eye for the eyeballs."""
  from ganfit_jax.types import MATERIAL_EYE, MATERIAL_SKIN
  mat = np.full((num_vertices,), MATERIAL_SKIN, np.int32)
  lo, hi = REGIONS["eyes"][0]
  mat[lo:hi] = MATERIAL_EYE
  return mat


def convert(ict_dir: str, regions: Iterable[str] = DEFAULT_REGIONS,
            num_identity: int = 100, progress=None) -> Tuple[MorphableModel, dict]:
  """Converts an ICT-FaceKit directory into a model (millimetres) and a meta dict.

  Args:
    ict_dir: the checkout's root (holding ``FaceXModel/`` and the README).
    regions: names from :data:`REGIONS`; 'face' must be included (landmarks).
      'eye_caps' keeps the visible front of the eyeballs, textured inside the
      face chart (:func:`eye_caps`); 'eyes' keeps whole eyeballs with their
      own UV layout.
    num_identity: how many of the 100 identity components to keep.
    progress: optional callable(done, total) for long reads.
  """
  regions = tuple(regions)
  if "face" not in regions:
    raise ValueError("the 'face' region must be included: the landmarks and face mask live there")
  model_dir = os.path.join(ict_dir, "FaceXModel")
  if not os.path.isdir(model_dir):
    raise ICTFormatError(f"{ict_dir} has no FaceXModel/ folder: pass the root of an ICT-FaceKit "
                         "checkout (github ICT-VGL/ICT-FaceKit) with --ict_dir")
  with open(os.path.join(model_dir, "vertex_indices.json")) as f:
    expression_names = json.load(f)["expressions"]
  landmarks = parse_landmarks(_find_readme(ict_dir))

  neutral_v, uv, polys = read_obj(os.path.join(model_dir, "generic_neutral_mesh.obj"))
  if neutral_v.shape[0] != NUM_VERTICES:
    raise ICTFormatError(f"neutral mesh has {neutral_v.shape[0]} vertices, expected {NUM_VERTICES}")
  tris, uvtris = triangulate(polys)
  if (uvtris < 0).any():
    raise ICTFormatError("neutral mesh has faces without texture coordinates")

  if "eyes" in regions and "eye_caps" in regions:
    raise ValueError("choose 'eyes' (whole eyeballs, own UVs) or 'eye_caps' (visible fronts), not both")
  plain = tuple(r for r in regions if r != "eye_caps")
  keep = region_vertices(plain)
  tri_keep = keep[tris].all(1)
  cap_tris = np.zeros((0, 3), np.int64)
  cap_uv = np.zeros((0, 3, 2))
  if "eye_caps" in regions:
    cap_tris, cap_uv = eye_caps(neutral_v, uv, tris, uvtris)
    keep[np.unique(cap_tris)] = True
  tris, uvtris = tris[tri_keep], uvtris[tri_keep]
  old_to_new = -np.ones((NUM_VERTICES,), np.int64)
  old_to_new[keep] = np.arange(keep.sum())
  used_uv = np.unique(uvtris)
  uv_old_to_new = -np.ones((uv.shape[0],), np.int64)
  uv_old_to_new[used_uv] = np.arange(used_uv.size)
  new_uv = np.concatenate([uv[used_uv], cap_uv.reshape(-1, 2)])
  uvtris = np.concatenate([uv_old_to_new[uvtris], used_uv.size + np.arange(cap_uv.shape[0] * 3).reshape(-1, 3)])
  tris = np.concatenate([tris, cap_tris])

  names = [f"identity{i:03d}" for i in range(num_identity)] + list(expression_names)
  deltas = []
  for i, name in enumerate(names):
    v = read_vertices(find_mesh(model_dir, name))
    if v.shape != neutral_v.shape:
      raise ICTFormatError(f"{name}: {v.shape[0]} vertices, expected {neutral_v.shape[0]}")
    deltas.append(((v - neutral_v)[keep] * CM_TO_MM).astype(np.float32))
    if progress:
      progress(i + 1, len(names))
  deltas = np.stack(deltas)
  face_mask = np.zeros((NUM_VERTICES,), bool)
  face_mask[FACE_AREA[0]:FACE_AREA[1]] = True

  model = morphable.from_arrays(
      mean=(neutral_v[keep] * CM_TO_MM).astype(np.float32),
      id_basis=deltas[:num_identity], exp_basis=deltas[num_identity:],
      triangles=old_to_new[tris], landmarks=old_to_new[landmarks],
      uv=new_uv, uv_triangles=uvtris, face_mask=face_mask[keep], material=eye_materials(NUM_VERTICES)[keep],
      expression_names=expression_names, expression_kind=EXPRESSION_BLENDSHAPE, name="ict-facekit")
  if (np.asarray(model.landmarks) < 0).any():
    raise ICTFormatError("a landmark vertex fell outside the selected regions")
  meta = dict(source="ICT-FaceKit light (github ICT-VGL/ICT-FaceKit, MIT)", units="mm",
              regions=list(regions), num_identity=num_identity,
              upstream_vertex_index=np.flatnonzero(keep).tolist(),
              upstream_landmarks=landmarks.tolist())
  return model, meta
