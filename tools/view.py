"""Serves a result folder on 127.0.0.1 so its report page (index.html) shows the 3D view.

  python tools/view.py out/astronaut              # prints http://127.0.0.1:8000/ ; Ctrl-C stops
  python tools/view.py out/many --port=0          # any free port (a dataset run's folder lists every photo)

Browsers load the page's ES modules and mesh.glb only over http, not from file://. Only this machine can
reach the server (it binds 127.0.0.1).
"""

import functools
import http.server
import mimetypes
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("port", 8000, "Port on 127.0.0.1 (0: any free port).")
flags.DEFINE_bool("open", False, "Also open the page in the default web browser.")

mimetypes.add_type("model/gltf-binary", ".glb")
mimetypes.add_type("text/javascript", ".js")


class _Handler(http.server.SimpleHTTPRequestHandler):

  def log_message(self, fmt, *args):  # one short line per request on stderr
    sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


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
