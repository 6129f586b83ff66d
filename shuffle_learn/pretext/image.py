"""Image input of the pretext task: an ``n_rows x n_cols`` jigsaw of tiles (Noroozi & Favaro 2016).

    images (batch, H, W, C), uint8 or float
      -> float32 in [0, 1]
      -> an ``n_rows x n_cols`` grid of cells (`shuffle_learn.data.patches.to_patches`,
         remainders at the bottom and right cropped)
      -> in every cell a tile ``gap`` pixels smaller along each axis, at a
         random offset in ``[0, gap]`` when training (the centre otherwise): tiles
         never overlap, and neighbours are 0 to ``2 * gap`` pixels apart (``gap``
         on average), so that their edges cannot simply be matched
      -> optionally colour jitter (a random shift per tile and channel) or
         channel dropping (one random channel kept per tile, the others replaced
         by faint noise), so that chromatic aberration cannot tell a tile's place
      -> optionally each tile standardised on its own (mean and std over its
         pixels and channels)
      -> patches (batch, n, tile_h, tile_w, C), in order.

The anti-shortcut options are those of Noroozi & Favaro (Section 3.3: gaps
between tiles, per-tile normalisation, colour jittering) and of Doersch et al.
(channel dropping).

References:
  Noroozi, Favaro. Unsupervised Learning of Visual Representations by Solving
  Jigsaw Puzzles. ECCV 2016.
  Doersch, Gupta, Efros. Unsupervised Visual Representation Learning by Context
  Prediction. ICCV 2015.
  Shuffle to Learn: Self-Supervised Learning from Permutations via
  Differentiable Ranking (ICLR 2021 submission), Section 3.3.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from shuffle_learn import _checks
from shuffle_learn.data import patches as patches_lib
from shuffle_learn.data import schema

TILE_EPS = 1e-6  # Added to a tile's variance before the square root.
DROPPED_CHANNEL_NOISE = 0.01  # Std of the noise in a dropped channel, relative to the kept channel's std.


@dataclasses.dataclass(frozen=True)
class ImageInput:
  """Images -> jigsaw tiles.

  Attributes:
    height: image height in pixels.
    width: image width in pixels.
    channels: 1 (grey) or 3 (RGB); an RGBA image's alpha is dropped by the source.
    n_rows: tiles along the height.
    n_cols: tiles along the width.
    gap: pixels a tile is smaller than its cell, along each axis (0: the tile
      is the cell).
    tile_normalization: standardise each tile on its own.
    color_jitter: the largest shift, in [0, 1] units, added to each channel of
      each tile (uniform in ``[-color_jitter, color_jitter]``); 0 for none.
    channel_drop: keep one random channel per tile, replace the others by noise.
  """

  height: int = 64
  width: int = 64
  channels: int = 3
  n_rows: int = 3
  n_cols: int = 3
  gap: int = 4
  tile_normalization: bool = True
  color_jitter: float = 0.0
  channel_drop: bool = False
  raw_key: ClassVar[str] = schema.RAW_KEYS["image"]
  # Argument -> its field in a pre-training config.
  config_fields: ClassVar[dict[str, str]] = {
      **{name: f"image.{name}" for name in ("height", "width", "channels", "gap", "tile_normalization",
                                            "color_jitter", "channel_drop")},
      "n_rows": "pretext.n_rows", "n_cols": "pretext.n_cols"}

  def __post_init__(self):
    _checks.check_int("height", self.height, 1)
    _checks.check_int("width", self.width, 1)
    _checks.check_choice("channels", self.channels, (1, 3))
    _checks.check_int("n_rows", self.n_rows, 1, self.height)
    _checks.check_int("n_cols", self.n_cols, 1, self.width)
    if self.num_patches < 2:
      raise ValueError(f"n_rows times n_cols must be at least 2 tiles, got {self.n_rows} x {self.n_cols}.")
    cell = min(self.height // self.n_rows, self.width // self.n_cols)
    _checks.check_int("gap", self.gap, 0, cell - 1)
    _checks.check_bool("tile_normalization", self.tile_normalization)
    _checks.check_number("color_jitter", self.color_jitter, 0.0)
    _checks.check_bool("channel_drop", self.channel_drop)

  @property
  def num_patches(self) -> int:
    return self.n_rows * self.n_cols

  @property
  def cell_shape(self) -> tuple[int, int]:
    return self.height // self.n_rows, self.width // self.n_cols

  @property
  def patch_shape(self) -> tuple[int, int, int]:
    """``(tile_h, tile_w, channels)``."""
    cell_h, cell_w = self.cell_shape
    return cell_h - self.gap, cell_w - self.gap, self.channels

  def __call__(self, images: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """``(batch, H, W, C)`` -> tiles ``(batch, n, tile_h, tile_w, C)``; ``key`` None: centred, no colour change."""
    images = jnp.asarray(images)
    if images.shape[1:] != (self.height, self.width, self.channels):
      raise ValueError(f"images must be (batch, {self.height}, {self.width}, {self.channels}), got {images.shape}.")
    if jnp.issubdtype(images.dtype, jnp.integer):
      images = images.astype(jnp.float32) / 255.0
    cells = patches_lib.to_patches(images.astype(jnp.float32), self.n_rows, self.n_cols, crop="end",
                                   channels_last=True)  # (batch, n, cell_h, cell_w, C)
    tile_h, tile_w, _ = self.patch_shape
    batch, n = cells.shape[:2]
    if key is None:
      offsets = jnp.full((batch, n, 2), self.gap // 2, jnp.int32)
    else:
      crop_key, jitter_key, drop_key, noise_key = jax.random.split(key, 4)
      offsets = jax.random.randint(crop_key, (batch, n, 2), 0, self.gap + 1, dtype=jnp.int32)

    def crop(cell, offset):
      return jax.lax.dynamic_slice(cell, (offset[0], offset[1], 0), (tile_h, tile_w, self.channels))

    tiles = jax.vmap(jax.vmap(crop))(cells, offsets)
    if key is not None and self.color_jitter:
      shift = jax.random.uniform(jitter_key, (batch, n, 1, 1, self.channels), minval=-self.color_jitter,
                                 maxval=self.color_jitter)
      tiles = tiles + shift
    if key is not None and self.channel_drop and self.channels > 1:
      kept = jax.random.randint(drop_key, (batch, n), 0, self.channels)
      keep = jax.nn.one_hot(kept, self.channels, dtype=tiles.dtype)[:, :, None, None, :]
      kept_std = jnp.sum(tiles * keep, axis=-1, keepdims=True).std(axis=(-3, -2), keepdims=True)
      noise = jax.random.normal(noise_key, tiles.shape) * DROPPED_CHANNEL_NOISE * kept_std
      tiles = tiles * keep + noise * (1 - keep)
    if self.tile_normalization:
      mean = tiles.mean(axis=(-3, -2, -1), keepdims=True)
      var = tiles.var(axis=(-3, -2, -1), keepdims=True)
      tiles = (tiles - mean) * jax.lax.rsqrt(var + TILE_EPS)
    return tiles

  def dummy(self, batch_size: int = 1) -> np.ndarray:
    return np.zeros((batch_size, self.height, self.width, self.channels), np.uint8)

  def host(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """Images as they are (uint8 stays uint8: a quarter of the bytes to move)."""
    return np.asarray(batch[self.raw_key])
