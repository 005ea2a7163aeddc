"""Mesh files: OBJ (+ MTL) and PLY in millimetres, binary glTF (.glb) in metres with the expression shapes
as morph targets; model frame.

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

from ganfit_jax.face.image_io import to_uint8
from ganfit_jax.geometry import vertex_normals
from ganfit_jax.files import atomic_path, atomic_write
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
  """Per-(vertex, uv) vertex arrays for formats with one UV per vertex (glTF, PLY).

  Returns (positions (N, 3), uvs (N, 2), triangles (F, 3)) with N unique corner pairs.
  """
  vi, ui, tri = _unweld_pairs(model)
  return np.asarray(verts, np.float32)[vi], export_uv(model)[ui], tri


def _unweld_pairs(model: MorphableModel):
  """(welded vertex, uv index) of each unwelded vertex, and the unwelded triangles."""
  tri = np.asarray(model.triangles).reshape(-1)
  uvt = np.asarray(model.uv_triangles).reshape(-1)
  n = int(uvt.max()) + 1
  uniq, inv = np.unique(tri.astype(np.int64) * n + uvt, return_inverse=True)
  return uniq // n, uniq % n, inv.reshape(-1, 3).astype(np.uint32)


# Morph-target deltas below these are written as zero (sparse accessors): 10 micrometres, 0.001 in normals.
SPARSE_POSITION_MM = 0.01
SPARSE_NORMAL = 1e-3


def write_glb(path: str, model: MorphableModel, base_verts, texture_png: bytes, expression=None,
              target_names=None, animation: Optional[dict] = None) -> dict:
  """Binary glTF 2.0: the mesh in metres, normals, UVs, the embedded PNG texture and, when ``expression``
  is given, the model's expression shapes as morph targets.

  With morph targets the base mesh is ``base_verts`` (the fitted identity, neutral expression), each target
  is one expression shape (position and normal deltas, sparse accessors: deltas under
  ``SPARSE_POSITION_MM`` / ``SPARSE_NORMAL`` are zero) and the mesh's default weights are ``expression``, so a
  viewer shows the fitted face and its sliders animate it. ``target_names`` go to ``mesh.extras.targetNames``
  (read by Blender's importer as shape-key names and by three.js as ``morphTargetDictionary``).

  ``animation`` (needs ``expression``): a dict with ``times`` (T,) seconds, increasing; ``weights`` (T, K)
  morph weights, K = len(expression); optional ``rotations`` (T, 3, 3) the head's rotation (model -> viewer
  frame, glTF's y up, z towards the viewer); optional ``name`` and ``extras`` (JSON, e.g. flagged gaps).
  It becomes one glTF animation (linear samplers on the face node's ``weights`` and ``rotation``), which
  three.js's AnimationMixer and Blender's importer play.

  Returns a summary: bytes, vertices, morph targets, sparse fraction (and animation keyframes, seconds).
  """
  import pygltflib as g
  base = np.asarray(base_verts, np.float64)
  tri_w = np.asarray(model.triangles)
  vi = _unweld_pairs(model)[0]
  pos, uv, tri = unweld(model, base)
  pos_m = (pos.astype(np.float64) * 1e-3).astype(np.float32)  # glTF: metres
  nrm0 = vertex_normals(base, tri_w)
  uv_gl = np.stack([uv[:, 0], 1.0 - uv[:, 1]], -1).astype(np.float32)  # glTF: v down from the image top
  buf = _Buffer()
  acc = []

  def accessor(view, count, kind, ctype=g.FLOAT, minmax=None, sparse=None):
    a = g.Accessor(bufferView=view, byteOffset=None if view is None else 0, componentType=ctype, count=count,
                   type=kind, sparse=sparse)
    if minmax is not None:
      a.min, a.max = [float(x) for x in minmax[0]], [float(x) for x in minmax[1]]
    acc.append(a)
    return len(acc) - 1

  i_idx = accessor(buf.add(tri.astype(np.uint32), g.ELEMENT_ARRAY_BUFFER), tri.size, g.SCALAR, g.UNSIGNED_INT)
  i_pos = accessor(buf.add(pos_m, g.ARRAY_BUFFER), len(pos_m), g.VEC3, minmax=(pos_m.min(0), pos_m.max(0)))
  i_nrm = accessor(buf.add(nrm0[vi].astype(np.float32), g.ARRAY_BUFFER), len(pos_m), g.VEC3)
  i_uv = accessor(buf.add(uv_gl, g.ARRAY_BUFFER), len(pos_m), g.VEC2)
  targets, kept = [], []
  weights = None
  if expression is not None:
    expression = np.asarray(expression, np.float64).reshape(-1)
    if len(expression) > model.num_expression or not np.all(np.isfinite(expression)):
      raise ValueError(f"expression must hold at most {model.num_expression} finite weights, got "
                       f"{len(expression)} (finite: {bool(np.all(np.isfinite(expression)))})")
    if target_names is not None and len(target_names) < len(expression):
      raise ValueError(f"{len(target_names)} target names for {len(expression)} morph targets")
    basis = np.asarray(model.exp_basis, np.float64)[: len(expression)]
    for k in range(len(expression)):
      dpos = basis[k][vi]
      dnrm = (vertex_normals(base + basis[k], tri_w) - nrm0)[vi]
      keep = np.nonzero((np.abs(dpos).max(1) > SPARSE_POSITION_MM) | (np.abs(dnrm).max(1) > SPARSE_NORMAL))[0]
      kept.append(len(keep))
      ctype = g.UNSIGNED_SHORT if len(pos_m) <= 65535 else g.UNSIGNED_INT
      iv = buf.add(keep.astype(np.uint16 if ctype == g.UNSIGNED_SHORT else np.uint32))
      dense = np.zeros((len(pos_m), 3), np.float32)
      dense[keep] = (dpos[keep] * 1e-3).astype(np.float32)

      def sparse_accessor(values, minmax=None):
        sp = g.Sparse(count=len(keep), indices=g.AccessorSparseIndices(bufferView=iv, componentType=ctype),
                      values=g.AccessorSparseValues(bufferView=buf.add(values.astype(np.float32))))
        return accessor(None, len(pos_m), g.VEC3, minmax=minmax, sparse=sp)

      t_pos = sparse_accessor(dense[keep], (dense.min(0), dense.max(0)))
      t_nrm = sparse_accessor(dnrm[keep])
      targets.append(g.Attributes(POSITION=t_pos, NORMAL=t_nrm))
    weights = [float(w) for w in expression]
  animations = []
  if animation is not None:
    if expression is None:
      raise ValueError("an animation needs the morph targets: give expression too")
    animations = [_animation(animation, len(targets), buf, accessor)]
  i_img = buf.add(texture_png)
  prim = g.Primitive(attributes=g.Attributes(POSITION=i_pos, NORMAL=i_nrm, TEXCOORD_0=i_uv), indices=i_idx,
                     material=0, targets=targets or None)
  mesh = g.Mesh(name=model.name, primitives=[prim], weights=weights,
                extras={"targetNames": list(target_names)} if targets and target_names is not None else {})
  gltf = g.GLTF2(
      asset=g.Asset(generator="ganfit_jax", version="2.0"),
      scene=0, scenes=[g.Scene(nodes=[0])],
      nodes=[g.Node(mesh=0, name="face")],
      meshes=[mesh],
      materials=[g.Material(name="face", pbrMetallicRoughness=g.PbrMetallicRoughness(
          baseColorTexture=g.TextureInfo(index=0), metallicFactor=0.0, roughnessFactor=1.0))],
      textures=[g.Texture(sampler=0, source=0)],
      samplers=[g.Sampler(magFilter=9729, minFilter=9729, wrapS=33071, wrapT=33071)],
      images=[g.Image(bufferView=i_img, mimeType="image/png")],
      accessors=acc, bufferViews=buf.views, buffers=[g.Buffer(byteLength=len(buf.data))],
      animations=animations)
  gltf.set_binary_blob(bytes(buf.data))
  with atomic_path(path) as tmp:
    gltf.save_binary(tmp)
  info = dict(bytes=os.path.getsize(path), vertices=int(len(pos_m)), morph_targets=len(targets),
              sparse_fraction=round(float(np.mean(kept) / len(pos_m)), 4) if kept else None)
  if animation is not None:
    t = np.asarray(animation["times"])
    info.update(animation_keyframes=int(len(t)), animation_seconds=round(float(t[-1] - t[0]), 4))
  return info


def _animation(anim: dict, num_targets: int, buf, accessor):
  """The glTF animation of :func:`write_glb`'s ``animation`` (accessors appended through ``accessor``)."""
  import pygltflib as g
  from scipy.spatial.transform import Rotation
  t = np.asarray(anim["times"], np.float64).reshape(-1)
  w = np.asarray(anim["weights"], np.float64)
  if len(t) < 1 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
    raise ValueError(f"animation times must be finite and strictly increasing, got {len(t)} times")
  if w.shape != (len(t), num_targets) or not np.all(np.isfinite(w)):
    raise ValueError(f"animation weights must be finite, shape ({len(t)}, {num_targets}), got {w.shape}")
  t32 = t.astype(np.float32)
  i_t = accessor(buf.add(t32), len(t), g.SCALAR, minmax=(t32[None, :1].min(1), t32[None, -1:].max(1)))
  samplers = [g.AnimationSampler(input=i_t, output=accessor(buf.add(w.astype(np.float32)), w.size, g.SCALAR),
                                 interpolation="LINEAR")]
  channels = [g.AnimationChannel(sampler=0, target=g.AnimationChannelTarget(node=0, path="weights"))]
  if anim.get("rotations") is not None:
    r = np.asarray(anim["rotations"], np.float64)
    if r.shape != (len(t), 3, 3) or not np.all(np.isfinite(r)):
      raise ValueError(f"animation rotations must be finite, shape ({len(t)}, 3, 3), got {r.shape}")
    q = Rotation.from_matrix(r).as_quat()  # (x, y, z, w): glTF's order
    flip = np.cumprod(np.where(np.sum(q[1:] * q[:-1], 1) < 0, -1.0, 1.0))  # one hemisphere: no long way round
    q[1:] *= flip[:, None]
    samplers.append(g.AnimationSampler(input=i_t, output=accessor(buf.add(q.astype(np.float32)), len(q), g.VEC4),
                                       interpolation="LINEAR"))
    channels.append(g.AnimationChannel(sampler=1, target=g.AnimationChannelTarget(node=0, path="rotation")))
  return g.Animation(name=anim.get("name", "clip"), samplers=samplers, channels=channels,
                     extras=anim.get("extras") or {})


class _Buffer:
  """The GLB's binary chunk, one bufferView per array (4-byte aligned)."""

  def __init__(self):
    import pygltflib as g
    self._g = g
    self.data = bytearray()
    self.views = []

  def add(self, array_or_bytes, target=None) -> int:
    b = array_or_bytes if isinstance(array_or_bytes, (bytes, bytearray)) else np.ascontiguousarray(
        array_or_bytes).tobytes()
    self.data += b"\0" * (-len(self.data) % 4)
    self.views.append(self._g.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(b), target=target))
    self.data += b
    return len(self.views) - 1


def vertex_colours(model: MorphableModel, texture01) -> tuple:
  """Per-:func:`unweld`-vertex RGB (uint8) sampled bilinearly from the texture at the vertex's UV."""
  import cv2
  uv = export_uv(model)[_unweld_pairs(model)[1]]
  tex = np.asarray(texture01, np.float32)
  h, w = tex.shape[:2]
  mx = (uv[:, 0] * w - 0.5).astype(np.float32)[None]
  my = ((1.0 - uv[:, 1]) * h - 0.5).astype(np.float32)[None]
  rgb = cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
  return to_uint8(rgb), uv


def write_ply(path: str, verts, model: MorphableModel, texture01) -> int:
  """Binary PLY (trimesh) of the mesh in millimetres with vertex colours sampled from the texture and
  per-vertex UVs (``s``, ``t``: MeshLab's names), one vertex per (vertex, UV) pair as in the GLB; returns the
  vertex count."""
  import trimesh
  pos, _, tri = unweld(model, verts)
  rgb, uv = vertex_colours(model, texture01)
  mesh = trimesh.Trimesh(pos.astype(np.float64), tri.astype(np.int64), process=False,
                         vertex_colors=np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], 1))
  mesh.vertex_attributes["s"] = uv[:, 0].astype(np.float32)
  mesh.vertex_attributes["t"] = uv[:, 1].astype(np.float32)
  atomic_write(path, mesh.export(file_type="ply", encoding="binary"), "wb")
  return int(len(pos))
