"""A bounded host pipeline: photos are loaded and detected on worker threads, at most ``prefetch`` ahead
of the fitting, and grouped into the units the fit runs on.

Memory is bounded by ``prefetch`` prepared photos plus one batch, whatever the number of items. OpenCV's
decoding and dlib's detector release the GIL for most of their work, so threads overlap them with the
compiled fit (``benchmarks/dataset.py`` measures the pipeline's own rate).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
from typing import Callable, Dict, Iterable, Iterator, List, Tuple, Union

from ganfit_jax import face
from ganfit_jax.jobs.inputs import Item


@dataclasses.dataclass
class Failure:
  """A photo that could not be prepared: ``kind`` 'input' (bad photo / landmark file) or 'error'."""
  kind: str
  reason: str


Prepared = Union[face.PreparedFace, Failure]


def prepare_all(items: Iterable[Item], prepare: Callable[[Item], face.PreparedFace], workers: int = 2,
                prefetch: int = 16) -> Iterator[Tuple[Item, Prepared]]:
  """``(item, prepare(item) or Failure)`` in the items' order, at most ``prefetch`` in flight."""
  def safe(item):
    try:
      return prepare(item)
    except face.FaceInputError as e:
      return Failure("input", str(e))
    except MemoryError:
      return Failure("input", "not enough memory to load this photo; shrink it")
    except Exception as e:  # noqa: BLE001  (one photo's surprise must not stop a dataset job)
      return Failure("error", f"{type(e).__name__}: {e}")

  it = iter(items)
  pool = _pool(max(1, workers))
  window = collections.deque()
  try:
    for item in it:
      window.append((item, pool.submit(safe, item)))
      if len(window) >= max(1, prefetch):
        break
    while window:
      item, fut = window.popleft()
      nxt = next(it, None)
      if nxt is not None:
        window.append((nxt, pool.submit(safe, nxt)))
      yield item, fut.result()
  finally:  # a consumer that stops early: drop what has not started
    for _, fut in window:
      fut.cancel()


@functools.lru_cache(maxsize=None)
def _pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
  """One pool per worker count for the process: its threads keep their detector models (loaded once per
  thread) across jobs."""
  return concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="ganfit-prepare")


@dataclasses.dataclass
class Unit:
  """What one fit call takes: independent photos (``person`` None, up to the batch size) or every usable
  photo of one person; ``failed`` are photos of the unit that could not be prepared."""
  person: Union[str, None]
  photos: List[Tuple[Item, face.PreparedFace]]
  failed: List[Tuple[Item, Failure]]


def order(items: List[Item]) -> List[Item]:
  """Items with each person's photos next to each other (at its first photo's place), so a group is
  complete a few photos after it starts and the pipeline holds only that much."""
  groups: Dict[object, List[Item]] = collections.OrderedDict()
  for it in items:
    groups.setdefault(("p", it.person) if it.person is not None else ("k", it.key), []).append(it)
  return [it for g in groups.values() for it in g]


def units(stream: Iterable[Tuple[Item, Prepared]], batch_size: int, group_sizes: Dict[str, int]) -> Iterator[Unit]:
  """Groups the prepared stream (from :func:`prepare_all` over :func:`order`'s items) into :class:`Unit` s.
  ``group_sizes``: person -> how many of its photos the stream carries."""
  singles: List[Tuple[Item, face.PreparedFace]] = []
  single_failed: List[Tuple[Item, Failure]] = []
  groups: Dict[str, Unit] = {}
  for item, p in stream:
    if item.person is None:
      (single_failed if isinstance(p, Failure) else singles).append((item, p))
      if len(singles) == batch_size or len(single_failed) >= batch_size:
        yield Unit(None, singles, single_failed)
        singles, single_failed = [], []
      continue
    u = groups.setdefault(item.person, Unit(item.person, [], []))
    (u.failed if isinstance(p, Failure) else u.photos).append((item, p))
    if len(u.photos) + len(u.failed) == group_sizes[item.person]:
      yield groups.pop(item.person)
  if singles or single_failed:
    yield Unit(None, singles, single_failed)
  for u in groups.values():  # only if group_sizes overcounted
    yield u


__all__ = ["Failure", "Prepared", "prepare_all", "Unit", "order", "units"]
