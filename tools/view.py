"""Serves a result folder on 127.0.0.1 so its report page (index.html) shows the 3D view.

  python tools/view.py out/astronaut              # prints http://127.0.0.1:8000/ ; Ctrl-C stops
  python tools/view.py out/many --port=0          # any free port (a dataset run's folder lists every photo)

Browsers load the page's ES modules and mesh.glb only over http, not from file://. Only this machine can
reach the server (it binds 127.0.0.1).
"""

import functools
import http.server
import io
import mimetypes
import os
import re
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("port", 8000, "Port on 127.0.0.1 (0: any free port).")
flags.DEFINE_bool("open", False, "Also open the page in the default web browser.")

mimetypes.add_type("model/gltf-binary", ".glb")
mimetypes.add_type("text/javascript", ".js")


class _Handler(http.server.SimpleHTTPRequestHandler):
  """The standard library's file handler plus single byte ranges (``Range: bytes=A-B``, 206 responses):
  browsers seek in a video (a clip's overlay.webm) only when the server answers ranges, and the standard
  handler does not."""

  def log_message(self, fmt, *args):  # one short line per request on stderr
    sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

  def end_headers(self):
    self.send_header("Accept-Ranges", "bytes")
    super().end_headers()

  def send_head(self):
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
    path = self.translate_path(self.path)
    if not m or not os.path.isfile(path) or m.group(1) == m.group(2) == "":
      return super().send_head()
    size = os.path.getsize(path)
    if m.group(1):
      start, end = int(m.group(1)), min(int(m.group(2) or size - 1), size - 1)
    else:  # the last N bytes
      start, end = max(size - int(m.group(2)), 0), size - 1
    if start >= size or end < start:
      self.send_response(416)
      self.send_header("Content-Range", f"bytes */{size}")
      self.send_header("Content-Length", "0")
      self.end_headers()
      return None
    with open(path, "rb") as f:
      f.seek(start)
      body = f.read(end - start + 1)
    self.send_response(206)
    self.send_header("Content-Type", self.guess_type(path))
    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    return io.BytesIO(body)


def serve(folder: str, port: int = 8000):
  """A ThreadingHTTPServer for ``folder`` bound to 127.0.0.1 (``port`` 0: any free one)."""
  handler = functools.partial(_Handler, directory=os.path.abspath(folder))
  return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def main(argv):
  if len(argv) != 2:
    print("error: give one result folder: python tools/view.py OUT_DIR", file=sys.stderr)
    return 2
  folder = argv[1]
  if not os.path.isdir(folder):
    print(f"error: {folder} is not a folder (give the --out folder of tools/fit.py)", file=sys.stderr)
    return 2
  if not os.path.exists(os.path.join(folder, "index.html")):
    print(f"error: {folder} has no index.html; fit with --export including html (the default)", file=sys.stderr)
    return 2
  if not 0 <= FLAGS.port <= 65535:
    print(f"error: --port={FLAGS.port} must be in 0..65535", file=sys.stderr)
    return 2
  try:
    server = serve(folder, FLAGS.port)
  except OSError as e:
    print(f"error: cannot listen on 127.0.0.1:{FLAGS.port} ({e.strerror}); choose another --port (0: any free)",
          file=sys.stderr)
    return 2
  url = f"http://127.0.0.1:{server.server_address[1]}/"
  print(f"serving {os.path.abspath(folder)} at {url}  (Ctrl-C stops)", flush=True)
  if FLAGS.open:
    import webbrowser
    webbrowser.open(url)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
