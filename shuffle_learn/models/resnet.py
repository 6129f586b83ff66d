"""ResNet-style backbone for one patch: a stem convolution, stages of basic residual blocks, then fc6.

A small residual network (He et al. 2016) with the interface of
`shuffle_learn.models.alexnet.AlexNet`, so that the CFN (`shuffle_learn.models.cfn`)
can apply either to every patch. The layout follows He et al.'s CIFAR networks
(Section 4.2): a 3x3 stem convolution, then stages of basic blocks (two 3x3
convolutions, added to an identity shortcut, or to a 1x1 projection where the
block changes the stride or the channels: option B of Section 3.3), the
first block of each stage carrying the stage's stride. As in AlexNet's fc6
(and unlike He et al.'s global average pool), the last feature map is
flattened into a dense layer, which keeps where in the patch things are.

There is no BatchNorm, for the reasons given in `shuffle_learn.models.alexnet`:
`ResNetSize.layer_norm` puts a LayerNorm over channels after every
convolution instead (stateless, the same in train and eval, per example and
position), and the convolutions it follows have no bias.

Sizes (`ResNetSize`):

- `RESNET_SMALL`: for image tiles (e.g. 32 x 32 x 3): stem 16 channels of
  stride 1, three stages of one block each with 16-32-64 channels and strides
  1-2-2 (He et al.'s CIFAR ResNet with n = 1, 8 layers), LayerNorm, fc6 128
  per patch, fc7 256, no dropout.
- `RESNET_TINY`: stem 8, two stages 8-16 of strides 1-2, fc6 32, fc7 64, for
  tests.

References:
  He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR
  2016, Sections 3.3 (shortcuts) and 4.2 (the CIFAR networks).
  Noroozi, Favaro. Unsupervised Learning of Visual Representations by Solving
  Jigsaw Puzzles. ECCV 2016, Section 3.1 (the Context Free Network).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import flax.linen as nn
import jax

from shuffle_learn import _checks
from shuffle_learn.models import _backbone
from shuffle_learn.models._backbone import Stride


@dataclasses.dataclass(frozen=True)
class ResNetSize(_backbone.Size):
  """Layer sizes of the ResNet backbone and of the CFN's fc7 above it.

  Attributes:
    stage_features: output channels of each stage's blocks.
    stage_strides: stride of each stage's first block ('SAME' padding): an
      integer (the same along height and width) or a ``(height, width)`` pair.
    blocks_per_stage: number of basic blocks in each stage.
    stem_features: output channels of the stem convolution.
    stem_stride: stride of the stem convolution, an integer or a pair.
    layer_norm: a LayerNorm over channels after every convolution, which then
      has no bias; on by default.
    patch_features, embedding, dropout_rate: keyword-only, see `_backbone.Size`.
  """

  stage_features: tuple[int, ...]
  stage_strides: tuple[Stride, ...]
  blocks_per_stage: tuple[int, ...]
  stem_features: int = 16
  stem_stride: Stride = 1
  layer_norm: bool = dataclasses.field(default=True, kw_only=True)

  def __post_init__(self):
    num_stages = _backbone.check_layers(self, ("stage_features", "blocks_per_stage"), per="stage")
    _backbone.check_strides("stage_strides", self.stage_strides, num_stages, per="stage")
    _checks.check_int("stem_features", self.stem_features, 1)
    if not _backbone.is_stride(self.stem_stride):
      raise ValueError(f"stem_stride must be an integer >= 1 or a (height, width) pair of them, "
                       f"got {self.stem_stride!r}.")
    super().__post_init__()

  @property
  def conv_channels(self) -> int:
    """Channels of the last convolution: `ResNet`'s conv features are twice as wide."""
    return self.stage_features[-1]

  def all_strides(self) -> tuple[Stride, ...]:
    """The strides of the stem and of every stage."""
    return (self.stem_stride,) + tuple(self.stage_strides)

  def feature_map_shape(self, height: int, width: int) -> Optional[tuple[int, int]]:
    """Spatial shape of the last stage's output, or None if the patch is too small."""
    if any(s < m for s, m in zip((height, width), self.min_patch_shape())):
      return None
    for stride_h, stride_w in map(_backbone.stride_pair, self.all_strides()):
      height, width = -(-height // stride_h), -(-width // stride_w)  # 'SAME': ceil(s / stride).
    return height, width

  def conv_map_shape(self, height: int, width: int) -> Optional[tuple[int, int]]:
    """Spatial shape of the last block's output (`ResNet` with ``feature_map=True``): `feature_map_shape`."""
    return self.feature_map_shape(height, width)

  def min_patch_shape(self) -> tuple[int, int]:
    """Smallest ``(height, width)`` accepted: the product of the strides per axis."""
    return _backbone.strides_product(self.all_strides())


RESNET_SMALL = ResNetSize(
    stage_features=(16, 32, 64),
    stage_strides=(1, 2, 2),
    blocks_per_stage=(1, 1, 1),
    patch_features=128,
    embedding=256,
)

# For tests and tiny configs: two stages of one block, compiles and runs in moments.
RESNET_TINY = ResNetSize(
    stage_features=(8, 16),
    stage_strides=(1, 2),
    blocks_per_stage=(1, 1),
    stem_features=8,
    patch_features=32,
    embedding=64,
)


class ResidualBlock(nn.Module):
  """Basic block (He et al. 2016): ``relu(norm(conv(relu(norm(conv(x))))) + shortcut(x))``.

  Attributes:
    features: output channels.
    strides: ``(height, width)`` stride of the first convolution and of the
      projection.
    layer_norm: a LayerNorm after each convolution (the projection included).
  """

  features: int
  strides: tuple[int, int]
  layer_norm: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(nn.Conv, self.features, padding="SAME", use_bias=not self.layer_norm,
                             kernel_init=nn.initializers.he_normal())

    def norm(h, name):
      return nn.LayerNorm(name=name)(h) if self.layer_norm else h

    y = nn.relu(norm(conv((3, 3), strides=self.strides, name="conv1")(x), "norm1"))
    y = norm(conv((3, 3), name="conv2")(y), "norm2")
    shortcut = x
    if self.strides != (1, 1) or x.shape[-1] != self.features:
      shortcut = norm(conv((1, 1), strides=self.strides, name="projection")(x), "projection_norm")
    return nn.relu(y + shortcut)


class ResNet(nn.Module):
  """ResNet-style backbone for ONE patch: stem, residual stages, flatten, fc6.

  With ``feature_map=True`` it stops at the last block's output map (the
  per-frame embeddings of `shuffle_learn.models.cfn.CFN.frame_embed`).

  Attributes:
    size: the layer sizes.
  """

  size: ResNetSize

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               feature_map: bool = False) -> tuple[jax.Array, jax.Array] | jax.Array:
    """Maps patches to ``(fc6, conv)`` as `AlexNet.__call__` does; ``conv`` pools the last block's output.

    With ``feature_map=True``, returns the last block's output map itself,
    ``(batch, h', w', size.conv_channels)`` with ``(h', w') =
    size.conv_map_shape(height, width)``, and creates no fc6.
    """
    size = self.size
    _backbone.check_patch_shape(size, x, f"the strides {size.all_strides()} of the stem and stages")
    x = nn.Conv(size.stem_features, (3, 3), strides=_backbone.stride_pair(size.stem_stride), padding="SAME",
                use_bias=not size.layer_norm, kernel_init=nn.initializers.he_normal(), name="stem")(x)
    if size.layer_norm:
      x = nn.LayerNorm(name="stem_norm")(x)
    x = nn.relu(x)
    for i, (features, stride, blocks) in enumerate(zip(size.stage_features, size.stage_strides,
                                                       size.blocks_per_stage)):
      for j in range(blocks):
        x = ResidualBlock(features, _backbone.stride_pair(stride) if j == 0 else (1, 1), size.layer_norm,
                          name=f"stage{i}_block{j}")(x)
    if feature_map:
      return x
    return _backbone.fc6_and_pooled_conv(x, x, size, train)
