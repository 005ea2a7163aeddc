"""The report page of a fit (``index.html``) and of a dataset run (a listing of every photo).

The page shows the pictures of the fit, the key numbers of ``report.json`` and an interactive 3D view of
``mesh.glb`` with a slider per expression shape. It works offline from the folder: the viewer's
JavaScript (three.js from the npm registry, asset ``three``, fetched by setup with ``npm pack`` and
checksum-verified; ``ganfit_jax/outputs/viewer/ganfit_viewer.js``) is copied into ``viewer/`` beside it.
Browsers load ES modules and ``mesh.glb`` only over http, so the 3D view needs the folder served
(``python tools/view.py OUT_DIR``); opened as a file, or with the viewer asset missing, the page says so
and still shows the pictures.
"""

from __future__ import annotations

import html
import json
import os
import zipfile
from typing import Dict, List, Optional, Sequence

from ganfit_jax.files import atomic_write

VIEWER_DIR = "viewer"
_OWN_JS = os.path.join(os.path.dirname(__file__), "viewer", "ganfit_viewer.js")
# Sliders shown first (the rest sit under "all shapes"): ARKit's most visible shapes, by their GLB names.
MAIN_TARGETS = ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
                "mouthPucker", "mouthFunnel", "eyeBlinkLeft", "eyeBlinkRight", "eyeWideLeft", "eyeWideRight",
                "browInnerUp_L", "browInnerUp_R", "browInnerUp", "browDownLeft", "browDownRight", "cheekPuff_L",
                "cheekPuff_R", "cheekPuff")

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2em;background:#fafafa;color:#222}
h1{font-size:1.3em;margin:0 0 .2em} .sub{color:#666;margin:0 0 1em;word-break:break-all}
.top{display:flex;flex-wrap:wrap;gap:1.2em;align-items:flex-start}
#viewer{width:480px;height:480px;background:#808080;border:1px solid #ccc}
#viewer-status{font-size:.85em;color:#555;max-width:480px;margin:.3em 0}
.controls{min-width:320px} .slider{display:grid;grid-template-columns:11em 1fr 3em;gap:.4em;font-size:.85em;
align-items:center} table{border-collapse:collapse;font-size:.9em}
td{padding:.15em .6em;border-bottom:1px solid #e4e4e4}
td:first-child{color:#555} .pics{display:flex;flex-wrap:wrap;gap:1em;margin-top:1.2em}
figure{margin:0} figure img{max-width:360px;max-height:360px;border:1px solid #ccc;background:#fff}
figcaption{font-size:.8em;color:#555} .wide img{max-width:900px;max-height:none}
.note{background:#fff6d6;border:1px solid #e8d48a;padding:.4em .7em;font-size:.9em;max-width:480px}
"""


def viewer_available() -> bool:
  """Whether the three.js asset is in the cache (``python tools/fetch_assets.py --assets=three``)."""
  from ganfit_jax import assets
  try:
    assets.path("three")
    return True
  except assets.AssetError:
    return False


def copy_viewer(out_dir: str) -> bool:
  """Copies the viewer's JavaScript into ``out_dir/viewer``; False when the three.js asset is missing."""
  from ganfit_jax import assets
  try:
    zip_path = assets.path("three")
  except assets.AssetError:
    return False
  dest = os.path.join(out_dir, VIEWER_DIR)
  with zipfile.ZipFile(zip_path) as z:
    for name in z.namelist():
      if name.endswith("/"):
        continue
      target = os.path.join(dest, *name.split("/"))
      os.makedirs(os.path.dirname(target), exist_ok=True)
      with open(target, "wb") as f:
        f.write(z.read(name))
  with open(_OWN_JS, "rb") as f:
    atomic_write(os.path.join(dest, "ganfit_viewer.js"), f.read(), "wb")
  return True


def _numbers(report: dict) -> List[tuple]:
  final = report.get("final_loss_terms", {})
  timings = report.get("timings_s", {})
  rows = [("identity cosine (photo vs render)", report.get("identity_cosine_photo_vs_render")),
          ("landmark RMSE, canvas px", final.get("landmark_rmse_px")),
          ("final loss", final.get("loss")),
          ("fit seconds", timings.get("fit")), ("write seconds", timings.get("write")),
          ("steps", ", ".join(f"{k} {v}" for k, v in report.get("steps", {}).items())),
          ("preset", report.get("preset")), ("mode", report.get("mode")), ("model", report.get("model")),
          ("texture model", report.get("texture_model")), ("identity network", report.get("identity_net")),
          ("faces detected", report.get("faces_detected")), ("photo size", report.get("photo_size"))]
  shared = report.get("shared_identity_with")
  if shared:
    rows.append(("shape and texture shared with", ", ".join(os.path.basename(s) for s in shared)))
  return [(k, v) for k, v in rows if v not in (None, "", [])]


def _fmt(v) -> str:
  if isinstance(v, float):
    return f"{v:.4g}"
  if isinstance(v, (list, tuple)):
    return " x ".join(str(x) for x in v)
  return str(v)


def write_page(out_dir: str, report: dict, *, glb: Optional[str], target_names: Sequence[str] = (),
               weight_range=(0.0, 1.0), pictures: Sequence[tuple] = (), viewer: bool = True) -> None:
  """Writes ``out_dir/index.html`` (and ``viewer/`` when ``glb`` and the viewer asset are there).

  Args:
    report: the fit's report (``report.json``).
    glb: the GLB's file name in ``out_dir``, or None when no GLB was exported.
    target_names: the GLB's morph-target names (the sliders).
    weight_range: the sliders' range (blendshapes [0, 1]; PCA coefficients e.g. [-3, 3]).
    pictures: (file name, caption) of the pictures in ``out_dir``, in order; missing files are skipped.
    viewer: copy the viewer (False: pictures only).
  """
  have_js = bool(glb) and viewer and copy_viewer(out_dir)
  title = os.path.basename(report.get("source", "")) or "fit"
  parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
           f"<title>{html.escape(title)} - ganfit_jax"
           f"</title><style>{_STYLE}</style>"]
  if have_js:
    imports = {"three": f"./{VIEWER_DIR}/three.module.min.js", "three/addons/": f"./{VIEWER_DIR}/addons/"}
    parts.append(f"<script type='importmap'>{json.dumps({'imports': imports})}</script>")
  parts.append("</head><body>")
  parts.append(f"<h1>{html.escape(title)}</h1><p class='sub'>{html.escape(report.get('source', ''))}</p>")
  parts.append("<div class='top'>")
  if have_js:
    main = [n for n in MAIN_TARGETS if n in target_names] or list(target_names)[:12]
    cfg = dict(glb=glb, main_targets=main, weight_range=[float(weight_range[0]), float(weight_range[1])])
    parts.append("<div><div id='viewer'></div><p id='viewer-status'>loading the 3D view ...</p></div>")
    parts.append("<div class='controls'>" + (
        "<p><button id='weights-fitted'>fitted expression</button> <button id='weights-neutral'>neutral</button></p>"
        "<div id='sliders-main'></div><details><summary>all shapes</summary><div id='sliders-all'></div></details>"
        if target_names else "") + _table(report) + "</div>")
    parts.append(f"<script type='application/json' id='viewer-config'>{json.dumps(cfg)}</script>")
    parts.append(f"<script type='module' src='./{VIEWER_DIR}/ganfit_viewer.js'></script>")
    parts.append(_file_fallback())
  else:
    why = ("no mesh.glb was exported (--export without glb)" if not glb else
           "the viewer's JavaScript is not installed: install Node.js/npm, run "
           "<code>python tools/fetch_assets.py --assets=three</code> and fit again"
           if viewer else "the 3D view was not requested")
    parts.append(f"<div><p class='note'>3D view unavailable: {why}. mesh.glb opens in Blender or any glTF "
                 f"viewer.</p></div><div class='controls'>{_table(report)}</div>")
  parts.append("</div><div class='pics'>")
  for name, caption in pictures:
    if os.path.exists(os.path.join(out_dir, name)):
      cls = " class='wide'" if name in ("comparison.png", "convergence.png") else ""
      parts.append(f"<figure{cls}><a href='{html.escape(name)}'>"
                   f"<img src='{html.escape(name)}' alt='{html.escape(caption)}'>"
                   f"</a><figcaption>{html.escape(caption)}</figcaption></figure>")
  parts.append("</div><p class='sub'>files: " + " ".join(
      f"<a href='{html.escape(n)}'>{html.escape(n)}</a>" for n in sorted(os.listdir(out_dir))
      if os.path.isfile(os.path.join(out_dir, n)) and n != "index.html") + "</p></body></html>\n")
  atomic_write(os.path.join(out_dir, "index.html"), "".join(parts))


def write_video_page(out_dir: str, summary: dict, *, glb: str, video: str, offset_s: float = 0.0,
                     viewer: bool = True) -> None:
  """Writes a clip's ``out_dir/index.html``: the overlay video (``video``, a file in ``out_dir`` browsers play)
  beside the 3D view of the animated ``glb``, which follows the video's time (``offset_s``: the video time of
  the animation's zero); ``summary``: (name, value) rows of the clip's numbers (a dict)."""
  have_js = viewer and copy_viewer(out_dir)
  title = os.path.basename(str(summary.get("video", ""))) or "clip"
  parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
           f"<title>{html.escape(title)} - ganfit_jax</title><style>{_STYLE}"
           "video{width:480px;border:1px solid #ccc;background:#000}</style>"]
  if have_js:
    imports = {"three": f"./{VIEWER_DIR}/three.module.min.js", "three/addons/": f"./{VIEWER_DIR}/addons/"}
    parts.append(f"<script type='importmap'>{json.dumps({'imports': imports})}</script>")
  parts.append(f"</head><body><h1>{html.escape(title)}</h1><p class='sub'>{html.escape(str(summary.get('video', '')))}"
               "</p><div class='top'>")
  parts.append(f"<div><video id='clip-video' src='{html.escape(video)}' controls muted loop playsinline></video>"
               "<p class='sub'>the fit over the video</p></div>")
  if have_js:
    cfg = dict(glb=glb, main_targets=[], weight_range=[0.0, 1.0], animation=dict(video="clip-video",
                                                                                    offset=float(offset_s)))
    parts.append("<div><div id='viewer'></div><p id='viewer-status'>loading the 3D view ...</p></div>")
    parts.append(f"<script type='application/json' id='viewer-config'>{json.dumps(cfg)}</script>")
    parts.append(f"<script type='module' src='./{VIEWER_DIR}/ganfit_viewer.js'></script>")
    parts.append(_file_fallback())
  else:
    parts.append("<div><p class='note'>3D view unavailable: the viewer's JavaScript is not installed. "
                 f"{html.escape(glb)} plays in Blender or any glTF viewer.</p></div>")
  rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                 for k, v in summary.items() if v not in (None, "", []))
  parts.append(f"<div class='controls'><table>{rows}</table>"
               "<p><a href='identity/index.html'>the clip's identity (shape and texture)</a></p></div></div>")
  parts.append("<p class='sub'>files: " + " ".join(
      f"<a href='{html.escape(n)}'>{html.escape(n)}</a>" for n in sorted(os.listdir(out_dir))
      if os.path.isfile(os.path.join(out_dir, n)) and n != "index.html") + "</p></body></html>\n")
  atomic_write(os.path.join(out_dir, "index.html"), "".join(parts))


def _table(report: dict) -> str:
  return "<table>" + "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>"
                             for k, v in _numbers(report)) + "</table>"


def _file_fallback() -> str:
  """A classic script: opened as file://, browsers refuse ES modules and mesh.glb; say how to serve it."""
  return ("<script>setTimeout(function(){if(!document.body.dataset.viewer){var s=document.getElementById("
          "'viewer-status');s.innerHTML=location.protocol==='file:'?'The 3D view needs the folder served over "
          "http (browsers block modules and mesh.glb from file://): run <code>python tools/view.py '+"
          "decodeURIComponent(location.pathname.replace(/\\/index\\.html$/,''))+'</code> and open the URL it "
          "prints.':'The 3D view did not start (see the browser console).';}},1500);</script>")


def write_listing(out_dir: str, rows: Sequence[Dict[str, object]]) -> None:
  """Writes ``out_dir/index.html``: one line per photo of a dataset run, linking to its page.

  ``rows``: dicts with ``key`` (the photo), ``out`` (its folder relative to ``out_dir``, or empty), ``status``
  and optionally ``identity_cosine`` / ``landmark_rmse_px`` / ``reason``.
  """
  lines = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
           f"<title>ganfit_jax results</title>"
           f"<style>{_STYLE} td img{{height:64px}}</style></head><body><h1>{len(rows)} photos</h1><table>"
           "<tr><td></td><td>photo</td><td>status</td><td>identity cosine</td><td>landmark RMSE px</td></tr>"]
  for r in rows:
    out = str(r.get("out") or "")
    page = f"{out}/index.html" if out and os.path.exists(os.path.join(out_dir, out, "index.html")) else None
    thumb = f"{out}/overlay.png" if out and os.path.exists(os.path.join(out_dir, out, "overlay.png")) else None
    name = html.escape(str(r.get("key", "")))
    link = f"<a href='{html.escape(page)}'>{name}</a>" if page else name
    img = f"<a href='{html.escape(page)}'><img src='{html.escape(thumb)}' alt=''></a>" if page and thumb else ""
    status = html.escape(str(r.get("status", "")))
    if r.get("reason"):
      status += f": {html.escape(str(r['reason']))}"
    lines.append(f"<tr><td>{img}</td><td>{link}</td><td>{status}</td><td>{_fmt(r.get('identity_cosine', ''))}"
                 f"</td><td>{_fmt(r.get('landmark_rmse_px', ''))}</td></tr>")
  lines.append("</table></body></html>\n")
  atomic_write(os.path.join(out_dir, "index.html"), "".join(lines))


__all__ = ["write_page", "write_video_page", "write_listing", "copy_viewer", "viewer_available", "MAIN_TARGETS",
           "VIEWER_DIR"]
