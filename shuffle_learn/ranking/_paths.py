"""Which path an op runs: by n and backend.

Three paths compute the same results (the same blocks, values and VJPs):

* ``"dense"``: no sort and no loop. The order of a row by counting pairwise
  comparisons and the blocks by the min-max formula, on all n^2 pairs at once
  (`_dense`): a handful of vectorised kernels. For rows of n <= `DENSE_N` (the
  pretext's 9 tiles, 10 bands, 20 frames), on every backend, while the op's
  rows x n^2 stay within `DENSE_ELEMENTS`.

Other rows are sorted (`_sorting.sort_descending`, by counting while rows x n^2
stay within `COUNTING_SORT_ELEMENTS`), then run pool-adjacent-violators (`_pav`):

* ``"accelerator"``: PAV `vmap`ped over the rows, which runs them in lockstep;
  for GPUs and TPUs, where every loop iteration is a kernel launch, and for
  rows of n <= `LOCKSTEP_PAV_N` on every backend.
* ``"cpu"``: PAV looped row after row (`lax.map`), each row a tight native loop;
  for longer rows on CPU.

Beyond `LOCKSTEP_PAV_N`, `lax.platform_dependent` picks one of the two, so the
backend that compiles the op decides.

The rows are those that the op batches itself (`_checks.along_axis` says how
many with `rows`); an outer `jax.vmap` is not counted. Tests force one path at
every n with `force_path`: the choice is made when an op is traced, so it
clears JAX's caches of traced and compiled functions.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import jax

PATHS = ("dense", "cpu", "accelerator")
# The thresholds were measured on a 2-core CPU (docs/results/README.md, "Ranking").
DENSE_N = 20
DENSE_ELEMENTS = 2**17
LOCKSTEP_PAV_N = 48
COUNTING_SORT_N = 256
COUNTING_SORT_ELEMENTS = 2**22

_forced: str | None = None
_rows = 1


@contextlib.contextmanager
def rows(count: int) -> Iterator[None]:
  """Tells the ops traced inside that they rank `count` rows at once."""
  global _rows
  previous, _rows = _rows, max(int(count), 1)
  try:
    yield
  finally:
    _rows = previous


def dense(n: int) -> bool:
  """Whether rows of length n run the dense path."""
  if _forced is not None:
    return _forced == "dense"
  return n <= DENSE_N and _rows * n * n <= DENSE_ELEMENTS


def counting_sort(n: int) -> bool:
  """Whether rows of length n are sorted by counting pairwise comparisons."""
  return n <= COUNTING_SORT_N and _rows * n * n <= COUNTING_SORT_ELEMENTS


def lockstep_pav(n: int) -> bool | None:
  """Whether PAV runs the rows in lockstep (vmapped); None: the backend decides."""
  if _forced is not None:
    return _forced == "accelerator"
  return True if n <= LOCKSTEP_PAV_N else None


@contextlib.contextmanager
def force_path(path: str | None) -> Iterator[None]:
  """Runs every op traced inside on `path` (one of `PATHS`), at every n; for tests."""
  global _forced
  if path is not None and path not in PATHS:
    raise ValueError(f"path must be one of {PATHS}, got {path!r}.")
  previous, _forced = _forced, path
  jax.clear_caches()
  try:
    yield
  finally:
    _forced = previous
    jax.clear_caches()
