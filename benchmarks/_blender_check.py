"""Imports a .glb with Blender's own glTF importer (the PyPI ``bpy`` module) and prints what Blender sees as
JSON: meshes, vertices, shape keys and their values, how far jawOpen moves a vertex, materials, size in metres.

  python -m venv /tmp/bpyenv && /tmp/bpyenv/bin/pip install bpy==4.2.0     # Python 3.11; ~520 MB wheel
  /tmp/bpyenv/bin/python benchmarks/_blender_check.py out/astronaut/mesh.glb
benchmarks/exports.py runs it with --blender_python. Not a test: the wheel is too large for CI.
"""

import json
import sys

import bpy
import numpy as np

path = sys.argv[1]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=path)
meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
o = meshes[0]
keys = o.data.shape_keys.key_blocks if o.data.shape_keys else []
names = [k.name for k in keys]
vals = {k.name: round(k.value, 4) for k in keys}
basis = np.array([v.co[:] for v in keys[0].data]) if keys else None
ja = keys["jawOpen"] if "jawOpen" in keys else None
jaw = np.array([v.co[:] for v in ja.data]) if ja else None
print(json.dumps(dict(objects=len(meshes), vertices=len(o.data.vertices), shape_keys=len(names), first=names[:4],
  jawOpen_value=vals.get("jawOpen"), jaw_max_move_m=float(np.abs(jaw - basis).max()) if jaw is not None else None,
  materials=[m.name for m in o.data.materials], image=[i.name for i in bpy.data.images], dims=list(o.dimensions))))
