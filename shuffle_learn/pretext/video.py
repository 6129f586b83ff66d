"""Video input of the pretext task: every frame one patch, recovering the temporal order.

    videos (batch, T, H, W, C), uint8 or float
      -> float32 in [0, 1]
      -> optionally each clip standardised (mean and std over all its frames),
         which keeps the frames' levels relative to each other
      -> patches (batch, T, H, W, C): frame t is patch t
         (`shuffle_learn.data.patches.frames_as_patches`).

References:
  Shuffle to Learn: Self-Supervised Learning from Permutations via
  Differentiable Ranking (ICLR 2021 submission), Section 3.2: 20 frames of
  something-something, all 20! permutations.
  Misra, Zitnick, Hebert. Shuffle and Learn: Unsupervised Learning using
  Temporal Order Verification. ECCV 2016.
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

NORMALIZATIONS = ("none", "example")
NORMALIZE_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class VideoInput:
  """Clips -> frames as patches.

  Attributes:
    num_frames: T, the number of patches (the paper: 20).
    height: frame height in pixels.
    width: frame width in pixels.
    channels: 1 or 3.
    normalization: ``"example"`` standardises each clip, ``"none"`` keeps [0, 1].
  """

  num_frames: int = 20
  height: int = 32
  width: int = 32
  channels: int = 3
  normalization: str = "example"
  raw_key: ClassVar[str] = schema.RAW_KEYS["video"]
  # Argument -> its field in a pre-training config.
  config_fields: ClassVar[dict[str, str]] = {
      name: f"video.{name}" for name in ("num_frames", "height", "width", "channels", "normalization")}

  def __post_init__(self):
    _checks.check_int("num_frames", self.num_frames, 2)
    _checks.check_int("height", self.height, 1)
    _checks.check_int("width", self.width, 1)
    _checks.check_choice("channels", self.channels, (1, 3))
    _checks.check_choice("normalization", self.normalization, NORMALIZATIONS)

  @property
  def num_patches(self) -> int:
    return self.num_frames

  @property
  def patch_shape(self) -> tuple[int, int, int]:
    return self.height, self.width, self.channels

  def __call__(self, videos: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """``(batch, T, H, W, C)`` -> patches ``(batch, T, H, W, C)`` float32; ``key`` is unused."""
    del key
    videos = jnp.asarray(videos)
    expected = (self.num_frames,) + self.patch_shape
    if videos.shape[1:] != expected:
      raise ValueError(f"videos must be (batch, {', '.join(map(str, expected))}), got {videos.shape}.")
    if jnp.issubdtype(videos.dtype, jnp.integer):
      videos = videos.astype(jnp.float32) / 255.0
    videos = patches_lib.frames_as_patches(videos.astype(jnp.float32), channels_last=True)
    if self.normalization == "example":
      mean = videos.mean(axis=(-4, -3, -2, -1), keepdims=True)
      var = videos.var(axis=(-4, -3, -2, -1), keepdims=True)
      videos = (videos - mean) * jax.lax.rsqrt(var + NORMALIZE_EPS)
    return videos

  def dummy(self, batch_size: int = 1) -> np.ndarray:
    return np.zeros((batch_size, self.num_frames) + self.patch_shape, np.uint8)

  def host(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.asarray(batch[self.raw_key])
