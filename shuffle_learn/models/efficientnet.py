"""EfficientNet (Tan & Le 2019) without BatchNorm: the encoder of Kuroyanagi et al. 2022's peer method.

EfficientNet-B0 is a stem convolution, seven stages of mobile inverted
bottleneck blocks (MBConv, Sandler et al. 2018) with squeeze-and-excitation
(Hu et al. 2018), and a 1x1 head convolution to 1280 channels, with swish
(SiLU) activations throughout:

    x (batch, H, W, C)
      -> stem: conv 3x3 stride 2 (32), norm, swish               (batch, H/2, W/2, 32)
      -> MBConv stages of the B0 table (`B0_STAGES`)              (batch, H/32, W/32, 320)
      -> head: conv 1x1 (1280), norm, swish: `EfficientNet.feature_map`
      -> mean over positions: `EfficientNet.__call__`             (batch, 1280)
      -> [num_classes] dropout, Dense(num_classes)                (batch, num_classes)

An MBConv block maps ``c_in`` to ``c_out`` channels: a 1x1 expansion to
``expand_ratio * c_in`` channels (absent when the ratio is 1), norm, swish; a
depthwise ``k x k`` convolution carrying the block's stride, norm, swish;
squeeze-and-excitation (the positions' mean through Dense(``se_ratio *
c_in``) + swish and Dense(``expand_ratio * c_in``) + sigmoid, which scales
the channels); a 1x1 projection to ``c_out``, norm, no activation. A block
of stride 1 with ``c_in == c_out`` adds its input back, after stochastic
depth (Huang et al. 2016) when training: the whole residual branch is
dropped for an example with probability ``stochastic_depth * b / num_blocks``
(``b`` the block's index, from 0), and scaled by ``1 / (1 - rate)``
otherwise, as the reference implementation does.

Scaling (`EfficientNetConfig.width`, ``depth``): every channel count is
multiplied by ``width`` and rounded to a multiple of 8 (never down by more
than 10 %), every stage's repeat count multiplied by ``depth`` and rounded up,
as in the reference's ``round_filters`` and ``round_repeats``; B1-B7 are
B0 with the paper's coefficients (and larger inputs), `TINY` a CPU-sized
B0 for tests.

Normalisation: the project's models are stateless (see
`shuffle_learn.models.alexnet`), so where the paper has BatchNorm there is a
LayerNorm over channels (per example and position, ``norm="layer"``, the
default) or a GroupNorm (``norm="group"``, ``norm_groups`` groups per example),
with a per-channel scale and bias like BatchNorm's, and the convolutions they
follow have no bias. The model is the same in train and eval except for
stochastic depth and the classifier's dropout, and its trainable parameters
are as many as the BatchNorm model's: 5,288,548 for B0 with the
1000-class head, 4,007,548 without (Keras's ``EfficientNetB0``, whose
remaining 42,023 non-trainable numbers are BatchNorm's running statistics and
the input normalisation's).

Other deviations from the reference: no input rescaling / normalisation
layer (the project's front end standardises the log-mel); LayerNorm's
epsilon is 1e-3 like the reference's BatchNorm; the initialisers are the
reference's (truncated normal of variance 2 / fan-out for convolutions, the
depthwise one's fan-out counting one output per channel; uniform of variance
1 / (3 fan-out) for the classifier).

Spectrograms: a log-mel spectrogram of the project, ``(batch, frames, mel)``
(a channel axis is added) or ``(batch, frames, mel, 1)``, is an image whose
height is time and width frequency. The kernels and strides are square, so
this is the transposed image of a ``(mel, frames)`` spectrogram through the
same network: nothing depends on which axis is which except the pooling.
For Kuroyanagi et al.'s 96 frames x 64 mel bins, `EfficientNet.feature_map`
is ``(batch, 3, 2, 1280)`` (time, frequency, channels) and `frame_embeddings`
averages it over frequency (axis -2) into their frame embeddings ``h``,
``(batch, 3, 1280)``, one per 320 ms. Give it ``(batch, mel, frames, ...)``
and it would average over time instead: transpose such input first.
Kuroyanagi et al. then map each frame through a 512-unit Dense layer,
LayerNorm and tanh (their ``h`` is 512 x 3); that projection belongs to the
pre-training objective, not to this encoder.

Example:
  >>> model = EfficientNet(TINY)
  >>> x = jnp.zeros((2, 96, 64))                       # (batch, frames, mel)
  >>> params = model.init(jax.random.key(0), x)
  >>> model.apply(params, x).shape                     # pooled features
  (2, 320)
  >>> fmap = model.apply(params, x, method=EfficientNet.feature_map)
  >>> fmap.shape, frame_embeddings(fmap).shape
  ((2, 3, 2, 320), (2, 3, 320))

References:
  Tan, Le. EfficientNet: Rethinking Model Scaling for Convolutional Neural
  Networks. ICML 2019 (Table 1: the B0 network; Section 3.3: scaling).
  Tan, Chen, Pang, Vasudevan, Sandler, Howard, Le. MnasNet: Platform-Aware
  Neural Architecture Search for Mobile. CVPR 2019 (MBConv with SE).
  Sandler, Howard, Zhu, Zhmoginov, Chen. MobileNetV2: Inverted Residuals and
  Linear Bottlenecks. CVPR 2018.
  Hu, Shen, Sun. Squeeze-and-Excitation Networks. CVPR 2018.
  Huang, Sun, Liu, Sedra, Weinberger. Deep Networks with Stochastic Depth.
  ECCV 2016.
  Ramachandran, Zoph, Le. Searching for Activation Functions (swish). 2017.
  Ba, Kiros, Hinton. Layer Normalization. 2016. Wu, He. Group Normalization.
  ECCV 2018.
  Kuroyanagi, Komatsu, Hayashi, Takeda, Toda. Self-supervised learning method
  using multiple sampling strategies for general-purpose audio
  representation. ICASSP 2022 (the EfficientNet-B0 encoder, pooled over
  frequency).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from shuffle_learn import _checks
from shuffle_learn.models import _backbone
from shuffle_learn.models._backbone import Stride

# The normalisations that stand where the paper has BatchNorm.
NORMS = ("layer", "group")

# The reference's BatchNorm epsilon, used by the norms that replace it.
NORM_EPSILON = 1e-3

# The reference's initialisers: convolutions N(0, 2 / fan_out) truncated; the classifier U with variance
# 1 / (3 fan_out). A depthwise kernel is (k, k, 1, channels) in Flax, whose fan_out would count every channel;
# the reference's (k, k, channels, 1) has fan_out k * k, which is the Flax kernel's fan_in.
CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "truncated_normal")
DEPTHWISE_INIT = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")
DENSE_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_out", "uniform")


class MBConvStage(NamedTuple):
  """One row of the EfficientNet table: ``repeats`` MBConv blocks, the first carrying the stride.

  Attributes:
    expand_ratio: the expansion's channels over the block's input channels
      (1: no expansion convolution).
    kernel_size: side of the depthwise convolution's square kernel.
    stride: stride of the stage's first block: an integer or a ``(height,
      width)`` pair.
    features: output channels, before width scaling.
    repeats: number of blocks, before depth scaling.
  """

  expand_ratio: int
  kernel_size: int
  stride: Stride
  features: int
  repeats: int


class BlockArgs(NamedTuple):
  """One MBConv block after scaling (see `EfficientNetConfig.blocks`).

  Attributes:
    in_features, out_features: input and output channels.
    expand_ratio: expansion ratio (1: no expansion convolution).
    kernel_size: depthwise kernel side.
    stride: ``(height, width)`` stride of the depthwise convolution.
    se_features: squeeze-and-excitation bottleneck width.
    drop_rate: stochastic depth rate when training (used by residual blocks only).
  """

  in_features: int
  out_features: int
  expand_ratio: int
  kernel_size: int
  stride: tuple[int, int]
  se_features: int
  drop_rate: float

  @property
  def expanded_features(self) -> int:
    return self.in_features * self.expand_ratio

  @property
  def residual(self) -> bool:
    """Whether the block adds its input back (stride 1, as many channels out as in)."""
    return self.stride == (1, 1) and self.in_features == self.out_features


# Table 1 of Tan & Le 2019: (expand_ratio, kernel_size, stride, features, repeats) per stage.
B0_STAGES = (
    MBConvStage(1, 3, 1, 16, 1),
    MBConvStage(6, 3, 2, 24, 2),
    MBConvStage(6, 5, 2, 40, 2),
    MBConvStage(6, 3, 2, 80, 3),
    MBConvStage(6, 5, 1, 112, 3),
    MBConvStage(6, 5, 2, 192, 4),
    MBConvStage(6, 3, 1, 320, 1),
)


@dataclasses.dataclass(frozen=True)
class EfficientNetConfig:
  """Sizes of an EfficientNet: B0's table, scaled in width and depth.

  Attributes:
    width: channel multiplier (B0: 1.0); channels are rounded to a multiple
      of ``divisor``.
    depth: multiplier of every stage's repeats (B0: 1.0), rounded up.
    stages: the MBConv stages before scaling (`MBConvStage` or 5-tuples).
    stem_features: channels of the stem convolution, before width scaling.
    head_features: channels of the head convolution, before width scaling:
      the feature width.
    se_ratio: squeeze-and-excitation bottleneck width over the block's input
      channels.
    norm: ``"layer"`` (LayerNorm over channels) or ``"group"`` (GroupNorm)
      where the paper has BatchNorm.
    norm_groups: groups of the GroupNorm; must divide every normalised
      channel count (used with ``norm="group"`` only).
    stochastic_depth: stochastic depth rate of the last block when training
      (the reference's ``drop_connect_rate``), linear in the block index from
      0; 0 disables it.
    dropout_rate: dropout before the classifier when training; 0 disables it.
    divisor: channels are rounded to multiples of this.
  """

  width: float = 1.0
  depth: float = 1.0
  stages: tuple[MBConvStage, ...] = B0_STAGES
  stem_features: int = 32
  head_features: int = 1280
  se_ratio: float = 0.25
  norm: str = "layer"
  norm_groups: int = 8
  stochastic_depth: float = 0.2
  dropout_rate: float = 0.2
  divisor: int = 8

  def __post_init__(self):
    _checks.check_number("width", self.width, 0.0, strict=True)
    _checks.check_number("depth", self.depth, 0.0, strict=True)
    if isinstance(self.stages, (str, bytes)) or not isinstance(self.stages, (tuple, list)) or not self.stages:
      raise ValueError(f"stages must be a non-empty tuple of MBConvStage, got {self.stages!r}.")
    stages = []
    for i, stage in enumerate(self.stages):
      ok = isinstance(stage, (tuple, list)) and len(stage) == 5
      if ok:
        stage = MBConvStage(*stage)
        ok = (_backbone.is_stride(stage.stride)
              and all(_checks.is_int(v) and v >= 1 for v in stage[:2] + stage[3:]))
      if not ok:
        raise ValueError(f"stages[{i}] must be (expand_ratio, kernel_size, stride, features, repeats), "
                         f"integers >= 1 (stride may be a (height, width) pair), got {stage!r}.")
      stages.append(stage)
    object.__setattr__(self, "stages", tuple(stages))
    _checks.check_int("stem_features", self.stem_features, 1)
    _checks.check_int("head_features", self.head_features, 1)
    _checks.check_number("se_ratio", self.se_ratio, 0.0, strict=True)
    if self.se_ratio > 1.0:
      raise ValueError(f"se_ratio must be in (0, 1], got {self.se_ratio!r}.")
    _checks.check_choice("norm", self.norm, NORMS)
    _checks.check_int("norm_groups", self.norm_groups, 1)
    for name in ("stochastic_depth", "dropout_rate"):
      if _checks.check_number(name, getattr(self, name), 0.0) >= 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}.")
    _checks.check_int("divisor", self.divisor, 1)
    if self.norm == "group":
      bad = sorted({c for c in self.normalized_features() if c % self.norm_groups})
      if bad:
        raise ValueError(f"norm_groups must divide every normalised channel count, got {self.norm_groups} "
                         f"for channels {bad}.")

  def round_features(self, features: int) -> int:
    """``features * width`` rounded to a multiple of ``divisor``, at least ``divisor`` and >= 90 % of it."""
    scaled = features * self.width
    rounded = max(self.divisor, int(scaled + self.divisor / 2) // self.divisor * self.divisor)
    if rounded < 0.9 * scaled:
      rounded += self.divisor
    return int(rounded)

  def round_repeats(self, repeats: int) -> int:
    """``repeats * depth`` rounded up."""
    return int(math.ceil(self.depth * repeats))

  @property
  def features(self) -> int:
    """Channels of the feature map and of the pooled features: ``head_features`` scaled."""
    return self.round_features(self.head_features)

  def blocks(self) -> tuple[BlockArgs, ...]:
    """Every MBConv block in order, scaled, with its stochastic depth rate."""
    num_blocks = sum(self.round_repeats(s.repeats) for s in self.stages)
    blocks = []
    in_features = self.round_features(self.stem_features)
    for stage in self.stages:
      out_features = self.round_features(stage.features)
      for j in range(self.round_repeats(stage.repeats)):
        stride = _backbone.stride_pair(stage.stride) if j == 0 else (1, 1)
        blocks.append(BlockArgs(
            in_features, out_features, stage.expand_ratio, stage.kernel_size, stride,
            se_features=max(1, int(in_features * self.se_ratio)),
            drop_rate=self.stochastic_depth * len(blocks) / num_blocks))
        in_features = out_features
    return tuple(blocks)

  def normalized_features(self) -> tuple[int, ...]:
    """The channels of every normalisation layer, in order."""
    channels = [self.round_features(self.stem_features)]
    for block in self.blocks():
      if block.expand_ratio != 1:
        channels.append(block.expanded_features)
      channels += [block.expanded_features, block.out_features]
    return tuple(channels) + (self.features,)

  def all_strides(self) -> tuple[Stride, ...]:
    """The strides of the stem and of every stage."""
    return (2,) + tuple(s.stride for s in self.stages)

  def min_input_shape(self) -> tuple[int, int]:
    """Smallest ``(height, width)`` accepted: the product of the strides per axis (32 x 32 for B0)."""
    return _backbone.strides_product(self.all_strides())

  def feature_map_shape(self, height: int, width: int) -> Optional[tuple[int, int]]:
    """Spatial shape of `EfficientNet.feature_map` for an input, or None if it is too small."""
    if any(s < m for s, m in zip((height, width), self.min_input_shape())):
      return None
    for stride_h, stride_w in map(_backbone.stride_pair, self.all_strides()):
      height, width = -(-height // stride_h), -(-width // stride_w)  # 'SAME': ceil(s / stride).
    return height, width


B0 = EfficientNetConfig()

# For tests and CPU runs: B0 at a quarter of the width (channels 8 to 80, features 320) and a third of the depth
# (10 blocks instead of 16).
TINY = EfficientNetConfig(width=0.25, depth=0.34)


def _norm(config: EfficientNetConfig, name: str) -> nn.Module:
  """The normalisation that stands where the paper has BatchNorm (per-channel scale and bias)."""
  if config.norm == "layer":
    return nn.LayerNorm(epsilon=NORM_EPSILON, use_fast_variance=False, name=name)
  return nn.GroupNorm(num_groups=config.norm_groups, epsilon=NORM_EPSILON, use_fast_variance=False, name=name)


class MBConv(nn.Module):
  """Mobile inverted bottleneck block with squeeze-and-excitation (see the module docstring).

  Attributes:
    block: the block's sizes and stochastic depth rate.
    config: the network's config (its normalisation).
  """

  block: BlockArgs
  config: EfficientNetConfig

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    block = self.block
    conv = lambda features, name: nn.Conv(features, (1, 1), use_bias=False, kernel_init=CONV_INIT, name=name)
    y = x
    if block.expand_ratio != 1:
      y = nn.silu(_norm(self.config, "expand_norm")(conv(block.expanded_features, "expand_conv")(y)))
    y = nn.Conv(block.expanded_features, (block.kernel_size,) * 2, strides=block.stride, padding="SAME",
                feature_group_count=block.expanded_features, use_bias=False, kernel_init=DEPTHWISE_INIT,
                name="depthwise_conv")(y)
    y = nn.silu(_norm(self.config, "depthwise_norm")(y))
    se = y.mean(axis=(-3, -2))  # (batch, expanded)
    se = nn.silu(nn.Dense(block.se_features, kernel_init=CONV_INIT, name="se_reduce")(se))
    se = nn.sigmoid(nn.Dense(block.expanded_features, kernel_init=CONV_INIT, name="se_expand")(se))
    y = y * se[..., None, None, :]
    y = _norm(self.config, "project_norm")(conv(block.out_features, "project_conv")(y))
    if not block.residual:
      return y
    # Stochastic depth: one mask per example, broadcast over height, width and channels.
    y = nn.Dropout(block.drop_rate, broadcast_dims=(-3, -2, -1), deterministic=not train, name="drop_path")(y)
    return x + y


class EfficientNet(nn.Module):
  """EfficientNet (Tan & Le 2019) with LayerNorm or GroupNorm: pooled features, or logits with a classifier.

  Attributes:
    config: the sizes (`B0`, `TINY` or any `EfficientNetConfig`).
    num_classes: width of a classifier on the pooled features (with dropout
      before it when training); None: `__call__` returns the pooled features.
  """

  config: EfficientNetConfig = B0
  num_classes: Optional[int] = None

  def __post_init__(self):
    if not isinstance(self.config, EfficientNetConfig):
      raise ValueError(f"config must be an EfficientNetConfig, got {type(self.config).__name__}.")
    if self.num_classes is not None:
      _checks.check_int("num_classes", self.num_classes, 1)
    super().__post_init__()

  def setup(self):
    config = self.config
    self.stem = nn.Conv(config.round_features(config.stem_features), (3, 3), strides=(2, 2), padding="SAME",
                        use_bias=False, kernel_init=CONV_INIT)
    self.stem_norm = _norm(config, "stem_norm")
    self.blocks = [MBConv(block, config) for block in config.blocks()]
    self.head_conv = nn.Conv(config.features, (1, 1), use_bias=False, kernel_init=CONV_INIT)
    self.head_norm = _norm(config, "head_norm")
    if self.num_classes is not None:
      self.head_dropout = nn.Dropout(config.dropout_rate)
      self.classifier = nn.Dense(self.num_classes, kernel_init=DENSE_INIT)

  def _prepare(self, x: jax.Array) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim == 3:
      x = x[..., None]  # (batch, height, width, 1)
    if x.ndim != 4:
      raise ValueError(f"x must be (batch, height, width) or (batch, height, width, channels), got shape {x.shape}.")
    if self.config.feature_map_shape(x.shape[1], x.shape[2]) is None:
      raise ValueError(f"x: inputs of shape {x.shape[1:3]} are too small for the strides "
                       f"{self.config.all_strides()}; (height, width) needs at least "
                       f"{self.config.min_input_shape()} pixels (the product of the strides).")
    if not jnp.issubdtype(x.dtype, jnp.floating):
      x = x.astype(jnp.float32)
    return x

  def feature_map(self, x: jax.Array, train: bool = False) -> jax.Array:
    """The head convolution's output, after its norm and swish.

    Args:
      x: ``(batch, height, width, channels)`` or ``(batch, height, width)``
        (one channel); for a log-mel spectrogram, height is time (frames) and
        width frequency (mel bins).
      train: apply stochastic depth (needs a ``'dropout'`` rng when
        ``config.stochastic_depth > 0``).

    Returns:
      ``(batch, ceil(height / 32), ceil(width / 32), config.features)`` for
      B0's strides: ``(batch, 3, 2, 1280)`` for 96 frames of 64 mel bins.
    """
    x = nn.silu(self.stem_norm(self.stem(self._prepare(x))))
    for block in self.blocks:
      x = block(x, train)
    return nn.silu(self.head_norm(self.head_conv(x)))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """The feature map averaged over positions, or the classifier's logits.

    Args:
      x: as for `feature_map`.
      train: apply stochastic depth and the classifier's dropout (needs a
        ``'dropout'`` rng when either rate is > 0).

    Returns:
      ``(batch, num_classes)`` logits if ``num_classes``, else ``(batch,
      config.features)`` features.
    """
    features = self.feature_map(x, train).mean(axis=(-3, -2))
    if self.num_classes is None:
      return features
    return self.classifier(self.head_dropout(features, deterministic=not train))


def frame_embeddings(feature_map: jax.Array) -> jax.Array:
  """Frame embeddings (Kuroyanagi et al. 2022): the feature map averaged over frequency.

  Args:
    feature_map: ``(batch, time, frequency, channels)`` from
      `EfficientNet.feature_map` of a ``(batch, frames, mel, ...)``
      spectrogram (height is time, width frequency).

  Returns:
    ``(batch, time, channels)``: one embedding per output frame, ``(batch, 3,
    1280)`` for B0 on 96 frames.
  """
  feature_map = jnp.asarray(feature_map)
  if feature_map.ndim != 4:
    raise ValueError(f"feature_map must be (batch, time, frequency, channels), got shape {feature_map.shape}.")
  return feature_map.mean(axis=-2)
