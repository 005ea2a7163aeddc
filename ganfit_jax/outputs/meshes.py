"""Mesh files: OBJ (+ MTL) and binary glTF (.glb), millimetres (glTF: metres), model frame.

UVs are written clamped to [0, 1], which is how ganfit_jax's renderer samples
them: ICT-FaceKit's head/neck UDIM tile [1, 2] takes the texture's border
colour in the exports exactly as in the renders (a viewer's default REPEAT
wrap would otherwise tile the face texture over the scalp). The glTF sampler
is CLAMP_TO_EDGE for the same reason. Every writer is atomic (temp + rename).
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ganfit_jax.outputs.files import atomic_write
from ganfit_jax.outputs.images import encode_png
from ganfit_jax.types import MorphableModel


def export_uv(model: MorphableModel) -> np.ndarray:
  return np.clip(np.asarray(model.uv, np.float32), 0.0, 1.0)


def write_obj(path: str, verts, model: MorphableModel, material: Optional[str] = None) -> None:
  """OBJ with per-corner UVs; ``material`` names an MTL file written beside it (``mesh.mtl``)."""
  tri = np.asarray(model.triangles) + 1
  uvt = np.asarray(model.uv_triangles) + 1
  lines = ["# ganfit_jax fitted mesh, millimetres, model frame"]
  if material:
    lines += [f"mtllib {material}", "usemtl face"]
  body = [_rows("v %.4f %.4f %.4f", np.asarray(verts, np.float64)),
          _rows("vt %.6f %.6f", export_uv(model).astype(np.float64)),
          _rows("f %d/%d %d/%d %d/%d", np.stack([tri, uvt], -1).reshape(-1, 6))]
  atomic_write(path, "\n".join(lines) + "\n" + "".join(body))


def _rows(fmt: str, a: np.ndarray) -> str:
  """Formats the rows of a 2-D array with one printf format (one ``%`` pass, fast for 10^5 rows)."""
  return ((fmt + "\n") * len(a)) % tuple(a.reshape(-1).tolist())


def write_mtl(path: str, texture_file: str = "texture.png") -> None:
  atomic_write(path, "newmtl face\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nillum 1\n"
                      f"map_Kd {texture_file}\n")


def unweld(model: MorphableModel, verts):
  """Per-(vertex, uv) vertex arrays for formats with one UV per vertex (glTF).

  Returns (positions (N, 3), uvs (N, 2), triangles (F, 3)) with N unique corner pairs.
  """
  tri = np.asarray(model.triangles).reshape(-1)
  uvt = np.asarray(model.uv_triangles).reshape(-1)
  pairs = tri.astype(np.int64) * (uvt.max() + 1) + uvt
  uniq, inv = np.unique(pairs, return_inverse=True)
  vi, ui = uniq // (uvt.max() + 1), uniq % (uvt.max() + 1)
  return (np.asarray(verts, np.float32)[vi], export_uv(model)[ui],
          inv.reshape(-1, 3).astype(np.uint32))


def write_glb(path: str, verts, model: MorphableModel, texture01) -> None:
  """Binary glTF 2.0 with the mesh, per-vertex normals, UVs and the embedded PNG texture."""
  import pygltflib as g
  pos, uv, tri = unweld(model, verts)
  v = pos.astype(np.float64)
  fn = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
  nrm = np.zeros_like(v)
  for k in range(3):
    np.add.at(nrm, tri[:, k], fn)
  nrm = (nrm / np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)).astype(np.float32)
  uv_gl = np.stack([uv[:, 0], 1.0 - uv[:, 1]], -1).astype(np.float32)  # glTF: v down from the image top
  png = encode_png(texture01)
  blobs = [tri.astype(np.uint32).tobytes(), pos.tobytes(), nrm.tobytes(), uv_gl.tobytes(), png]
  offsets, data = [], b""
  for bl in blobs:
    offsets.append(len(data))
    data += bl + b"\0" * (-len(bl) % 4)
  views = [g.BufferView(buffer=0, byteOffset=o, byteLength=len(bl),
                        target=(g.ELEMENT_ARRAY_BUFFER if i == 0 else g.ARRAY_BUFFER) if i < 4 else None)
           for i, (o, bl) in enumerate(zip(offsets, blobs))]
  acc = [g.Accessor(bufferView=0, componentType=g.UNSIGNED_INT, count=tri.size, type=g.SCALAR),
         g.Accessor(bufferView=1, componentType=g.FLOAT, count=len(pos), type=g.VEC3,
                    min=pos.min(0).tolist(), max=pos.max(0).tolist()),
         g.Accessor(bufferView=2, componentType=g.FLOAT, count=len(pos), type=g.VEC3),
         g.Accessor(bufferView=3, componentType=g.FLOAT, count=len(pos), type=g.VEC2)]
  gltf = g.GLTF2(
      asset=g.Asset(generator="ganfit_jax", version="2.0"),
      scene=0, scenes=[g.Scene(nodes=[0])],
      nodes=[g.Node(mesh=0, scale=[0.001, 0.001, 0.001])],  # glTF is in metres; the mesh is in mm
      meshes=[g.Mesh(primitives=[g.Primitive(attributes=g.Attributes(POSITION=1, NORMAL=2, TEXCOORD_0=3),
                                             indices=0, material=0)])],
      materials=[g.Material(pbrMetallicRoughness=g.PbrMetallicRoughness(
          baseColorTexture=g.TextureInfo(index=0), metallicFactor=0.0, roughnessFactor=1.0))],
      textures=[g.Texture(sampler=0, source=0)],
      samplers=[g.Sampler(magFilter=9729, minFilter=9729, wrapS=33071, wrapT=33071)],
      images=[g.Image(bufferView=4, mimeType="image/png")],
      accessors=acc, bufferViews=views, buffers=[g.Buffer(byteLength=len(data))])
  gltf.set_binary_blob(data)
  tmp = path + ".partial"
  gltf.save_binary(tmp)
  os.replace(tmp, path)
