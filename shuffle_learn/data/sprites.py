"""Sprites for `moving_sprites`: images cut out and fitted to a size, and the built-in procedural shapes.

`prepare_sprite` turns any image into the premultiplied RGBA array that
`moving_sprites.render` composites: fitted into ``size`` (aspect ratio kept,
Pillow's BOX when shrinking, bilinear when enlarging, premultiplied), with a
transparent 1-pixel border. Its alpha is the image's own (C = 4); otherwise a
pixel is opaque if any channel differs by more than ``MASK_THRESHOLD`` from the
median colour of the image's border, and the holes of that mask
(background-coloured regions that do not reach the border, such as the whites
of an emoji's eyes) are filled. `shapes_sprites` are the default sprites when
no image set is given.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw

from shuffle_learn import _checks

NUM_SHAPES = 1000  # Sprites of the built-in `shapes_sprites` set.
MASK_THRESHOLD = 32  # Of 255: how far from the border colour a pixel of an image without alpha is opaque.


def check_size(name: str, value) -> tuple[int, int]:
  """``value`` as ``(height, width)``, positive integers."""
  value = _checks.check_ints(name, value, 1, 1 << 14)
  if len(value) != 2:
    raise ValueError(f"{name} must be (height, width), got {value!r}.")
  return value


class ShapeSprites:
  """``n`` procedural sprites, ``{"image": uint8 (h, w, 4)}``: irregular coloured polygons with an off-centre dot.

  The polygons are asymmetric and the dot marks an orientation, so rotation is
  visible. Sprite ``i`` depends only on (seed, i); drawn at 4x and shrunk, so
  edges are antialiased.
  """

  def __init__(self, n: int, size: Sequence[int] = (16, 16), seed: int = 0):
    self.n, self.size = _checks.check_int("n", n, 1), check_size("size", size)
    self.seed = _checks.check_int("seed", seed, 0)

  def __len__(self) -> int:
    return self.n

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not 0 <= index < self.n:
      raise IndexError(f"index {index} out of range for {self.n} sprites.")
    rng = np.random.default_rng((self.seed, index))
    height, width = self.size[0] * 4, self.size[1] * 4
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    num_vertices = int(rng.integers(3, 8))
    angles = (np.arange(num_vertices) + rng.uniform(-0.3, 0.3, num_vertices)) * 2 * np.pi / num_vertices
    angles += rng.uniform(0, 2 * np.pi)  # Jittered, not sorted uniform: no sliver polygons.
    radii = rng.uniform(0.55, 1.0, num_vertices)
    centre = np.array([width, height]) / 2
    half = np.array([width, height]) / 2 - 1
    vertices = centre + half * radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    colour, dot = rng.integers(40, 256, (2, 3))
    dot = np.where(np.abs(dot - colour) < 64, 255 - colour, dot)  # Visible against the fill.
    draw.polygon([tuple(v) for v in vertices], fill=(*map(int, colour), 255))
    spot = (centre + vertices[int(np.argmax(radii))]) / 2  # Halfway to the farthest vertex.
    r = min(width, height) / 8
    draw.ellipse([spot[0] - r, spot[1] - r, spot[0] + r, spot[1] + r], fill=(*map(int, dot), 255))
    image = image.resize((self.size[1], self.size[0]), Image.Resampling.BOX)
    return {"image": np.asarray(image, np.uint8)}

  def __repr__(self) -> str:
    return f"ShapeSprites(n={self.n}, size={self.size}, seed={self.seed})"


def shapes_sprites(n: int = NUM_SHAPES, size: Sequence[int] = (16, 16), seed: int = 0) -> ShapeSprites:
  """The built-in sprites: ``n`` procedural coloured shapes of ``size = (height, width)``."""
  return ShapeSprites(n, size, seed)


def _fill_holes(opaque: np.ndarray) -> np.ndarray:
  """``opaque`` with every transparent region that does not reach the border made opaque."""
  outside = np.zeros_like(opaque)
  outside[[0, -1], :], outside[:, [0, -1]] = True, True
  outside &= ~opaque
  while True:
    grown = outside.copy()
    grown[1:] |= outside[:-1]
    grown[:-1] |= outside[1:]
    grown[:, 1:] |= outside[:, :-1]
    grown[:, :-1] |= outside[:, 1:]
    grown &= ~opaque
    if np.array_equal(grown, outside):
      return ~outside
    outside = grown


def prepare_sprite(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
  """An image -> float32 ``(h + 2, w + 2, 4)`` premultiplied RGBA fitted into ``size``, as the module says."""
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or 0 in image.shape:
    raise ValueError(f"sprite images must be uint8 (h, w, 1, 3 or 4), got {image.dtype} {image.shape}.")
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  if image.shape[-1] == 3:
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    distance = np.abs(image.astype(np.int16) - np.median(border, axis=0).astype(np.int16)).max(axis=-1)
    opaque = _fill_holes(distance > MASK_THRESHOLD)
    if not opaque.any():
      opaque[:] = True
    image = np.concatenate([image, np.where(opaque, 255, 0).astype(np.uint8)[..., None]], axis=-1)
  height, width = size
  ratio = min(height / image.shape[0], width / image.shape[1])
  fitted = (max(1, round(image.shape[1] * ratio)), max(1, round(image.shape[0] * ratio)))
  picture = Image.fromarray(image)  # uint8 (h, w, 4): RGBA.
  if picture.size != fitted:  # Pillow resamples RGBA premultiplied.
    picture = picture.resize(fitted, Image.Resampling.BOX if ratio < 1 else Image.Resampling.BILINEAR)
  canvas = np.zeros((height + 2, width + 2, 4), np.uint8)
  top, left = 1 + (height - fitted[1]) // 2, 1 + (width - fitted[0]) // 2
  canvas[top:top + fitted[1], left:left + fitted[0]] = np.asarray(picture)
  sprite = canvas.astype(np.float32) / 255.0
  sprite[..., :3] *= sprite[..., 3:]
  return sprite
