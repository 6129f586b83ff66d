"""Cutting spectrograms, images and videos into the patches that get shuffled.

`to_patches` cuts the last two axes of ``(..., H, W)`` into an ``n_rows x
n_cols`` grid, numbered in row-major order (patch ``row * n_cols + col``). For a
spectrogram the two axes are ``(frequency, time)``, lowest frequency first:

- ``n_cols=1``: frequency bands, patch 0 the lowest band;
- ``n_rows=1``: time segments, patch 0 the earliest;
- both > 1: time-frequency tiles;
- for an image ``(H, W)`` or ``(H, W, C)``, ``n_rows=n_cols=3`` gives the
  jigsaw tiles of Noroozi & Favaro 2016.

The front ends in `shuffle_learn.data.frontend` return ``(..., frames, bins)``
(time first): swap the last two axes first, ``to_patches(jnp.swapaxes(spec, -1,
-2), n_rows, n_cols)``, so that rows split frequency and columns split time;
`from_patches` then gives ``(..., frequency, time)`` back.

The slicing is a reshape (`einops.rearrange`), under ``jit`` and for NumPy
arrays alike: NumPy in gives NumPy out, anything else gives a ``jax.Array``.

References:
  Carr et al. Self-Supervised Learning of Audio Representations from
  Permutations with Differentiable Ranking. IEEE SPL 2021.
  Noroozi, Favaro. Unsupervised Learning of Visual Representations by Solving
  Jigsaw Puzzles. ECCV 2016.
"""

from __future__ import annotations

import einops
import jax
import jax.numpy as jnp
import numpy as np

from shuffle_learn import _checks

CROPS = ("error", "end")


def _array(x):
  return x if isinstance(x, np.ndarray) else jnp.asarray(x)


def _check_grid(n_rows, n_cols) -> None:
  _checks.check_int("n_rows", n_rows, 1)
  _checks.check_int("n_cols", n_cols, 1)


def _check_ndim(name: str, x, minimum: int, layout: str) -> None:
  if x.ndim < minimum:
    raise ValueError(f"{name} must have layout {layout}, at least {minimum} dimensions, got shape {x.shape}.")


def to_patches(
    x: jax.typing.ArrayLike,
    n_rows: int,
    n_cols: int,
    *,
    crop: str = "error",
    channels_last: bool = False,
) -> jax.Array:
  """Cuts the last two axes into an ``n_rows x n_cols`` grid of patches.

  Patch ``row * n_cols + col`` is ``x[..., row * h:(row + 1) * h, col * w:(col
  + 1) * w]`` with ``h = H // n_rows`` and ``w = W // n_cols``.

  Args:
    x: ``(..., H, W)``, or ``(..., H, W, C)`` with ``channels_last``. For a
      spectrogram, ``(..., frequency, time)``: see the module docstring.
    n_rows: number of patches along ``H`` (frequency bands), >= 1.
    n_cols: number of patches along ``W`` (time segments), >= 1.
    crop: ``"error"``: ``H`` must be divisible by ``n_rows`` and ``W`` by
      ``n_cols``. ``"end"``: the remainders ``H % n_rows`` rows and ``W %
      n_cols`` columns at the end (highest frequencies, latest frames) are
      dropped.
    channels_last: ``x`` has a trailing channel axis that is kept whole.

  Returns:
    ``(..., n_rows * n_cols, h, w)``, or ``(..., n_rows * n_cols, h, w, C)``.

  Raises:
    ValueError: for a size that does not divide with ``crop="error"``, naming
      the axis; for a grid finer than the array.

  Example:
    >>> to_patches(jnp.zeros((8, 64, 398)), 1, 10, crop="end").shape
    (8, 10, 64, 39)
  """
  _check_grid(n_rows, n_cols)
  if crop not in CROPS:
    raise ValueError(f"crop must be one of {CROPS}, got {crop!r}.")
  x = _array(x)
  _check_ndim("x", x, 3 if channels_last else 2, "(..., H, W, C)" if channels_last else "(..., H, W)")
  h_axis, w_axis = (-3, -2) if channels_last else (-2, -1)
  height, width = x.shape[h_axis], x.shape[w_axis]
  for axis_name, size, count, count_name in (("H", height, n_rows, "n_rows"), ("W", width, n_cols, "n_cols")):
    if size < count:
      raise ValueError(f"axis {axis_name} of size {size} cannot hold {count_name}={count} patches.")
    if size % count and crop == "error":
      raise ValueError(
          f"axis {axis_name} of size {size} is not divisible by {count_name}={count}; "
          f"pass crop='end' to drop the last {size % count}.")
  h, w = height // n_rows, width // n_cols
  if channels_last:
    x = x[..., :h * n_rows, :w * n_cols, :]
    return einops.rearrange(x, "... (r h) (c w) C -> ... (r c) h w C", r=n_rows, c=n_cols)
  x = x[..., :h * n_rows, :w * n_cols]
  return einops.rearrange(x, "... (r h) (c w) -> ... (r c) h w", r=n_rows, c=n_cols)


def from_patches(
    patches: jax.typing.ArrayLike,
    n_rows: int,
    n_cols: int,
    *,
    channels_last: bool = False,
) -> jax.Array:
  """The inverse of `to_patches`: puts a row-major grid of patches back together.

  Args:
    patches: ``(..., n_rows * n_cols, h, w)``, or ``(..., n_rows * n_cols, h,
      w, C)`` with ``channels_last``.
    n_rows: number of patch rows, >= 1.
    n_cols: number of patch columns, >= 1.
    channels_last: the patches have a trailing channel axis.

  Returns:
    ``(..., n_rows * h, n_cols * w)`` (``[, C]``): the input of `to_patches`,
    less what ``crop="end"`` dropped.
  """
  _check_grid(n_rows, n_cols)
  patches = _array(patches)
  layout = "(..., n_rows * n_cols, h, w, C)" if channels_last else "(..., n_rows * n_cols, h, w)"
  _check_ndim("patches", patches, 4 if channels_last else 3, layout)
  patch_axis = -4 if channels_last else -3
  if patches.shape[patch_axis] != n_rows * n_cols:
    raise ValueError(
        f"patches must have n_rows * n_cols = {n_rows * n_cols} patches on axis {patch_axis}, "
        f"got shape {patches.shape}.")
  if channels_last:
    return einops.rearrange(patches, "... (r c) h w C -> ... (r h) (c w) C", r=n_rows, c=n_cols)
  return einops.rearrange(patches, "... (r c) h w -> ... (r h) (c w)", r=n_rows, c=n_cols)


def frames_as_patches(video: jax.typing.ArrayLike, *, channels_last: bool = False) -> jax.Array:
  """Video frames as patches: the identity on ``(..., T, H, W[, C])``.

  Shuffling the frames of a video (Misra et al. 2016; Lee et al. 2017) uses
  each frame as one patch, and ``(..., T, H, W)`` already is ``(...,
  num_patches, h, w)`` with ``num_patches = T``: this is not ``to_patches(...,
  n_rows=T)``, which would cut each frame's height. This function only checks
  the layout and returns the array unchanged, so that the patch axis can go to
  `shuffle_learn.data.permutations.shuffle_patches`.

  Args:
    video: ``(..., T, H, W)``, or ``(..., T, H, W, C)`` with ``channels_last``.
    channels_last: the frames have a trailing channel axis.

  Returns:
    ``video`` as is: ``(..., T, H, W[, C])``, patch ``t`` is frame ``t``.
  """
  video = _array(video)
  _check_ndim("video", video, 4 if channels_last else 3, "(..., T, H, W, C)" if channels_last else "(..., T, H, W)")
  return video
