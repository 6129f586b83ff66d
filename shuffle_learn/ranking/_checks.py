"""Argument validation and the batched front door shared by the ranking ops.

The generic checks come from `shuffle_learn._checks`; this module adds those
that know about tracers, axes and dtypes.
"""

from __future__ import annotations

import numbers
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from shuffle_learn._checks import check_choice  # pylint: disable=unused-import
from shuffle_learn._checks import check_int
from shuffle_learn.ranking import _paths

REGULARIZATIONS = ("l2", "kl")
DIRECTIONS = ("ascending", "descending")
NOISES = ("normal", "gumbel")


def check_positive(name: str, value):
  """Checks value > 0 when it is concrete; traced values pass through."""
  if isinstance(value, jax.core.Tracer):
    return value
  arr = np.asarray(value)
  if arr.dtype.kind not in "fiu" or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
    raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
  return value


def check_count(name: str, value) -> int:
  return check_int(name, value, 1)


def check_axis(axis, ndim: int) -> int:
  if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
    raise ValueError(f"axis must be an integer, got {axis!r}.")
  if ndim == 0:
    raise ValueError("values must have at least one dimension to rank along axis.")
  if not -ndim <= axis < ndim:
    raise ValueError(f"axis {axis} is out of range for an array with {ndim} dimensions.")
  return axis % ndim


def compute_dtype(dtype) -> jnp.dtype:
  """float32 for half precision and integers, otherwise the input dtype."""
  dtype = jnp.dtype(dtype)
  if jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize >= 4:
    return dtype
  return jnp.dtype(jnp.float32)


def output_dtype(dtype) -> jnp.dtype:
  """The input dtype for floats; the default float dtype for integers."""
  dtype = jnp.dtype(dtype)
  return dtype if jnp.issubdtype(dtype, jnp.floating) else compute_dtype(dtype)


def along_axis(fn: Callable[..., jax.Array], axis, *arrays: jax.ArrayLike) -> jax.Array:
  """Applies a function written for vectors `(n,)` along `axis` of same-shaped arrays.

  The arrays are computed in `compute_dtype` and the result is returned in the
  first array's `output_dtype`.
  """
  arrays = [jnp.asarray(a) for a in arrays]
  x = arrays[0]
  for other in arrays[1:]:
    if other.shape != x.shape:
      raise ValueError(f"shapes must match, got {x.shape} and {other.shape}.")
  axis = check_axis(axis, x.ndim)
  dtype = compute_dtype(x.dtype)
  moved = [jnp.moveaxis(a, axis, -1).astype(dtype) for a in arrays]
  batch_shape, n = moved[0].shape[:-1], moved[0].shape[-1]
  if moved[0].size == 0:
    out = moved[0]
  else:
    flat = [a.reshape(-1, n) for a in moved]
    with _paths.rows(flat[0].shape[0]):  # The ops choose their path by it.
      out = jax.vmap(fn)(*flat).reshape(batch_shape + (n,))
  return jnp.moveaxis(out, -1, axis).astype(output_dtype(x.dtype))


def nan_rows_like(out: jax.Array, *inputs: jax.Array) -> jax.Array:
  """NaN everywhere in the vector `out` if an input vector has a non-finite entry."""
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in inputs]))
  return jnp.where(finite, out, jnp.nan)
