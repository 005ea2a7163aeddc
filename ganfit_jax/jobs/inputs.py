"""The items of a dataset job: which photos, grouped how, written where, by which process."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from typing import Dict, Iterable, List, Optional

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
LIST_COLUMNS = ("path", "person", "landmarks", "face_box")


class JobInputError(ValueError):
  """A dataset job that cannot run as given (a malformed input list, a bad flag); the message says why."""

  exit_code = 2


@dataclasses.dataclass(frozen=True)
class Item:
  """One photo of a job.

  key: the photo's identity in the manifest (its path relative to the folder or list);
  path: the file to read; person: photos with the same person are fitted together (shared
  shape and texture), None for a photo alone; landmarks: a 68-point file (detection skipped);
  face_box: "x,y,w,h" (the detected face nearest it); out: the output folder, relative to --out.
  """

  key: str
  path: str
  person: Optional[str] = None
  landmarks: Optional[str] = None
  face_box: Optional[str] = None
  out: str = ""
  face: Optional[int] = None  # which face of the photo (0 = the largest); None: the job's selection


def from_dir(folder: str) -> List[Item]:
  """Every image under ``folder`` (recursive, by extension), sorted by relative path."""
  if not os.path.isdir(folder):
    raise JobInputError(f"--input_dir={folder} is not a folder")
  found = []
  for d, dirs, files in os.walk(folder):
    dirs[:] = sorted(x for x in dirs if not x.startswith("."))
    for f in files:
      if f.lower().endswith(IMAGE_EXTS) and not f.startswith("."):
        p = os.path.join(d, f)
        found.append(Item(key=os.path.relpath(p, folder).replace(os.sep, "/"), path=p))
  return with_outputs(sorted(found, key=lambda it: it.key))


def _rows(path: str) -> Iterable[tuple]:
  """(line number, dict) of a CSV (with a header naming ``path``) or a JSON-lines file."""
  with open(path, newline="") as f:
    first = f.readline()
    f.seek(0)
    if first.lstrip().startswith("{"):
      for n, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          row = json.loads(line)
        except json.JSONDecodeError as e:
          raise JobInputError(f"{path}:{n}: not a JSON object ({e.msg}); each line must be like "
                               '{"path": "a.jpg", "person": "p1"}') from e
        if not isinstance(row, dict):
          raise JobInputError(f"{path}:{n}: each line must be a JSON object with a 'path'")
        yield n, row
    else:
      reader = csv.DictReader(f)
      if not reader.fieldnames or "path" not in [c.strip() for c in reader.fieldnames]:
        raise JobInputError(f"{path}: a CSV input list needs a header line naming a 'path' column "
                             f"(columns: {', '.join(LIST_COLUMNS)})")
      for n, row in enumerate(reader, 2):
        yield n, {(k or "").strip(): (v or "").strip() for k, v in row.items()}


def from_list(list_path: str) -> List[Item]:
  """The items of a CSV or JSON-lines list: ``path`` (required; relative paths are relative to the list's
  folder), optional ``person``, ``landmarks`` (a 68-point file, same rule), ``face_box`` ("x,y,w,h")."""
  if not os.path.isfile(list_path):
    raise JobInputError(f"--input_list={list_path} does not exist or is not a file")
  base = os.path.dirname(os.path.abspath(list_path))
  resolve = lambda p: p if os.path.isabs(p) else os.path.join(base, p)  # noqa: E731
  items, seen = [], {}
  try:
    rows = list(_rows(list_path))
  except UnicodeDecodeError as e:
    raise JobInputError(f"{list_path}: not a text file ({e.reason}); give a CSV or JSON-lines list") from e
  for n, row in rows:
    unknown = sorted(set(row) - set(LIST_COLUMNS) - {""})
    if unknown:
      raise JobInputError(f"{list_path}:{n}: unknown column(s) {unknown}; the columns are {', '.join(LIST_COLUMNS)}")
    p = str(row.get("path") or "").strip()
    if not p:
      raise JobInputError(f"{list_path}:{n}: empty 'path'")
    if p in seen:
      raise JobInputError(f"{list_path}:{n}: {p} is listed twice (first on line {seen[p]})")
    seen[p] = n
    opt = lambda k: (str(row[k]).strip() or None) if row.get(k) not in (None, "") else None  # noqa: E731
    lm = opt("landmarks")
    items.append(Item(key=p.replace(os.sep, "/"), path=resolve(p), person=opt("person"),
                      landmarks=resolve(lm) if lm else None, face_box=opt("face_box")))
  if not items:
    raise JobInputError(f"{list_path} lists no photos")
  return with_outputs(items)


def from_photos(paths: List[str], *, shared_identity: bool, landmarks: Optional[str] = None,
                face_box: Optional[str] = None) -> List[Item]:
  """The items of ``--image`` (one path: its result is ``--out`` itself) or ``--images`` (several photos of one
  person, ``shared_identity``: each into ``<out>/<photo name>``, the shared face into ``<out>/identity``; a photo
  named ``identity`` gets ``identity_photo``). ``landmarks`` / ``face_box`` apply to a single photo."""
  if not paths:
    raise JobInputError("no photos given")
  if (landmarks or face_box) and len(paths) != 1:
    raise JobInputError("--landmarks and --face_box apply to one photo (--image)")
  if not shared_identity:
    if len(paths) != 1:
      raise JobInputError("several photos without a shared identity: use --input_dir or --input_list")
    return [Item(key=os.path.basename(paths[0]) or paths[0], path=paths[0], landmarks=landmarks,
                 face_box=face_box, out="")]
  keys: Dict[str, int] = {}
  items = []
  for p in paths:
    k = os.path.basename(p) or p
    keys[k] = keys.get(k, 0) + 1
    items.append(Item(key=k if keys[k] == 1 else f"{k}#{keys[k]}", path=p, person=PHOTOS_PERSON))
  return with_outputs(items, person_folders=False)


def from_faces(path: str, count: int) -> List[Item]:
  """``--face=all``: the photo once per face (``count`` faces, largest first), into ``<out>/face_K``."""
  name = os.path.basename(path) or path
  return [Item(key=f"{name}#face_{k}", path=path, face=k, out=f"face_{k}") for k in range(count)]


# the person of --images' photos (one shared identity; their folders sit directly in --out)
PHOTOS_PERSON = "photos"


def _safe(name: str) -> str:
  name = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in name).strip(".")
  return name or "x"


def with_outputs(items: List[Item], person_folders: bool = True) -> List[Item]:
  """Gives every item its output folder: the key without extension (sub-folders kept; an absolute path or
  one leaving the list's folder: the file name alone); photos of a ``person`` go to ``<person>/<name>``
  (``<name>`` alone without ``person_folders``), never to ``identity`` (the shared face's folder beside them:
  a photo named so gets ``identity_photo``); a name two items would share gets its extension and a short hash
  of its key appended."""
  def base(it):
    parts = os.path.splitext(it.key.split("#")[0] if it.person == PHOTOS_PERSON else it.key)[0].split("/")
    if it.key.startswith("/") or ".." in parts:  # a list's absolute or outside path: its file name alone
      parts = parts[-1:]
    parts = [_safe(x) for x in parts if x not in ("", ".")]
    if it.person is not None:
      name = parts[-1] if parts else "photo"
      name = "identity_photo" if name == "identity" else name  # identity/: the shared face
      parts = [_safe(it.person), name] if person_folders else [name]
    return "/".join(parts) or "photo"

  counts: Dict[str, int] = {}
  for it in items:
    counts[base(it)] = counts.get(base(it), 0) + 1
  out = []
  for it in items:
    b = base(it)
    if counts[b] > 1:
      b = f"{b}_{_safe(os.path.splitext(it.key)[1].lstrip('.')) or 'noext'}_{_digest(it.key)[:6]}"
    out.append(dataclasses.replace(it, out=b))
  return out


def _digest(s: str) -> str:
  return hashlib.sha256(s.encode()).hexdigest()


def owner(item: Item, num_processes: int) -> int:
  """The process that fits ``item``: sha256 of its key (of its person for a group, so a group stays
  together) modulo the process count; the same for every rerun with the same count."""
  return int(_digest(item.person if item.person is not None else item.key)[:8], 16) % num_processes


def seed(item: Item) -> int:
  """A photo's own random seed (31 bits of sha256 of its key): its fit does not depend on its batch."""
  return int(_digest(item.key)[:8], 16) & 0x7FFFFFFF


def share(items: List[Item], process_id: int, num_processes: int) -> List[Item]:
  """This process's disjoint share of the items."""
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise ValueError(f"process_id={process_id} must be in 0..{num_processes - 1}")
  return [it for it in items if owner(it, num_processes) == process_id]


__all__ = ["IMAGE_EXTS", "LIST_COLUMNS", "JobInputError", "Item", "from_dir", "from_list", "from_photos", "from_faces",
           "PHOTOS_PERSON", "with_outputs",
           "owner", "seed", "share"]
