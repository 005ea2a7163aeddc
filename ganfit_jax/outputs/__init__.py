"""Files a fit produces: meshes (OBJ, GLB with morph targets, PLY), ARKit weights, pictures (PNG/JPEG),
the report (JSON) and its page (HTML with a 3D viewer)."""
