"""Files a fit produces: meshes (OBJ, GLB), pictures (PNG), the report (JSON)."""
