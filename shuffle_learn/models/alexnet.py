"""AlexNet-style backbone for one patch: a conv / ReLU / max-pool stack, then fc6.

The per-patch network of the Context Free Network (Noroozi & Favaro 2016,
Section 3.1), which is AlexNet (Krizhevsky et al. 2012) up to fc6. `CFN`
(`shuffle_learn.models.cfn`) applies it, with shared weights, to every patch.

Normalisation: there is no BatchNorm. BatchNorm would need mutable
``batch_stats``, a train step that threads them and differs between train and
eval, and it mixes examples of a batch. Instead `AlexNetSize.layer_norm`
optionally puts a LayerNorm over channels after every convolution (per
example, per patch, per position: no state, the same in train and eval,
deterministic), on for `PAPER` (five convolutions deep) and off for `SMALL`.

Sizes (`AlexNetSize`):

- `PAPER`: AlexNet convolutions 96-256-384-384-256, kernels 11/5/3/3/3,
  strides 4/1/1/1/1 with 'SAME' padding, 3x3 max-pools of stride 2 after
  conv1, conv2 and conv5, fc6 1024 per patch and fc7 4096 (as in the CFN),
  dropout 0.5 after fc6 and fc7. A pool whose window is larger than the
  current feature map is shrunk to it, so an axis never shrinks below 1 and
  thin bands (a 51 x 398 band, or 6 x 398) still work; the only limit is that
  each axis of a patch has at least the product of the conv strides in pixels
  (`AlexNetSize.min_patch_shape`: 4 x 4 for `PAPER` and `SMALL`).
- `SMALL`: CPU-sized: convolutions 16-32-64, kernel 3, strides 4/1/1, 2x2
  max-pools after each, fc6 128 per patch, fc7 256, no dropout (timings in
  ``docs/models.md``).
- `SMALL_BANDS`: `SMALL` whose first convolution strides along time only, for
  frequency bands a few bins tall.
- `TINY`: two convolutions 8-16, fc6 32, fc7 64, for tests and the tiny
  config.

References:
  Noroozi, Favaro. Unsupervised Learning of Visual Representations by Solving
  Jigsaw Puzzles. ECCV 2016, Section 3.1 (the Context Free Network).
  Krizhevsky, Sutskever, Hinton. ImageNet Classification with Deep
  Convolutional Neural Networks. NeurIPS 2012.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn
import jax

from shuffle_learn import _checks
from shuffle_learn.models import _backbone
from shuffle_learn.models._backbone import Stride


@dataclasses.dataclass(frozen=True)
class AlexNetSize(_backbone.Size):
  """Layer sizes of the AlexNet backbone and of the CFN's fc7 above it.

  Attributes:
    conv_features: output channels of each convolution.
    kernel_sizes: square kernel size of each convolution.
    strides: stride of each convolution ('SAME' padding): an integer (the same
      along height and width) or a ``(height, width)`` pair.
    pool_after: whether a max-pool follows each convolution.
    pool_window: max-pool window; shrunk per axis to the feature map's size.
    pool_stride: max-pool stride; shrunk per axis to the feature map's size.
    patch_features, embedding, dropout_rate, layer_norm: keyword-only, see
      `_backbone.Size`.
  """

  conv_features: tuple[int, ...]
  kernel_sizes: tuple[int, ...]
  strides: tuple[Stride, ...]
  pool_after: tuple[bool, ...]
  pool_window: int = 3
  pool_stride: int = 2

  def __post_init__(self):
    num_layers = _backbone.check_layers(self, ("conv_features", "kernel_sizes"), per="convolution")
    _backbone.check_strides("strides", self.strides, num_layers)
    if len(self.pool_after) != num_layers or not all(isinstance(v, bool) for v in self.pool_after):
      raise ValueError(f"pool_after must be {num_layers} bools (one per convolution), got {self.pool_after!r}.")
    _checks.check_int("pool_window", self.pool_window, 1)
    _checks.check_int("pool_stride", self.pool_stride, 1)
    super().__post_init__()

  @property
  def conv_channels(self) -> int:
    """Channels of the last convolution: `AlexNet`'s conv features are twice as wide."""
    return self.conv_features[-1]

  def stride_pairs(self) -> tuple[tuple[int, int], ...]:
    """The strides as ``(height, width)`` pairs."""
    return tuple(map(_backbone.stride_pair, self.strides))

  def feature_map_shape(self, height: int, width: int) -> Optional[tuple[int, int]]:
    """Spatial shape after the convolution stack, or None if the patch is too small."""
    shape = [height, width]
    if any(s < m for s, m in zip(shape, self.min_patch_shape())):
      return None
    for stride, pool in zip(self.stride_pairs(), self.pool_after):
      shape = [-(-s // st) for s, st in zip(shape, stride)]  # 'SAME': ceil(s / stride).
      if pool:
        shape = [(s - min(self.pool_window, s)) // min(self.pool_stride, s) + 1 for s in shape]
    return shape[0], shape[1]

  def conv_map_shape(self, height: int, width: int) -> Optional[tuple[int, int]]:
    """Spatial shape of the last convolution's map before its pool (`AlexNet` with ``feature_map=True``).

    `feature_map_shape` without the last convolution's pool, or None if the
    patch is too small. The same as `feature_map_shape` when no pool follows
    the last convolution.
    """
    before_last = dataclasses.replace(self, pool_after=self.pool_after[:-1] + (False,))
    return before_last.feature_map_shape(height, width)

  def min_patch_shape(self) -> tuple[int, int]:
    """Smallest ``(height, width)`` accepted: the product of the conv strides per axis."""
    return _backbone.strides_product(self.strides)


PAPER = AlexNetSize(
    conv_features=(96, 256, 384, 384, 256),
    kernel_sizes=(11, 5, 3, 3, 3),
    strides=(4, 1, 1, 1, 1),
    pool_after=(True, True, False, False, True),
    layer_norm=True,
    patch_features=1024,
    embedding=4096,
    dropout_rate=0.5,
)

SMALL = AlexNetSize(
    conv_features=(16, 32, 64),
    kernel_sizes=(3, 3, 3),
    strides=(4, 1, 1),
    pool_after=(True, True, True),
    pool_window=2,
    patch_features=128,
    embedding=256,
)

# SMALL for thin frequency bands (a few mel bins tall): the first convolution
# strides along time only, so that the frequency detail inside a band (the
# spacing of harmonics, which tells both the band's position and the pitch)
# reaches the second convolution instead of being subsampled 4x.
SMALL_BANDS = dataclasses.replace(SMALL, strides=((1, 4), 1, 1))

# For tests and the tiny config: two convolutions, compiles and runs in moments.
TINY = AlexNetSize(
    conv_features=(8, 16),
    kernel_sizes=(3, 3),
    strides=(2, 2),
    pool_after=(True, True),
    pool_window=2,
    patch_features=32,
    embedding=64,
)


class AlexNet(nn.Module):
  """AlexNet-style backbone for ONE patch: conv stack, flatten, fc6.

  With ``feature_map=True`` it stops at the last convolution's activation map
  (the per-frame embeddings of `shuffle_learn.models.cfn.CFN.frame_embed`).

  Attributes:
    size: the layer sizes.
  """

  size: AlexNetSize

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               feature_map: bool = False) -> tuple[jax.Array, jax.Array] | jax.Array:
    """Maps patches to features, or to the last convolution's map.

    Args:
      x: ``(batch, height, width, channels)`` patches.
      train: apply dropout (needs a ``'dropout'`` rng).
      feature_map: return the last convolution's activation map instead, and
        create no fc6 (its parameters, if ``init`` was called with
        ``feature_map=False``, are left unused).

    Returns:
      With ``feature_map=False``, ``(fc6, conv)``: ``(batch,
      size.patch_features)`` after fc6, ReLU and dropout; and ``(batch, 2 *
      size.conv_channels)``, the last convolution's activation (after its
      ReLU, before its pool) averaged and maxed over the patch's positions.
      With ``feature_map=True``, that activation itself: ``(batch, h', w',
      size.conv_channels)`` with ``(h', w') = size.conv_map_shape(height,
      width)``.
    """
    size = self.size
    _backbone.check_patch_shape(size, x, f"size.strides {size.strides}")
    for features, kernel, stride, pool in zip(size.conv_features, size.kernel_sizes, size.stride_pairs(),
                                              size.pool_after):
      x = nn.Conv(features, (kernel, kernel), strides=stride, padding="SAME",
                  kernel_init=nn.initializers.he_normal())(x)
      if size.layer_norm:
        x = nn.LayerNorm()(x)
      x = nn.relu(x)
      conv = x  # After the loop: the last convolution's map, before its pool.
      if pool:
        window = tuple(min(size.pool_window, s) for s in x.shape[-3:-1])
        strides = tuple(min(size.pool_stride, s) for s in x.shape[-3:-1])
        x = nn.max_pool(x, window, strides=strides, padding="VALID")
    if feature_map:
      return conv
    return _backbone.fc6_and_pooled_conv(x, conv, size, train)
