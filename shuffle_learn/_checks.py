"""Argument checks shared by the package: one place, one message format.

Every check raises ``ValueError`` whose message starts with the argument's
name (``"batch_size must be an integer >= 1, got 0."``), so that `prefixed`
can put a config path in front of it (``"config.train.batch_size must be
..."``). Dataclasses call these in ``__post_init__``; the config checks in
`shuffle_learn.config` build the dataclasses inside `prefixed`.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from typing import Iterator, Mapping, Sequence


def is_int(value) -> bool:
  """An integer that is not a bool."""
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
  """``value`` as an int, if it is an integer in ``[minimum, maximum]``."""
  if not is_int(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
    if maximum is None:
      bound = f" >= {minimum}" if minimum is not None else ""
    else:
      bound = f" in [{minimum}, {maximum}]"
    raise ValueError(f"{name} must be an integer{bound}, got {value!r}.")
  return int(value)


def check_number(name: str, value, minimum: float = -math.inf, *, strict: bool = False) -> float:
  """``value`` as a float, if it is a finite real number ``> minimum`` (strict) or ``>= minimum``."""
  ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
  if not ok or value < minimum or (strict and value == minimum):
    bound = "" if minimum == -math.inf else f" {'>' if strict else '>='} {minimum:g}"
    raise ValueError(f"{name} must be a finite number{bound}, got {value!r}.")
  return float(value)


def check_choice(name: str, value, choices: Sequence):
  """``value``, if it is one of ``choices``."""
  if isinstance(value, (list, dict)) or value not in tuple(choices):
    raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}.")
  return value


def check_bool(name: str, value) -> bool:
  if not isinstance(value, bool):
    raise ValueError(f"{name} must be a bool, got {value!r}.")
  return value


def check_string(name: str, value) -> str:
  if not isinstance(value, str):
    raise ValueError(f"{name} must be a string, got {value!r}.")
  return value


def check_ints(name: str, values, minimum: int, maximum: int, *, distinct: bool = False) -> tuple[int, ...]:
  """A non-empty sequence of integers in ``[minimum, maximum]``, as a tuple (sorted if ``distinct``)."""
  if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values or not all(
      is_int(v) and minimum <= v <= maximum for v in values):
    raise ValueError(f"{name} must be a non-empty tuple of integers in [{minimum}, {maximum}], got {values!r}.")
  if distinct:
    if len(set(values)) != len(values):
      raise ValueError(f"{name} has repeated entries: {values!r}.")
    return tuple(sorted(int(v) for v in values))
  return tuple(int(v) for v in values)


@contextlib.contextmanager
def prefixed(path: str, fields: Mapping[str, str] | None = None) -> Iterator[None]:
  """Re-raises a ValueError raised inside with ``path + "."`` before the name its message starts with.

  Args:
    path: the config path of the checked object, e.g. ``"config.train"``.
    fields: argument name -> its path below ``path``, for objects whose
      arguments come from several config sections (``{"n_rows":
      "pretext.n_rows"}``); names not in it are put right after ``path``.

  Example:
    >>> with prefixed("config.train"):
    ...   check_int("batch_size", 0, 1)
    Traceback (most recent call last):
    ValueError: config.train.batch_size must be an integer >= 1, got 0.
  """
  try:
    yield
  except ValueError as e:
    message = str(e)
    name = message.split(" ", 1)[0]
    if fields and name in fields:
      message = fields[name] + message[len(name):]
    raise ValueError(f"{path}.{message}") from None


def get(config, path: str, root: str = "config"):
  """``config[a][b]...`` for ``path = "a.b..."``; ValueError ``"{root}.{path} is missing."`` (``root`` "": ``"{path} ..."``)."""
  node = config
  for part in path.split("."):
    try:
      node = node[part]
    except (KeyError, AttributeError, TypeError):
      raise ValueError(f"{root}.{path} is missing." if root else f"{path} is missing.") from None
  return node
