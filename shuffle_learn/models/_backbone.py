"""What the per-patch backbones (`alexnet`, `resnet`) share: strides, fc6, and their checks.

Every backbone maps ONE patch to ``(fc6, conv)`` (see `alexnet.AlexNet`), or
with ``feature_map=True`` to its last feature map: its sizes extend `Size`, it
rejects patches smaller than the product of its strides with
`check_patch_shape`, and it ends in `fc6_and_pooled_conv` (`pool_map` pools a
map the same way).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from shuffle_learn import _checks

# A convolution's stride: the same along height and width, or a (height, width) pair.
Stride = Union[int, tuple[int, int]]


def is_stride(value) -> bool:
  """An integer >= 1 or a ``(height, width)`` pair of them."""
  if isinstance(value, tuple):
    return len(value) == 2 and all(_checks.is_int(s) and s >= 1 for s in value)
  return _checks.is_int(value) and value >= 1


def check_strides(name: str, strides: Sequence[Stride], count: int, per: str = "convolution") -> None:
  """Raises ValueError unless ``strides`` holds ``count`` strides (see `is_stride`), one per ``per``."""
  if len(strides) != count or not all(map(is_stride, strides)):
    raise ValueError(f"{name} must be {count} integers >= 1 or (height, width) pairs of them "
                     f"(one per {per}), got {strides!r}.")


def check_layers(size, names: Sequence[str], per: str) -> int:
  """Checks that the fields ``names`` of ``size`` hold integers >= 1, as many (at least one) as the first.

  Returns:
    The number of layers, one entry per ``per`` (``"convolution"``, ``"stage"``).
  """
  count = len(getattr(size, names[0]))
  if count < 1:
    raise ValueError(f"{names[0]} must have at least one {per}, got {getattr(size, names[0])!r}.")
  for name in names:
    value = getattr(size, name)
    if len(value) != count or not all(_checks.is_int(v) and v >= 1 for v in value):
      raise ValueError(f"{name} must be {count} integers >= 1 (one per {per}), got {value!r}.")
  return count


def stride_pair(stride: Stride) -> tuple[int, int]:
  """A stride as a ``(height, width)`` pair."""
  return stride if isinstance(stride, tuple) else (stride, stride)


def strides_product(strides: Sequence[Stride]) -> tuple[int, int]:
  """The product of ``strides`` per axis: the smallest ``(height, width)`` a strided stack accepts.

  A smaller patch would leave strided convolutions with fewer pixels than
  their stride, so that they no longer downsample but only pad.
  """
  height = width = 1
  for stride_h, stride_w in map(stride_pair, strides):
    height, width = height * stride_h, width * stride_w
  return height, width


@dataclasses.dataclass(frozen=True, kw_only=True)
class Size:
  """The fields every backbone size has (keyword-only): fc6, the CFN's fc7 above it, normalisation.

  Attributes:
    patch_features: width of fc6, the per-patch feature (shared weights).
    embedding: width of fc7, the aggregate embedding used downstream.
    dropout_rate: dropout after fc6 and fc7 when training; 0 disables it.
    layer_norm: a LayerNorm over channels after every convolution.
  """

  patch_features: int
  embedding: int
  dropout_rate: float = 0.0
  layer_norm: bool = False

  def __post_init__(self):
    _checks.check_int("patch_features", self.patch_features, 1)
    _checks.check_int("embedding", self.embedding, 1)
    _checks.check_number("dropout_rate", self.dropout_rate, 0.0)
    if self.dropout_rate >= 1.0:
      raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}.")
    _checks.check_bool("layer_norm", self.layer_norm)


def check_patch_shape(size, x: jax.Array, strides: str) -> None:
  """Raises ValueError if the patches ``x`` are smaller than ``size.min_patch_shape()``.

  Args:
    size: a backbone size, with ``feature_map_shape`` and ``min_patch_shape``.
    x: ``(batch, height, width, channels)`` patches.
    strides: the strides, as the message names them.
  """
  if size.feature_map_shape(x.shape[-3], x.shape[-2]) is None:
    raise ValueError(
        f"x: patches of shape {x.shape[-3:-1]} are too small for {strides}; "
        f"(height, width) needs at least {size.min_patch_shape()} pixels (the product of the strides).")


def fc6_and_pooled_conv(x: jax.Array, conv: jax.Array, size: Size,
                        train: bool) -> tuple[jax.Array, jax.Array]:
  """A backbone's outputs; call it inside the backbone's compact ``__call__`` (fc6 is its submodule).

  Args:
    x: ``(batch, h, w, c)``, the last feature map, flattened into fc6.
    conv: ``(batch, h', w', c)``, the last convolution's map, pooled.
    size: the sizes of fc6 and of its dropout.
    train: apply dropout (needs a ``'dropout'`` rng).

  Returns:
    ``(fc6, conv)``: ``(batch, size.patch_features)`` after fc6, ReLU and
    dropout; and ``(batch, 2 * c)``, ``conv`` averaged then maxed over its
    positions.
  """
  conv = pool_map(conv)
  x = x.reshape(x.shape[:-3] + (-1,))  # (batch, h * w * c)
  x = nn.relu(nn.Dense(size.patch_features, kernel_init=nn.initializers.he_normal(), name="fc6")(x))
  return nn.Dropout(size.dropout_rate, deterministic=not train)(x), conv


def pool_map(conv: jax.Array) -> jax.Array:
  """``(..., h, w, c)`` -> ``(..., 2 * c)``: the map averaged, then maxed, over its positions."""
  return jnp.concatenate([conv.mean(axis=(-3, -2)), conv.max(axis=(-3, -2))], axis=-1)
