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
    "eyes": ((21451, 24591),),  # eyeballs (sclera + iris)
}
DEFAULT_REGIONS = ("face", "head_neck")
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


def convert(ict_dir: str, regions: Iterable[str] = DEFAULT_REGIONS,
            num_identity: int = 100, progress=None) -> Tuple[MorphableModel, dict]:
  """Converts an ICT-FaceKit directory into a model (millimetres) and a meta dict.

  Args:
    ict_dir: the checkout's root (holding ``FaceXModel/`` and the README).
    regions: names from :data:`REGIONS`; 'face' must be included (landmarks).
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

  keep = region_vertices(regions)
  tri_keep = keep[tris].all(1)
  tris, uvtris = tris[tri_keep], uvtris[tri_keep]
  old_to_new = -np.ones((NUM_VERTICES,), np.int64)
  old_to_new[keep] = np.arange(keep.sum())
  used_uv = np.unique(uvtris)
  uv_old_to_new = -np.ones((uv.shape[0],), np.int64)
  uv_old_to_new[used_uv] = np.arange(used_uv.size)

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
      uv=uv[used_uv], uv_triangles=uv_old_to_new[uvtris], face_mask=face_mask[keep],
      expression_names=expression_names, expression_kind=EXPRESSION_BLENDSHAPE, name="ict-facekit")
  if (np.asarray(model.landmarks) < 0).any():
    raise ICTFormatError("a landmark vertex fell outside the selected regions")
  meta = dict(source="ICT-FaceKit light (github ICT-VGL/ICT-FaceKit, MIT)", units="mm",
              regions=list(regions), num_identity=num_identity,
              upstream_vertex_index=np.flatnonzero(keep).tolist() if regions != DEFAULT_REGIONS else None,
              upstream_landmarks=landmarks.tolist())
  return model, meta
