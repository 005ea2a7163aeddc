"""LFW (Labeled Faces in the Wild) lists, paths and a resumable face/landmark cache.

The benchmark's split files decide who may be used for what: people in
``peopleDevTrain.txt`` are for training, people in ``peopleDevTest.txt`` (and
``pairsDevTest.txt``) only for evaluation. :func:`split_of` answers it per person.

Each LFW photo is centred on the named person (LFW's own convention), so when
several faces are detected the subject is the one nearest the image centre
(:func:`subject_face`), not necessarily the largest.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

DEFAULT_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "assets", "lfw"))


def root(path: Optional[str] = None) -> str:
  r = path or os.environ.get("GANFIT_LFW_DIR") or DEFAULT_ROOT
  if not os.path.isdir(os.path.join(r, "images_deepfunneled")):
    raise FileNotFoundError(f"LFW not found at {r} (no images_deepfunneled/). Pass --lfw_dir or set $GANFIT_LFW_DIR.")
  return r


def image_path(lfw_root: str, name: str, index: int) -> str:
  return os.path.join(lfw_root, "images_deepfunneled", name, f"{name}_{index:04d}.jpg")


def first_photos(num: int, people_file: str = "peopleDevTrain.txt", lfw_root: Optional[str] = None) -> List[str]:
  """The first photo of each of the first ``num`` people of an LFW people list (DevTrain by default: the
  people the project may train and tune on), as paths."""
  if int(num) != num or num < 1:
    raise ValueError(f"num must be a whole number >= 1, got {num}")
  r = root(lfw_root)
  return [image_path(r, name, 1) for name, _ in read_people(os.path.join(r, people_file))[:int(num)]]


def read_people(path: str) -> List[Tuple[str, int]]:
  """(name, number of photos) from ``peopleDevTrain.txt`` / ``peopleDevTest.txt`` (first line: count)."""
  with open(path) as f:
    lines = [l.split() for l in f.read().strip().splitlines()]
  return [(l[0], int(l[1])) for l in lines[1:] if len(l) == 2]


def read_pairs(path: str) -> List[Tuple[str, int, str, int, bool]]:
  """(name1, idx1, name2, idx2, same) from ``pairsDevTest.txt``-style files."""
  out = []
  with open(path) as f:
    for l in f.read().strip().splitlines()[1:]:
      p = l.split()
      if len(p) == 3:
        out.append((p[0], int(p[1]), p[0], int(p[2]), True))
      elif len(p) == 4:
        out.append((p[0], int(p[1]), p[2], int(p[3]), False))
  return out


def split_of(lfw_root: str) -> Dict[str, str]:
  """person -> 'train' (peopleDevTrain) or 'heldout' (peopleDevTest); others are absent."""
  out = {}
  for fname, split in (("peopleDevTrain.txt", "train"), ("peopleDevTest.txt", "heldout")):
    for name, _ in read_people(os.path.join(lfw_root, fname)):
      if out.get(name, split) != split:
        raise ValueError(f"{name} is in both peopleDevTrain and peopleDevTest")
      out[name] = split
  return out


def all_images(lfw_root: str) -> List[str]:
  """Every photo, as paths relative to ``images_deepfunneled`` (``Name/Name_0001.jpg``), sorted."""
  base = os.path.join(lfw_root, "images_deepfunneled")
  out = []
  for person in sorted(os.listdir(base)):
    d = os.path.join(base, person)
    if os.path.isdir(d):
      out += [f"{person}/{f}" for f in sorted(os.listdir(d)) if f.endswith(".jpg")]
  return out


def subject_face(faces: list, image_shape) -> Optional[int]:
  """Index of the face whose box centre is nearest the image centre (LFW's subject), or None."""
  if not faces:
    return None
  c = np.array([image_shape[1], image_shape[0]], np.float64) / 2
  d = [np.linalg.norm((np.asarray(f["box"][:2]) + np.asarray(f["box"][2:])) / 2 - c) for f in faces]
  return int(np.argmin(d))


def detect_cache(lfw_root: str, rel_paths: Iterable[str], cache_path: str,
                 progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, list]:
  """Every face (box, score, 68 landmarks) of every photo, cached in a JSON-lines file.

  Resumable: photos already in ``cache_path`` are not detected again; each
  finished photo is appended (one line), so an interrupted run loses at most one.
  """
  from ganfit_jax.face import detect, image_io
  rel_paths = list(rel_paths)
  done: Dict[str, list] = {}
  if os.path.exists(cache_path):
    with open(cache_path) as f:
      for line in f:
        try:
          rec = json.loads(line)
        except json.JSONDecodeError:
          continue  # a line cut by an interruption
        done[rec["file"]] = rec["faces"]
  todo = [p for p in rel_paths if p not in done]
  with open(cache_path, "a") as f:
    for i, rel in enumerate(todo):
      img = image_io.load_image(os.path.join(lfw_root, "images_deepfunneled", rel))
      faces = [{"box": [round(float(v), 2) for v in fc.box], "score": round(fc.score, 4),
                "landmarks": np.round(fc.landmarks, 2).tolist(), "shape": list(img.shape[:2])}
               for fc in detect.detect_faces(img)]
      done[rel] = faces
      f.write(json.dumps({"file": rel, "faces": faces}) + "\n")
      if i % 50 == 0:
        f.flush()
      if progress:
        progress(i + 1, len(todo))
  return {p: done[p] for p in rel_paths}
