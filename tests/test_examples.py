"""The runnable examples in examples/, each run as a user would (a child process, short settings)."""

import os
import subprocess
import sys

from conftest import ROOT


def _run(script, *args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "examples", script)] + list(args), cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


def test_custom_loss_term_example_makes_the_shape_symmetric(tmp_path):
  r = _run("custom_loss_term.py", "--steps=20")
  assert r.returncode == 0, r.stderr[-3000:]
  rows = {line[:22].strip(): [float(x) for x in line[22:].split()] for line in r.stdout.splitlines()[1:]}
  plain, sym = rows["as it is"], rows["+ symmetry x 2"]
  assert sym[0] < 0.5 * plain[0], rows  # the term did its job
  assert sym[1] < plain[1] + 1.0, rows  # and the landmarks are still followed
  assert "tpu" not in r.stderr and "XNNPACK" not in r.stderr, r.stderr[-2000:]  # a quiet run
  (tmp_path / "x.jpg").write_text("not an image")
  r = _run("custom_loss_term.py", f"--image={tmp_path / 'x.jpg'}")
  assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
