"""Labelled video clips whose label depends only on frame order: sprites moving over backgrounds.

No labelled real video can be downloaded here, so `MovingSpritesSource` makes
clips in the video schema (`shuffle_learn.data.schema`),
``{"video": uint8 (T, H, W, 3), "label": int32}``, from sprite images moved in
the spirit of something-something's templates (Goyal et al. 2017). The motion
is synthetic; only the sprites may be real images. The classes come in pairs,
and each pair differs only in the direction of time (`CLASS_NAMES`; class
``c``'s partner is ``c ^ 1``):

  0 / 1    moving left to right / right to left
  2 / 3    moving up / down
  4 / 5    approaching (growing) / receding (shrinking)
  6 / 7    rotating clockwise / anticlockwise (as seen on screen)
  8 / 9    appearing (fading in, or sliding in from outside the frame) / disappearing
  10 / 11  covering (sprite A moves onto sprite B and stays) / uncovering (A starts on B and moves away)

A clip is drawn from ``np.random.default_rng((seed, split, index))``: its
sprites (from this split's share of the sprite source), its background (a
smooth colour gradient with low-frequency blotches), and its motion (scale,
start position, distance, angle, timing) for the pair's first class; a clip of
the second class is the same clip with its frames reversed (`reverse`). So any
order-free statistic of a clip (its mean frame, the set of its frames) has the
same distribution in both classes of a pair, and start and end positions
overlap across them: only the order tells a pair apart.

Sprites come from any random-access source of ``{"image": uint8 (h, w, C)}``
(C = 1, 3 or 4), such as `shuffle_learn.data.images.ImageFolderSource`, or
from `sprites.shapes_sprites` (procedural coloured polygons, the default),
cut out and fitted into ``sprite_size`` by `sprites.prepare_sprite`. `render`
composites premultiplied alpha, sampling the inverse affine map bilinearly
with NumPy index arithmetic over a box around the sprite, all frames at once.
Measurements: docs/data/moving_sprites.md.

Example:
  >>> source = MovingSpritesSource("train", num_examples=1000)
  >>> source.class_names[source[0]["label"]], source[0]["video"].shape
  ('moving left to right', (20, 32, 32, 3))

References:
  Goyal et al. The "something something" video database for learning and
  evaluating visual common sense. ICCV 2017.
  Shuffle to Learn: Self-Supervised Learning from Permutations via
  Differentiable Ranking (ICLR 2021 submission), Section 3.2 (20 frames).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from shuffle_learn import _checks
from shuffle_learn.data import images
from shuffle_learn.data import sprites as sprites_lib

SPLITS = images.SPLITS
CLASS_NAMES = (
    "moving left to right", "moving right to left", "moving up", "moving down", "approaching", "receding",
    "rotating clockwise", "rotating anticlockwise", "appearing", "disappearing", "covering", "uncovering")
_CACHE_SIZE = 4096  # Prepared sprites kept per source.
_POSE = ("centre_y", "centre_x", "scale", "angle", "opacity")


def partner(class_id: int) -> int:
  """The class whose clips are this class's clips reversed in time."""
  return class_id ^ 1


@dataclasses.dataclass(frozen=True, eq=False)
class ClipParams:
  """Everything a clip's frames depend on.

  Attributes:
    class_id: index into `CLASS_NAMES`.
    sprite_ids: the sprites' indices in the sprite source, bottom first.
    sprites: float32 ``(h + 2, w + 2, 4)`` each: premultiplied RGBA in [0, 1]
      with a transparent 1-pixel border, bottom first.
    background: float32 ``(H, W, 3)`` in [0, 1].
    poses: float64 ``(num_sprites, T, 5)``: per sprite and frame, the centre
      (y, x) in pixels, the scale (1: ``sprite_size`` pixels), the angle in
      radians (clockwise on screen) and the opacity in [0, 1].
  """

  class_id: int
  sprite_ids: tuple[int, ...]
  sprites: tuple[np.ndarray, ...]
  background: np.ndarray
  poses: np.ndarray


def reverse(params: ClipParams) -> ClipParams:
  """The same clip with time reversed: a clip of the partner class."""
  return dataclasses.replace(params, class_id=partner(params.class_id), poses=params.poses[:, ::-1].copy())


def _bilinear(sprite: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
  """``sprite`` (h, w, 4) sampled at fractional (rows, cols); outside it, its (transparent) edge."""
  height, width = sprite.shape[:2]
  rows, cols = np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)
  row0, col0 = np.minimum(rows.astype(np.intp), height - 2), np.minimum(cols.astype(np.intp), width - 2)
  frac_rows = (rows - row0).astype(np.float32)[..., None]
  frac_cols = (cols - col0).astype(np.float32)[..., None]
  pixels, corner = sprite.reshape(-1, 4), row0 * width + col0
  top = pixels.take(corner, axis=0)
  top += (pixels.take(corner + 1, axis=0) - top) * frac_cols
  bottom = pixels.take(corner + width, axis=0)
  bottom += (pixels.take(corner + width + 1, axis=0) - bottom) * frac_cols
  return top + (bottom - top) * frac_rows


def _composite(canvas: np.ndarray, sprite: np.ndarray, poses: np.ndarray) -> None:
  """Draws ``sprite`` at ``poses`` (T, 5) over ``canvas`` (T, H + 1, W + 1, 3), in place.

  Every frame's square box around the sprite is sampled at once; box pixels
  outside the frame go to the canvas's last row and column, which `render`
  drops. Each pixel's value depends only on its frame's pose.
  """
  height, width = canvas.shape[1] - 1, canvas.shape[2] - 1
  centre_y, centre_x, scale, angle, opacity = poses.T  # (T,) each
  opacity = np.where(scale > 0, opacity, 0.0)
  if not np.any(opacity > 0):
    return
  scale = np.where(scale > 0, scale, 1.0)
  sprite_height, sprite_width = sprite.shape[0] - 2, sprite.shape[1] - 2
  box = math.ceil(scale.max() * math.hypot(sprite_height, sprite_width)) + 3
  ys = np.floor(centre_y - box / 2).astype(np.intp)[:, None] + np.arange(box)  # (T, box)
  xs = np.floor(centre_x - box / 2).astype(np.intp)[:, None] + np.arange(box)
  dy = (ys + 0.5 - centre_y[:, None]).astype(np.float32)[:, :, None]  # (T, box, 1)
  dx = (xs + 0.5 - centre_x[:, None]).astype(np.float32)[:, None, :]  # (T, 1, box)
  # math, not np: the same bits for an angle whatever its frame (NumPy's SIMD and scalar loops may differ).
  cos = (np.array([math.cos(a) for a in angle]) / scale).astype(np.float32)[:, None, None]
  sin = (np.array([math.sin(a) for a in angle]) / scale).astype(np.float32)[:, None, None]
  # The inverse of screen = centre + scale * rotation(angle) @ sprite, in padded-sprite pixel indices.
  sample = _bilinear(sprite, cos * dy - sin * dx + (sprite_height / 2 + 0.5),
                     cos * dx + sin * dy + (sprite_width / 2 + 0.5))  # (T, box, box, 4)
  rows = np.where((ys >= 0) & (ys < height), ys, height) + np.arange(len(poses))[:, None] * (height + 1)
  cols = np.where((xs >= 0) & (xs < width), xs, width)
  pixels = canvas.reshape(-1, 3)
  index = rows[:, :, None] * (width + 1) + cols[:, None, :]  # (T, box, box) into pixels.
  weight = opacity.astype(np.float32)[:, None, None, None]
  region = pixels.take(index, axis=0)  # (T, box, box, 3)
  pixels[index] = region * (1 - weight * sample[..., 3:]) + weight * sample[..., :3]


def render(params: ClipParams) -> np.ndarray:
  """A clip's frames, uint8 ``(T, H, W, 3)``; frame t depends only on ``params.poses[:, t]``."""
  num_frames = params.poses.shape[1]
  height, width = params.background.shape[:2]
  canvas = np.zeros((num_frames, height + 1, width + 1, 3), np.float32)  # (T, H + 1, W + 1, 3)
  canvas[:, :height, :width] = params.background
  for sprite, poses in zip(params.sprites, params.poses):
    _composite(canvas, sprite, poses)
  return (np.clip(canvas[:, :height, :width], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# Backgrounds and motions: each motion draws the poses of its pair's first class.


def _background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
  """A smooth colour gradient in a random direction plus bilinear 3x3 colour blotches, float32 (H, W, 3)."""
  height, width = size
  ends, direction = rng.uniform(0.0, 1.0, (2, 3)), rng.uniform(0.0, 2 * np.pi)
  blotches = rng.uniform(-0.15, 0.15, (3, 3, 3))
  ys, xs = (np.arange(height) + 0.5) / height - 0.5, (np.arange(width) + 0.5) / width - 0.5
  cos, sin = math.cos(direction), math.sin(direction)
  ramp = 0.5 + (cos * xs[None, :] + sin * ys[:, None]) / (abs(cos) + abs(sin))  # In [0, 1].
  hat = lambda coords: np.clip(1 - np.abs((coords + 0.5) * 2 - np.arange(3)[:, None]), 0, 1)  # (3, n)
  image = ends[0] + (ends[1] - ends[0]) * ramp[..., None] + np.einsum("ky,klc,lx->yxc", hat(ys), blotches, hat(xs))
  return np.clip(image, 0.0, 1.0).astype(np.float32)


def _centre(rng, frame, half) -> list[float]:
  """A centre (y, x) keeping ``half`` (y, x) pixels of extent inside ``frame`` (the middle where too big)."""
  return [rng.uniform(h, f - h) if 2 * h < f else f / 2 for h, f in zip(half, frame)]


def _poses(num_frames: int, **columns) -> np.ndarray:
  """float64 (T, 5) from per-pose-field scalars or (T,) arrays; absent fields: scale 1, angle 0, opacity 1."""
  columns = {"scale": 1.0, "angle": 0.0, "opacity": 1.0, **columns}
  return np.stack([np.broadcast_to(np.asarray(columns[name], np.float64), (num_frames,)) for name in _POSE], -1)


def _move(axis: int, sign: float):
  """Moving along ``axis`` (0: y, 1: x) by a random distance, ``sign`` +1 towards larger coordinates."""

  def draw(rng, frame, sprite, ramp, warp):
    ramp = warp(ramp)
    scale = rng.uniform(0.6, 1.0)
    half = scale * np.asarray(sprite) / 2
    centre = _centre(rng, frame, half)
    low, high = half[axis], max(frame[axis] - half[axis], half[axis])
    distance = rng.uniform(0.25, 0.75) * (high - low)
    start = rng.uniform(low, high - distance) if sign > 0 else rng.uniform(low + distance, high)
    centre[axis] = start + sign * distance * ramp
    return _poses(ramp.size, centre_y=centre[0], centre_x=centre[1], scale=scale,
                  angle=rng.uniform(-np.pi / 8, np.pi / 8))[None]

  return draw


def _approach(rng, frame, sprite, ramp, warp):
  ramp = warp(ramp)
  scale = rng.uniform(0.35, 0.55) * rng.uniform(1.8, 2.8) ** ramp  # Geometric, as an object nearing a camera.
  centre_y, centre_x = _centre(rng, frame, scale[-1] * np.asarray(sprite) / 2)
  return _poses(ramp.size, centre_y=centre_y, centre_x=centre_x, scale=scale,
                angle=rng.uniform(-np.pi / 8, np.pi / 8))[None]


def _rotate(rng, frame, sprite, ramp, warp):
  ramp = warp(ramp)
  scale = rng.uniform(0.7, 1.0)
  centre_y, centre_x = _centre(rng, frame, scale * np.asarray(sprite) / 2)
  angle = rng.uniform(0, 2 * np.pi) + rng.uniform(np.pi / 2, 3 * np.pi / 2) * ramp  # Clockwise on screen.
  return _poses(ramp.size, centre_y=centre_y, centre_x=centre_x, scale=scale, angle=angle)[None]


def _appear(rng, frame, sprite, ramp, warp):
  num_frames = ramp.size
  scale = rng.uniform(0.6, 1.0)
  half = scale * np.asarray(sprite) / 2
  centre = _centre(rng, frame, half)
  start = int(rng.integers(0, max(1, num_frames // 2)))
  end = int(rng.integers(start + 1, num_frames))
  progress = warp(np.clip((np.arange(num_frames) - start) / (end - start), 0.0, 1.0))
  angle = rng.uniform(-np.pi / 8, np.pi / 8)
  if rng.integers(2) == 0:  # Fading in.
    return _poses(num_frames, centre_y=centre[0], centre_x=centre[1], scale=scale, angle=angle, opacity=progress)[None]
  edge = int(rng.integers(4))  # Sliding in from outside the frame across edge top, left, bottom or right.
  axis, radius = edge % 2, scale * math.hypot(*sprite) / 2 + 1
  outside = -radius if edge < 2 else frame[axis] + radius
  centre[axis] = outside + (centre[axis] - outside) * progress
  return _poses(num_frames, centre_y=centre[0], centre_x=centre[1], scale=scale, angle=angle)[None]


def _cover(rng, frame, sprite, ramp, warp):
  num_frames, sprite = ramp.size, np.asarray(sprite)
  scale_b, scale_a = rng.uniform(0.5, 0.7), rng.uniform(0.85, 1.05)
  half_a = scale_a * sprite / 2
  centre_b = np.array(_centre(rng, frame, scale_b * sprite / 2))
  end = centre_b + rng.uniform(-0.1, 0.1, 2) * sprite
  candidates = np.stack([rng.uniform(half_a[i], max(frame[i] - half_a[i], half_a[i]), 16) for i in (0, 1)], -1)
  distance = np.linalg.norm(candidates - centre_b, axis=-1)
  apart = distance >= (scale_a + scale_b) * sprite.max() / 2
  start = candidates[np.argmax(apart) if apart.any() else np.argmax(distance)]
  stop = int(rng.integers(max(1, num_frames // 2), num_frames - 1))  # A rests from frame `stop` on.
  centre_a = start + (end - start) * warp(np.minimum(np.arange(num_frames) / stop, 1.0))[:, None]
  bottom = _poses(num_frames, centre_y=centre_b[0], centre_x=centre_b[1], scale=scale_b,
                  angle=rng.uniform(-np.pi / 8, np.pi / 8))
  top = _poses(num_frames, centre_y=centre_a[:, 0], centre_x=centre_a[:, 1], scale=scale_a,
               angle=rng.uniform(-np.pi / 8, np.pi / 8))
  return np.stack([bottom, top])


# Per pair of classes (class // 2): (rng, frame (H, W), sprite (h, w), ramp (T,) 0 -> 1, warp) -> poses (sprites, T, 5);
# ``warp`` maps the motion's progress in [0, 1] to [0, 1] (`TIMINGS`).
_MOTIONS = (_move(1, 1.0), _move(0, -1.0), _approach, _rotate, _appear, _cover)

# How a motion's progress runs in time, for the pair's even (drawn) and odd (drawn, then reversed) class:
# "linear": at a constant rate, so a clip's reverse is the partner clip and both are equally likely;
# "decelerating": slowing down in the direction of the class (an ease-out, 1 - (1 - t)^2, for the even
# class; an ease-in, t^2, reversed, for the odd one), as sliding objects slow down;
# "forward": at a constant rate, every clip drawn as its pair's even class, so time runs one way.
TIMINGS = {
    "linear": (lambda t: t, lambda t: t),
    "decelerating": (lambda t: 1.0 - np.square(1.0 - t), np.square),
    "forward": (lambda t: t, lambda t: t),
}


# The source.


class MovingSpritesSource:
  """grain-compatible random-access source of labelled synthetic clips, in the video schema.

  Example ``index`` has class ``classes[index % num_classes]`` (balanced) and
  its draws come from ``np.random.default_rng((seed, split, index))``, so
  splits never share a clip's draws.

  Args:
    split: "train", "valid" or "test".
    num_examples: the number of clips in the split.
    num_frames: T (the paper: 20); at least 3.
    size: ``(height, width)`` of the frames.
    sprite_size: ``(height, width)`` of a sprite at scale 1 (clips draw
      scales between about 0.35 and 1.55).
    sprites: a random-access source of ``{"image": uint8 (h, w, C)}``, or None
      for ``sprites.shapes_sprites(sprites.NUM_SHAPES, sprite_size)``.
    seed: the clips' seed.
    classes: the class ids (indices into `CLASS_NAMES`) to draw, each with its
      partner; None for all 12. ``label`` indexes this tuple, sorted.
    split_sprites: True: ``sprites`` holds every split's images, and sprite
      ``i`` belongs to split `images.split_of(str(i))` (80/10/10, so test clips
      use sprites never seen in train); False: ``sprites`` is this split's
      images already (e.g. ``ImageFolderSource(root, split)``, whose split
      keeps near-duplicates together) and all of them are used.
    timing: how motions run in time (`TIMINGS`). ``"linear"``: a clip of an
      odd class is the even clip reversed, so only order tells a pair apart,
      and a clip and its reverse are equally likely: a frame-order pretext
      has nothing to learn from them (the expected rank of every frame is the
      same). Two arrows of time: ``"decelerating"``, every motion slows down in
      its class's direction (a clip's reverse speeds up, which no clip does);
      ``"forward"``, every clip is drawn as its pair's even class (sprites
      move right and up, approach, turn clockwise, appear, cover), for
      unlabelled pre-training clips.

  Attributes:
    class_names: the names of ``classes``; ``label`` indexes them.
    sprite_indices: int64, this split's sprites (indices into ``sprites``).
  """

  def __init__(self, split: str = "train", *, num_examples: int, num_frames: int = 20,
               size: Sequence[int] = (32, 32), sprite_size: Sequence[int] = (16, 16), sprites=None,
               seed: int = 0, classes: Sequence[int] | None = None, split_sprites: bool = True,
               timing: str = "linear"):
    self.split = _checks.check_choice("split", split, SPLITS)
    self.num_examples = _checks.check_int("num_examples", num_examples, 1)
    self.num_frames = _checks.check_int("num_frames", num_frames, 3)
    self.size = sprites_lib.check_size("size", size)
    self.sprite_size = sprites_lib.check_size("sprite_size", sprite_size)
    self.seed = _checks.check_int("seed", seed, 0)
    self.timing = _checks.check_choice("timing", timing, tuple(TIMINGS))
    if classes is None:
      classes = range(len(CLASS_NAMES))
    self.classes = _checks.check_ints("classes", tuple(classes), 0, len(CLASS_NAMES) - 1, distinct=True)
    unpaired = [c for c in self.classes if partner(c) not in self.classes]
    if unpaired:
      raise ValueError(f"classes must hold each class with its time-reversed partner, missing "
                       f"{[partner(c) for c in unpaired]} for {unpaired}.")
    self.split_sprites = _checks.check_bool("split_sprites", split_sprites)
    if sprites is None:
      sprites = sprites_lib.shapes_sprites(sprites_lib.NUM_SHAPES, self.sprite_size)
    self.sprites = sprites
    if not (hasattr(self.sprites, "__len__") and hasattr(self.sprites, "__getitem__")) or not len(self.sprites):
      raise ValueError(f"sprites must be a non-empty random-access source of images, got {sprites!r}.")
    indices = range(len(self.sprites))
    if split_sprites:
      indices = [i for i in indices if images.split_of(str(i)) == split]
    if not indices:
      raise ValueError(f"sprites has no images in the {split!r} split (of {len(self.sprites)}; sprite i is in "
                       f"split_of(str(i))): give more sprites.")
    self.sprite_indices = np.asarray(indices, np.int64)
    self._label = {c: i for i, c in enumerate(self.classes)}
    self._cache: dict[int, np.ndarray] = {}
    self._sprite(int(self.sprite_indices[0]))  # A bad sprite source fails here, not in a worker.

  @property
  def num_classes(self) -> int:
    return len(self.classes)

  @property
  def class_names(self) -> tuple[str, ...]:
    return tuple(CLASS_NAMES[c] for c in self.classes)

  def _sprite(self, index: int) -> np.ndarray:
    if index not in self._cache:
      if len(self._cache) >= _CACHE_SIZE:
        self._cache.clear()
      try:
        self._cache[index] = sprites_lib.prepare_sprite(self.sprites[index]["image"], self.sprite_size)
      except ValueError as e:
        raise ValueError(f"sprites[{index}]: {e}") from None
    return self._cache[index]

  def params(self, index: int, class_id: int | None = None) -> ClipParams:
    """Clip ``index``'s draws, as a clip of its own class or, with the same draws, of ``class_id``."""
    if not 0 <= index < self.num_examples:
      raise IndexError(f"index {index} out of range for {self.num_examples} clips.")
    if class_id is None:
      class_id = self.classes[index % self.num_classes]
      if self.timing == "forward":
        class_id -= class_id % 2
    _checks.check_int("class_id", class_id, 0, len(CLASS_NAMES) - 1)
    rng = np.random.default_rng((self.seed, SPLITS.index(self.split), index))
    count = len(self.sprite_indices)
    first = rng.integers(count)
    offset = rng.integers(1, count) if count > 1 else 0  # A second, different sprite when there is one.
    sprite_ids = (int(self.sprite_indices[first]), int(self.sprite_indices[(first + offset) % count]))
    background = _background(rng, self.size)
    ramp = np.linspace(0.0, 1.0, self.num_frames)
    poses = _MOTIONS[class_id // 2](rng, self.size, self.sprite_size, ramp, TIMINGS[self.timing][class_id % 2])
    sprite_ids = sprite_ids[:len(poses)]
    params = ClipParams(class_id - class_id % 2, sprite_ids, tuple(self._sprite(i) for i in sprite_ids),
                        background, poses)
    return reverse(params) if class_id % 2 else params

  def __len__(self) -> int:
    return self.num_examples

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    params = self.params(index)
    return {"video": render(params), "label": np.int32(self._label[params.class_id])}

  def __repr__(self) -> str:
    return (f"MovingSpritesSource({self.split!r}, num_examples={self.num_examples}, num_frames={self.num_frames}, "
            f"size={self.size}, sprite_size={self.sprite_size}, sprites={self.sprites!r}, seed={self.seed}, "
            f"classes={self.classes}, timing={self.timing!r}): {len(self.sprite_indices)} sprites")
